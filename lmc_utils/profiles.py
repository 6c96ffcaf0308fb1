"""Profiles: named scales at which every notebook runs — ``smoke``, ``cpu`` (default), ``paper``.

``params/<profile>.yaml`` has one section per notebook (keyed by the notebook's file name
without extension) holding that notebook's parameters at that scale. A notebook declares
the same parameters in its Papermill ``parameters`` cell with ``None`` meaning "take the
profile's value", and calls :func:`resolve` in the next cell.

One more top-level section is not a notebook's: ``labels`` maps every experiment name the
profile's notebooks use to its display label at that scale (figure titles,
:func:`lmc_utils.figures.experiment_label`; :func:`labels`).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from . import dry_run
from .paths import params_dir

PROFILES = ("smoke", "cpu", "paper")
LABELS = "labels"  # the top-level section of display labels
SPECIAL_SECTIONS = (LABELS,)  # top-level sections that are not a notebook's parameters


class ProfileError(ValueError):
    """Unknown profile, missing profile file or section, or an undeclared parameter."""


def check_profile(profile: str) -> Path:
    """The parameter file of ``profile``; raises :class:`ProfileError` if it is unknown."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    path = params_dir() / f"{profile}.yaml"
    if not path.exists():
        raise ProfileError(f"profile file {path} is missing")
    return path


def load(profile: str) -> dict[str, dict[str, Any]]:
    """All sections of ``params/<profile>.yaml`` (the notebooks' and :data:`SPECIAL_SECTIONS`)."""
    with open(check_profile(profile), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def notebook_sections(profile: str) -> dict[str, dict[str, Any]]:
    """The sections of ``params/<profile>.yaml`` that hold a notebook's parameters (keyed by
    notebook stem): every top-level section but :data:`SPECIAL_SECTIONS`."""
    return {k: v for k, v in load(profile).items() if k not in SPECIAL_SECTIONS}


def labels(profile: str) -> dict[str, str]:
    """The ``labels`` section of ``params/<profile>.yaml``: experiment name -> display label
    (empty when the file has none). Raises :class:`ProfileError` unless it maps strings to strings."""
    found = load(profile).get(LABELS) or {}
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise ProfileError(f"params/{profile}.yaml: section {LABELS!r} must map experiment names to label strings")
    return dict(found)


def resolve(notebook: str, profile: str, **given: Any) -> SimpleNamespace:
    """The parameters of ``notebook`` at ``profile``: the profile file's values, overridden by
    every ``given`` value that is not ``None``. ``profile`` is included.

    Raises :class:`ProfileError` for an unknown profile, a notebook without a section, or a
    given name the section does not define (a typo would otherwise be silently ignored).
    Also pins torch's thread count to ``$LMC_THREADS`` when set (:func:`lmc_utils.device.apply_threads`).
    In a dry run (:mod:`lmc_utils.dry_run`) the values are cut to tiny budgets
    (:func:`lmc_utils.dry_run.budget`), and a line says which. In a plan run
    (:func:`lmc_utils.dry_run.planning`) only the algorithms' budgets are cut
    (:func:`lmc_utils.dry_run.plan_budget`) and the zoo records instead of training
    (:func:`lmc_utils.zoo_plan.install_recorder`).
    """
    from .device import apply_threads  # lazy: the runner imports this module without torch

    apply_threads()
    sections = notebook_sections(profile)
    if notebook not in sections:
        raise ProfileError(f"params/{profile}.yaml has no section {notebook!r}")
    values = dict(sections[notebook] or {})
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise ProfileError(f"{notebook}: parameter(s) {unknown} not defined in params/{profile}.yaml "
                           f"(known: {sorted(values)})")
    values.update({k: v for k, v in given.items() if v is not None})
    requests = dry_run.planning()
    if requests is not None:  # a plan run: real parameters, the zoo records instead of training
        from .zoo_plan import install_recorder

        install_recorder(notebook, requests)
        shrunk = dry_run.plan_budget(notebook, values)
        print(f"plan run ({dry_run.PLAN_VARIABLE}): the zoo records the configs asked for and trains nothing; "
              f"tiny budgets for {', '.join(dry_run.changed(values, shrunk)) or 'nothing'} (lmc_utils.zoo_plan); "
              f"the numbers below mean nothing", flush=True)
        values = shrunk
    elif dry_run.active():
        shrunk = dry_run.budget(notebook, values)
        print(f"dry run ({dry_run.VARIABLE}): tiny budgets for {', '.join(dry_run.changed(values, shrunk)) or 'nothing'} "
              f"(lmc_utils.dry_run); the numbers below mean nothing", flush=True)
        values = shrunk
    return SimpleNamespace(profile=profile, **values)
