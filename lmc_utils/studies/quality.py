"""The studies' side of the accuracy floors (:mod:`lmc_utils.claims.quality`): record the test accuracy
of the models a study judges, so that every verdict row carries its models' quality."""

from __future__ import annotations

from typing import Iterable

from .. import zoo
from ..claims import quality as Q
from ..core import data as data_mod
from ..measure.evaluation import evaluate


def record(experiment: str, models: Iterable[zoo.Trained], arm: str = "", device="auto",
           declared_as: str = "") -> Q.Entry:
    """Record the test accuracy of ``models`` of ``experiment`` at ``arm`` (the label its verdict subjects
    use, such as ``width 8``; ``""``: the experiment has one arm), judged against the experiment's
    declared floor (:func:`lmc_utils.claims.quality.declared`; under ``declared_as`` where the params
    name it otherwise). Accuracy on the whole test split of each model's dataset (``evaluate``, memoized),
    loaded once for all of ``models``."""
    tests: dict[str, data_mod.TensorData] = {}
    accuracies = {}
    for m in models:
        if m.config.dataset not in tests:
            tests[m.config.dataset] = data_mod.load(m.config.dataset, "test", device=device)
        accuracies[m.key] = float(evaluate(m.model.eval(), tests[m.config.dataset])[1])
    return Q.record(experiment, arm, accuracies, declared_as)


# The claims whose statistic rests on STE's permutations (notebooks 03, 08 and 10).
STE_CLAIMS = ("ste_barrier_comparable", "ste_aligns_less", "ste_far_edge_worse", "ste_merge_worse",
              "wm_ste_disagree", "wm_merges_better_than_ste")


def ste_budget(hit_cap: Iterable[bool], cap: int, claims: Iterable[str] = STE_CLAIMS,
               fixed_length: bool = False) -> str:
    """Flag ``claims`` as budget-bound (:func:`lmc_utils.claims.quality.record_budget_bound`) when any STE
    run behind them stopped at its step cap ``cap`` instead of by its patience rule (``fixed_length``:
    the runs had no patience rule, so each took its whole cap, whatever ``hit_cap`` says); returns the
    reason ("" when every run converged, or there were none)."""
    if fixed_length:
        why = (f"STE ran a fixed {cap} steps per run (no patience rule): it was not run to convergence")
        Q.record_budget_bound(claims, why)
        return why
    hits = [bool(h) for h in hit_cap]
    if not hits or not any(hits):
        return ""
    why = (f"{sum(hits)} of {len(hits)} STE runs stopped at their step cap ({cap} steps), not by their "
           "patience rule: STE was not run to convergence")
    Q.record_budget_bound(claims, why)
    return why
