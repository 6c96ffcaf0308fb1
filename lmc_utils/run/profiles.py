"""Profiles: named scales at which every notebook runs — ``smoke``, ``cpu`` (default), ``paper``.

``params/<profile>.yaml`` has one section per notebook (keyed by the notebook's file name
without extension) holding that notebook's parameters at that scale. A notebook declares
the same parameters in its Papermill ``parameters`` cell with ``None`` meaning "take the
profile's value", and calls :func:`resolve` in the next cell.

Reading and checking the parameter files is :mod:`lmc_utils.core.params` (re-exported here).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

from ..core.params import (LABELS, PROFILES, SPECIAL_SECTIONS, ProfileError, check_profile,  # noqa: F401
                           labels, load, notebook_sections)
from ..claims import quality
from . import dry_run


class Parameters(SimpleNamespace):
    """A notebook's resolved parameters, read as attributes (``P.n_pairs``) and never changed after
    :func:`resolve` checked them: change a value in the parameters cell or with ``-p``."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the resolved parameters are read-only; set {name!r} in the notebook's "
                             f"parameters cell or with `-p {name} VALUE`")

    __delattr__ = __setattr__


# Counts: any parameter named n_* or *_pairs / *_models / *_groups / *_runs / *_triples holding a whole
# number or a mapping of whole numbers (one per experiment). Each must be >= 0 (0: that part is skipped);
# these must be at least the number given, or the notebook has nothing to measure.
LEAST_COUNTS = {"n_pairs": 1, "n_orders": 1, "n_points": 2, "n_runs": 1, "n_models": 1, "n_groups": 1,
                "n_planted": 1, "bias_pairs": 1, "retrain_pairs": 1, "cluster_models": 1, "curve_models": 1,
                "redundancy_models": 1}
_COUNT_SUFFIXES = ("_pairs", "_models", "_groups", "_runs", "_triples")


def check_counts(notebook: str, values: Mapping[str, Any]) -> None:
    """Raise :class:`ProfileError` naming the first count in ``values`` below its least value
    (:data:`LEAST_COUNTS`, else 0), before any work starts."""
    for name, value in values.items():
        if not (name.startswith("n_") or name.endswith(_COUNT_SUFFIXES)):
            continue
        numbers = value.values() if isinstance(value, Mapping) else [value]
        least = LEAST_COUNTS.get(name, 0)
        for n in numbers:
            if isinstance(n, int) and not isinstance(n, bool) and n < least:
                raise ProfileError(f"{notebook}: parameter {name!r} must be a whole number >= {least}"
                                   + (" for every entry" if isinstance(value, Mapping) else "") + f", got {value!r}")


def resolve(notebook: str, profile: str, namespace: Mapping[str, Any] | None = None, /,
            **given: Any) -> Parameters:
    """The parameters of ``notebook`` at ``profile``: the profile file's values, overridden by the
    values that are not ``None`` of ``namespace`` (a notebook passes ``globals()``: its parameters cell
    is the only list of its parameters, every name the profile's section defines is read from it) and of
    ``given``. ``profile`` is included. The counts are checked (:func:`check_counts`) and the result is
    read-only (:class:`Parameters`).

    Raises :class:`ProfileError` for an unknown profile, a notebook without a section, a ``given``
    name the section does not define (a typo would otherwise be silently ignored), or a count below
    its least value.
    Also pins torch's thread count to ``$LMC_THREADS`` when set (:func:`lmc_utils.core.device.apply_threads`).
    In a dry run (:mod:`lmc_utils.run.dry_run`) the values are cut to tiny budgets
    (:func:`lmc_utils.run.dry_run.budget`), and a line says which. In a plan run
    (:func:`lmc_utils.core.settings.planning`) only the algorithms' budgets are cut
    (:func:`lmc_utils.run.dry_run.plan_budget`) and the zoo records instead of training
    (:func:`lmc_utils.zoo.record_requests`).
    """
    from ..core.device import apply_threads  # lazy: the runner imports this module without torch

    apply_threads()
    sections = notebook_sections(profile)
    if notebook not in sections:
        raise ProfileError(f"params/{profile}.yaml has no section {notebook!r}")
    values = dict(sections[notebook] or {})
    if namespace is not None:
        given = {**{k: namespace[k] for k in values if k in namespace}, **given}
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise ProfileError(f"{notebook}: parameter(s) {unknown} not defined in params/{profile}.yaml "
                           f"(known: {sorted(values)})")
    values.update({k: v for k, v in given.items() if v is not None})
    quality.clear()  # a notebook (re)run in this process: its own floors and models only
    values = quality.strip(values, f"params/{profile}.yaml: {notebook}")  # floors declared, not training fields
    check_counts(notebook, values)
    requests = dry_run.planning()
    if requests is not None:  # a plan run: real parameters, the zoo records instead of training
        from .. import zoo

        zoo.record_requests(notebook, requests)
        shrunk = dry_run.plan_budget(notebook, values)
        print(f"plan run ({dry_run.PLAN_VARIABLE}): the zoo records the configs asked for and trains nothing; "
              f"tiny budgets for {', '.join(dry_run.changed(values, shrunk)) or 'nothing'} (lmc_utils.run.plan); "
              f"the numbers below mean nothing", flush=True)
        values = shrunk
    elif dry_run.active():
        shrunk = dry_run.budget(notebook, values)
        print(f"dry run ({dry_run.VARIABLE}): tiny budgets for {', '.join(dry_run.changed(values, shrunk)) or 'nothing'} "
              f"(lmc_utils.run.dry_run); the numbers below mean nothing", flush=True)
        values = shrunk
    return Parameters(profile=profile, **values)
