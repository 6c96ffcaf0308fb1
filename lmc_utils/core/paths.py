"""Where things live: project root, data, cache, figures, build output and profile files.

Every location can be moved with an environment variable, so notebooks never hard-code
relative paths such as ``"../data"``:

========================  ==================================  ===========================
variable                  default                             holds
========================  ==================================  ===========================
``LMC_ROOT``              the checkout containing lmc_utils   notebooks/, params/, figures/
``LMC_DATA_DIR``          ``<root>/data``                     datasets (may be read-only)
``LMC_CACHE_DIR``         ``<root>/cache``                    trained models, unpacked data
``LMC_FIGURES_DIR``       ``<root>/figures``                  figures/<profile>/...
``LMC_FIGURES_SUFFIX``    (empty)                             appended to ``<profile>``
``LMC_PARAMS_DIR``        ``<root>/params``                   ``<profile>.yaml``, criteria
========================  ==================================  ===========================

The runner sets ``LMC_FIGURES_SUFFIX`` (``+<hash of the overrides>``) for runs with ``-p``
overrides, so they never write over a profile's committed results. ``LMC_PARAMS_DIR`` points
the runner and its kernels at other parameter files (a test's deliberately broken copy).
"""

from __future__ import annotations

from pathlib import Path

from . import settings


def project_root() -> Path:
    """The project checkout: ``$LMC_ROOT``, else the folder above the package when it
    holds a ``pyproject.toml`` (editable install), else the current directory."""
    env = settings.path(settings.ROOT)
    if env is not None:
        return env
    here = Path(__file__).resolve().parents[2]  # lmc_utils/core/paths.py -> the checkout
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd().resolve()


def _from_env(var: str, default: Path) -> Path:
    return settings.path(var) or default


def data_dir() -> Path:
    """Folder with the datasets in torchvision's layout (``$LMC_DATA_DIR``)."""
    return _from_env("LMC_DATA_DIR", project_root() / "data")


def cache_dir() -> Path:
    """Folder the project writes to: trained models and unpacked datasets."""
    return _from_env("LMC_CACHE_DIR", project_root() / "cache")


def figures_dir(profile: str | None = None) -> Path:
    """``figures/`` or ``figures/<profile><$LMC_FIGURES_SUFFIX>/``."""
    base = _from_env("LMC_FIGURES_DIR", project_root() / "figures")
    return base / (profile + settings.text(settings.FIGURES_SUFFIX)) if profile else base


def params_dir() -> Path:
    """Folder with one ``<profile>.yaml`` per profile and ``criteria.yaml`` (``$LMC_PARAMS_DIR``)."""
    return _from_env("LMC_PARAMS_DIR", project_root() / "params")


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def build_dir() -> Path:
    """Executed notebooks and other transient output."""
    return project_root() / "build"
