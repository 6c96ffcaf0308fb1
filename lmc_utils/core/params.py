"""The profiles' parameter files: ``params/<profile>.yaml``, one section per notebook, read and checked.

``smoke``, ``cpu`` (default) and ``paper`` are the named scales at which every notebook runs. One more
top-level section is not a notebook's: ``labels`` maps every experiment name the profile's notebooks
use to its display label at that scale (figure titles, :func:`lmc_utils.figures.output.experiment_label`).
Resolving a notebook's parameters is the runner's (:func:`lmc_utils.run.profiles.resolve`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
