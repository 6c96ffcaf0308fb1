"""Profiles: named scales at which every notebook runs — ``smoke``, ``cpu`` (default), ``paper``.

``params/<profile>.yaml`` has one section per notebook (keyed by the notebook's file name
without extension) holding that notebook's parameters at that scale. A notebook declares
the same parameters in its Papermill ``parameters`` cell with ``None`` meaning "take the
profile's value", and calls :func:`resolve` in the next cell.

Reading and checking the parameter files is :mod:`lmc_utils.core.params` (re-exported here).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ..core.params import (LABELS, PROFILES, SPECIAL_SECTIONS, ProfileError, check_profile,  # noqa: F401
                           labels, load, notebook_sections)
from . import dry_run


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
    (:func:`lmc_utils.zoo.record_requests`).
    """
    from ..core.device import apply_threads  # lazy: the runner imports this module without torch

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
        from .. import zoo

        zoo.record_requests(notebook, requests)
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
