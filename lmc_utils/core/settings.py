"""Every ``LMC_*`` setting, read in one place.

The runner passes settings to the notebook kernels as environment variables; this module is the
only one that reads them (``tests/test_layers.py`` checks that no other module of the package reads
an ``LMC_*`` variable). Each reader looks the variable up when called, so a setting changed in the
environment (a test's ``monkeypatch.setenv``) takes effect at once.

========================  ===================================================================
variable                  meaning
========================  ===================================================================
``LMC_ROOT``              the checkout holding notebooks/, params/, figures/ (:mod:`.paths`)
``LMC_DATA_DIR``          datasets in torchvision's layout, only read (default ``<root>/data``)
``LMC_CACHE_DIR``         trained models and unpacked data (default ``<root>/cache``)
``LMC_FIGURES_DIR``       figures/ (default ``<root>/figures``)
``LMC_FIGURES_SUFFIX``    appended to ``figures/<profile>`` (a run with ``-p`` overrides)
``LMC_PARAMS_DIR``        the profiles' parameter files and criteria.yaml (default ``<root>/params``)
``LMC_THREADS``           torch's thread count in a kernel (:func:`lmc_utils.core.device.apply_threads`)
``LMC_OFFLINE``           never download a missing dataset
``LMC_ANALYSIS_CACHE``    ``off`` (or ``0``, ``no``, ``false``): do not reuse analysis results (:mod:`.memo`)
``LMC_PROGRESS_FILE``     the file progress lines go to (:mod:`.progress`)
``LMC_DRY_RUN``           a dry run: tiny budgets (:mod:`lmc_utils.run.dry_run`)
``LMC_ZOO_PLAN``          a plan run's request file (:mod:`lmc_utils.run.plan`)
``LMC_STRICT_FIGURES``    a figure failing a readability check is an error, not a warning (read with
                          :func:`text` by :mod:`lmc_utils.figures.output`)
========================  ===================================================================

A dry or plan run also shrinks what the low tiers do, at the few places where that happens:
every dataset split to :data:`SPLIT_EXAMPLES` examples (:func:`split_examples`, in
:func:`lmc_utils.core.data.load`), weight matching to :data:`WEIGHT_MATCHING_SWEEPS` sweeps
(:func:`weight_matching_sweeps`), and absent CIFAR / ImageNet data replaced by FakeData
(:func:`fake_data_allowed`). Everything else a dry run cuts is a notebook parameter
(:func:`lmc_utils.run.dry_run.budget`).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_THREADS = 2  # torch threads per notebook kernel by default: a 2-core machine, the cpu budget's target

ROOT, DATA_DIR, CACHE_DIR = "LMC_ROOT", "LMC_DATA_DIR", "LMC_CACHE_DIR"
FIGURES_DIR, FIGURES_SUFFIX, PARAMS_DIR = "LMC_FIGURES_DIR", "LMC_FIGURES_SUFFIX", "LMC_PARAMS_DIR"
THREADS, OFFLINE, PROGRESS_FILE = "LMC_THREADS", "LMC_OFFLINE", "LMC_PROGRESS_FILE"
ANALYSIS_CACHE = "LMC_ANALYSIS_CACHE"
DRY_RUN, ZOO_PLAN = "LMC_DRY_RUN", "LMC_ZOO_PLAN"

SPLIT_EXAMPLES = {"train": 8, "test": 4}  # examples per split in a dry or plan run (real data subsampled, or FakeData)
WEIGHT_MATCHING_SWEEPS = 2  # at most this many weight-matching sweeps in a dry or plan run


def text(variable: str) -> str:
    """The value of ``variable`` (``""`` when unset), stripped."""
    return os.environ.get(variable, "").strip()


def path(variable: str) -> Path | None:
    """The folder or file ``variable`` names (user and symlinks resolved), or ``None`` when unset."""
    value = text(variable)
    return Path(value).expanduser().resolve() if value else None


def threads() -> int | None:
    """``$LMC_THREADS`` as a positive integer, ``None`` when unset; ``ValueError`` for anything else."""
    value = text(THREADS)
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{THREADS}={value!r}: the thread count must be a positive integer")
    return n


def analysis_cache() -> bool:
    """Whether analysis results are cached (:mod:`.memo`): yes unless ``$LMC_ANALYSIS_CACHE`` is ``off``,
    ``0``, ``no`` or ``false``; ``ValueError`` for a value that is none of these nor ``on``/``1``/``yes``/``true``."""
    value = text(ANALYSIS_CACHE).lower()
    if value in ("", "on", "1", "yes", "true"):
        return True
    if value in ("off", "0", "no", "false"):
        return False
    raise ValueError(f"{ANALYSIS_CACHE}={value!r}: use on or off")


def offline() -> bool:
    """Whether downloading a missing dataset is forbidden (``$LMC_OFFLINE`` set to anything)."""
    return bool(os.environ.get(OFFLINE))


def planning() -> Path | None:
    """The request file of a plan run (``$LMC_ZOO_PLAN``), or ``None``: a plan run keeps the parameters
    that make training configs, and the zoo records instead of training (:mod:`lmc_utils.run.plan`)."""
    value = os.environ.get(ZOO_PLAN, "")
    return Path(value) if value else None


def dry_run() -> bool:
    """Whether this process runs inside a dry run (``$LMC_DRY_RUN`` set to anything but ``""``/``0``)
    or a plan run (:func:`planning`)."""
    return os.environ.get(DRY_RUN, "") not in ("", "0") or planning() is not None


def split_examples(split: str) -> int | None:
    """At most this many examples of a dataset split in a dry run (``None``: not a dry run)."""
    return SPLIT_EXAMPLES[split] if dry_run() else None


def weight_matching_sweeps(requested: int) -> int:
    """The sweeps weight matching may take: ``requested``, at most :data:`WEIGHT_MATCHING_SWEEPS` in a dry run."""
    return min(requested, WEIGHT_MATCHING_SWEEPS) if dry_run() else requested


def fake_data_allowed() -> bool:
    """Whether a missing CIFAR-10/100 (or ImageNet, or a ResNet50 weights file) may be replaced by
    ``FakeData`` (or a random initialisation): dry runs only."""
    return dry_run()
