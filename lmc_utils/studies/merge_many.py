"""Notebook 08's protocol: merging three or more models (Qu & Horvath, ICML 2024, §3.3 and
App. E.3, Algorithms 1-3; Ainsworth et al. 2023, MergeMany; Ito et al. 2025, §6).

Per experiment (an architecture/dataset), the units are disjoint *groups* of independently
trained models (group ``g`` holds seeds ``seed + g * size .. seed + (g + 1) * size - 1``). Within a
group, the first ``n`` models (every ``n`` of ``ns``) are aligned by a matcher (weight matching,
activation matching, the straight-through estimator) under a regime (reference, sequential,
iterative: :func:`lmc_utils.matching.merge_many`) and averaged; the merge is evaluated as it is
and re-normalised (RESET for BatchNorm models, REPAIR otherwise), next to the plain average
without matching, the mean accuracy of the ``n`` endpoints and a same-basin control: groups of
children spawned from one parent (:func:`lmc_utils.zoo.spawn`), averaged without matching.

Reference and sequential matching of the first ``n`` models are the first ``n`` models of the
merge of the whole group (each model's permutation depends only on earlier ones), so they are
run once per group; iterative matching is run for every ``n``.

:func:`run` returns a :class:`Result` of tidy tables; :func:`tables` summarises them and
:func:`verdicts` judges the declared criteria (``params/criteria.yaml``, section
``08_merge_many``) with one value per group.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core import data as data_mod
from .. import permutation as P
from ..measure import renorm
from ..claims import tables as tables_mod, verdicts as V
from .. import zoo
from ..core.data import TensorData
from ..measure.evaluation import evaluate
from ..measure.interpolation import evaluate_state, has_batchnorm
from ..matching import REGIMES, activation_matcher, average_states, merge_many, ste_matcher, weight_matcher
from . import quality

NOTEBOOK = "08_merge_many"
MATCHERS = ("weight", "activation", "ste")
NAIVE = "naive"  # the plain average, no matching (regime "none")
SHORT = {"weight": "WM", "activation": "AM", "ste": "STE", NAIVE: "no matching"}


@dataclass
class Result:
    """Tidy tables (every one has ``experiment`` and ``kind``/``group`` columns).

    ``renorm`` is ``none`` (the average as it is; BatchNorm statistics averaged too), ``RESET``
    (BatchNorm models) or ``REPAIR`` (others: every hidden unit's mean and std moved to the mean of
    the aligned endpoints' statistics). ``default`` marks the evaluation the claims about merged
    accuracy use: RESET for BatchNorm models (an average of running statistics describes no
    network), the plain average otherwise."""

    merged: pd.DataFrame  # experiment, kind, group, arch, n, matcher, regime, renorm, default, loss, accuracy,
    #                       endpoints_loss, endpoints_accuracy, iterations, converged
    trace: pd.DataFrame  # experiment, group, n, matcher, iteration, objective, cosine, converged
    #                      (cosine: objective / pairwise_scale, the weighted mean pairwise cosine similarity)
    endpoints: pd.DataFrame  # experiment, kind, group, model, loss, accuracy


def group_configs(base: zoo.TrainConfig, n_groups: int, size: int, seed: int = 0) -> list[list[zoo.TrainConfig]]:
    """``n_groups`` disjoint groups of ``size`` independently seeded configs."""
    if n_groups < 1 or size < 1:
        raise ValueError(f"need n_groups >= 1 and size >= 1, got {n_groups} and {size}")
    return [[base.replace(seed=seed + g * size + k) for k in range(size)] for g in range(n_groups)]


def spawned_configs(base: zoo.TrainConfig, n_groups: int, size: int, parent_epochs: int,
                    seed: int = 0) -> list[list[zoo.TrainConfig]]:
    """``n_groups`` groups of ``size`` children, each group spawned from its own parent (parent
    seed ``seed + 1000 + g``, children's data seeds ``1 .. size``; the first two children are
    :func:`lmc_utils.zoo.spawned_pairs`' pair ``g``)."""
    if n_groups < 1 or size < 1:
        raise ValueError(f"need n_groups >= 1 and size >= 1, got {n_groups} and {size}")
    return [zoo.spawn(base.replace(seed=seed + 1000 + g), parent_epochs, data_seeds=tuple(range(1, size + 1)))
            for g in range(n_groups)]


def renorm_name(model: torch.nn.Module) -> str:
    """The re-normalisation of merged ``model``s: ``RESET`` with BatchNorm, else ``REPAIR``."""
    return "RESET" if has_batchnorm(model) else "REPAIR"


def endpoint_statistics(template: torch.nn.Module, aligned: Sequence[Mapping[str, torch.Tensor]],
                        stats_data: TensorData) -> list[renorm.Goal] | None:
    """Each of ``aligned``'s per-unit statistics on ``stats_data`` (REPAIR's ingredients), measured
    once so that every prefix of ``aligned`` can be re-normalised without measuring them again;
    ``None`` for BatchNorm models (RESET needs none)."""
    if has_batchnorm(template):
        return None
    ends = []
    for s in aligned:
        m = copy.deepcopy(template)
        m.load_state_dict(s)
        ends.append(m.eval())
    return renorm.model_statistics(ends, stats_data.x)


def evaluate_merge(template: torch.nn.Module, aligned: Sequence[Mapping[str, torch.Tensor]],
                   eval_data: TensorData, stats_data: TensorData,
                   statistics: Sequence[renorm.Goal] | None = None) -> dict[str, tuple[float, float]]:
    """``{renorm: (loss, accuracy)}`` of the mean of ``aligned`` on ``eval_data``: as it is
    (``none``) and re-normalised on ``stats_data`` (``RESET`` or ``REPAIR``, :func:`renorm_name`;
    REPAIR's goal: the aligned endpoints' mean per-unit statistics, from ``statistics`` when given:
    :func:`endpoint_statistics` of ``aligned`` or of a longer list it is the start of)."""
    merged = average_states(aligned)
    out = {"none": evaluate_state(template, merged, eval_data)}
    kind = renorm_name(template)
    if kind == "RESET":
        out[kind] = evaluate_state(template, merged, eval_data, reset_data=stats_data)
        return out
    if statistics is None:
        statistics = endpoint_statistics(template, aligned, stats_data)
    goal = renorm.combine_goals(statistics[:len(aligned)], [1.0 / len(aligned)] * len(aligned))
    avg = copy.deepcopy(template)
    avg.load_state_dict(merged)
    out[kind] = evaluate(renorm.repair(avg, goal, stats_data.x), eval_data)
    return out


def _matcher(name: str, regime: str, template, spec, stats: TensorData, ste_data: TensorData, ste: Mapping,
             seed: int):
    """The :data:`~lmc_utils.matching.Matcher` of ``name``. Under the iterative regime the targets
    are averages, whose BatchNorm statistics activation matching first recomputes on ``stats``."""
    if name == "weight":
        return weight_matcher(spec, seed=seed)
    if name == "activation":
        reset = stats if regime == "iterative" and has_batchnorm(template) else None
        return activation_matcher(template, stats.x, spec, reset_data=reset)
    if name == "ste":
        return ste_matcher(template, ste_data, spec, seed=seed, **dict(ste))
    raise ValueError(f"unknown matcher {name!r}; choose one of {', '.join(MATCHERS)}")


def check_jobs(jobs: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """``{matcher: [regimes]}`` checked against :data:`MATCHERS` and :data:`~lmc_utils.matching.REGIMES`."""
    out = {}
    for m, regimes in jobs.items():
        if m not in MATCHERS:
            raise ValueError(f"unknown matcher {m!r}; choose from {', '.join(MATCHERS)}")
        bad = [r for r in regimes if r not in REGIMES]
        if bad:
            raise ValueError(f"matcher {m!r}: unknown regimes {bad}; choose from {', '.join(REGIMES)}")
        out[m] = list(regimes)
    return out


def measure_group(models: Sequence[torch.nn.Module], ns: Sequence[int], jobs: Mapping[str, Sequence[str]],
                  eval_data: TensorData, stats_data: TensorData, ste_data: TensorData | None = None,
                  ste: Mapping | None = None, max_iterations: int = 30, seed: int = 0,
                  matched: bool = True, max_n_by_matcher: Mapping[str, int] | None = None,
                  ) -> tuple[list[dict], list[dict], list[dict]]:
    """Every merge of one group: rows of ``merged``, ``trace`` and ``endpoints`` (without the
    experiment/kind/group columns). ``matched=False``: the plain average only (spawned groups).
    ``max_n_by_matcher``: a matcher's largest n (STE: every model beyond the first costs a run)."""
    template = copy.deepcopy(models[0]).eval()
    spec = P.spec_for(template)
    states = [m.state_dict() for m in models]
    ns = [n for n in ns if n <= len(states)]
    default = renorm_name(template) if has_batchnorm(template) else "none"
    end_rows = []
    for i, m in enumerate(models):
        loss, acc = evaluate(m, eval_data)
        end_rows.append({"model": i, "loss": loss, "accuracy": acc})
    rows, trace = [], []

    def add(n, matcher, regime, aligned, iterations=0, converged=None, statistics=None):
        ends = end_rows[:n]
        for rn, (loss, acc) in evaluate_merge(template, aligned[:n], eval_data, stats_data, statistics).items():
            rows.append({"n": n, "matcher": matcher, "regime": regime, "renorm": rn, "default": rn == default,
                         "loss": loss, "accuracy": acc,
                         "endpoints_loss": float(np.mean([e["loss"] for e in ends])),
                         "endpoints_accuracy": float(np.mean([e["accuracy"] for e in ends])),
                         "iterations": iterations, "converged": converged})

    prefix = endpoint_statistics(template, states[:max(ns)], stats_data)  # the first n of them, for every n
    for n in ns:
        add(n, NAIVE, "none", states, statistics=prefix)
    if not matched:
        return rows, trace, end_rows
    for name, regimes in check_jobs(jobs).items():
        name_ns = [n for n in ns if n <= (max_n_by_matcher or {}).get(name, max(ns))]
        if not name_ns:
            continue
        for regime in regimes:
            match = _matcher(name, regime, template, spec, stats_data, ste_data, ste or {}, seed)
            if regime != "iterative":
                res = merge_many(states[:max(name_ns)], spec, regime=regime, matcher=match, seed=seed)
                prefix = endpoint_statistics(template, res.aligned, stats_data)
                for n in name_ns:
                    add(n, name, regime, res.aligned, statistics=prefix)
                continue
            for n in name_ns:
                res = merge_many(states[:n], spec, regime="iterative", matcher=match, max_iterations=max_iterations,
                                 seed=seed)
                add(n, name, regime, res.aligned, res.iterations, res.converged)
                for it, obj in enumerate(res.objective):
                    trace.append({"n": n, "matcher": name, "iteration": it, "objective": obj,
                                  "cosine": obj / res.scale if res.scale > 0 else float("nan"),
                                  "converged": res.converged})
    return rows, trace, end_rows


def run(experiments: Mapping[str, Mapping], n_groups: Mapping[str, int], group_size: Mapping[str, int],
        spawned_groups: Mapping[str, int], parent_epochs: int, ns: Sequence[int], jobs: Mapping[str, Sequence[str]],
        jobs_by_experiment: Mapping[str, Mapping[str, Sequence[str]]] | None = None, max_iterations: int = 30,
        ste: Mapping | None = None, ste_samples: int | None = None, stats_samples: int | None = None,
        eval_subset: int | None = None, seed: int = 0, max_n_by_matcher: Mapping[str, int] | None = None,
        device="auto", progress: bool = True) -> Result:
    """Every experiment ``name -> TrainConfig fields``: ``n_groups[name]`` groups of
    ``group_size[name]`` independent models and ``spawned_groups[name]`` groups of as many spawned
    children (parents trained ``parent_epochs``), merged for every ``n`` of ``ns`` by every
    ``matcher -> [regimes]`` of ``jobs`` (``jobs_by_experiment[name]`` replaces it for one experiment),
    a matcher only up to its ``max_n_by_matcher`` models when given.

    Data: ``eval_subset`` test examples for every loss and accuracy; ``stats_samples`` training
    examples for RESET, REPAIR's statistics and activation matching; ``ste_samples`` training
    examples for STE (``ste``: keyword arguments of :func:`~lmc_utils.matching.ste_matching`).
    """
    if not ns or min(ns) < 1:
        raise ValueError(f"ns must be a non-empty list of positive model counts, got {ns}")
    if parent_epochs < 1:
        raise ValueError(f"parent_epochs must be at least 1, got {parent_epochs}")
    for m, top in (max_n_by_matcher or {}).items():
        if m not in MATCHERS or int(top) < 1:
            raise ValueError(f"max_n_by_matcher: {m!r}: {top!r}; give a matcher of {', '.join(MATCHERS)} and "
                             f"a positive number of models")
    parts = {"merged": [], "trace": [], "endpoints": []}
    for name, cfg in experiments.items():
        for what, table in (("n_groups", n_groups), ("group_size", group_size), ("spawned_groups", spawned_groups)):
            if name not in table:
                raise ValueError(f"{what} has no entry for experiment {name!r}")
        base = zoo.TrainConfig(**cfg)
        size = int(group_size[name])
        exp_jobs = check_jobs((jobs_by_experiment or {}).get(name, jobs))
        stats = data_mod.load(base.dataset, "train", subset=stats_samples, device=device)
        test = data_mod.load(base.dataset, "test", subset=eval_subset, device=device)
        ste_data = (data_mod.load(base.dataset, "train", subset=ste_samples, device=device)
                    if "ste" in exp_jobs else None)
        kinds = [("independent", group_configs(base, int(n_groups[name]), size, seed))]
        if int(spawned_groups[name]) > 0:
            kinds.append(("spawned", spawned_configs(base, int(spawned_groups[name]), size, parent_epochs, seed)))
        for kind, groups in kinds:
            flat = zoo.get_many([c for g in groups for c in g], device=device, progress=progress)
            trained = [flat[i * size:(i + 1) * size] for i in range(len(groups))]
            quality.record(name, flat, arm="" if kind == "independent" else kind, device=device)
            for g, members in enumerate(tqdm(trained, desc=f"{name}: {kind} groups", leave=False,
                                             disable=not progress)):
                rows, trace, ends = measure_group([t.model for t in members], ns, exp_jobs, test, stats, ste_data,
                                                  ste, max_iterations=max_iterations, seed=seed + g,
                                                  matched=kind == "independent", max_n_by_matcher=max_n_by_matcher)
                tag = {"experiment": name, "kind": kind, "group": g}
                parts["merged"] += [{**tag, "arch": base.arch, **r} for r in rows]
                parts["trace"] += [{"experiment": name, "group": g, **r} for r in trace]
                parts["endpoints"] += [{**tag, **r} for r in ends]
    if any("ste" in check_jobs((jobs_by_experiment or {}).get(name, jobs)) for name in experiments):
        quality.ste_budget([], int((ste or {}).get("steps", 15_000)), claims=("wm_merges_better_than_ste",),
                           fixed_length=(ste or {}).get("patience") is None)
    cols = {"trace": ["experiment", "group", "n", "matcher", "iteration", "objective", "cosine", "converged"]}
    return Result(**{k: pd.DataFrame(v, columns=cols.get(k)) for k, v in parts.items()})


# --- summaries ------------------------------------------------------------------------------

def merged_summary(merged: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over groups (count: ``groups``) of the merged loss and accuracy (and the
    endpoints' mean), per experiment, kind, matcher, regime, re-normalisation and n."""
    keys = ["experiment", "kind", "matcher", "regime", "renorm", "models"]
    out = tables_mod.mean_std(merged.rename(columns={"n": "models"}), keys, ["accuracy", "loss", "endpoints_accuracy"])
    return out.rename(columns={"n": "groups", "models": "n"})


def convergence_summary(merged: pd.DataFrame, trace: pd.DataFrame) -> pd.DataFrame:
    """Iterative matching per experiment, matcher and n: groups, mean passes, the share of runs
    that converged before the cap, and the models' weighted mean pairwise cosine similarity
    before matching and after the last pass (``cosine_start``, ``cosine_end``)."""
    it = merged[(merged["regime"] == "iterative") & (merged["renorm"] == "none")]
    if it.empty:
        return pd.DataFrame(columns=["experiment", "matcher", "n", "groups", "iterations_mean", "converged_share",
                                     "cosine_start", "cosine_end"])
    ordered = trace.sort_values("iteration").groupby(["experiment", "group", "n", "matcher"])
    start = ordered.head(1).groupby(["experiment", "matcher", "n"])["cosine"].mean()
    end = ordered.tail(1).groupby(["experiment", "matcher", "n"])["cosine"].mean()
    rows = []
    for (exp, m, n), s in it.groupby(["experiment", "matcher", "n"], sort=False):
        rows.append({"experiment": exp, "matcher": m, "n": n, "groups": len(s), "iterations_mean": s["iterations"].mean(),
                     "converged_share": s["converged"].astype(float).mean(),
                     "cosine_start": float(start.get((exp, m, n), np.nan)),
                     "cosine_end": float(end.get((exp, m, n), np.nan))})
    return pd.DataFrame(rows)


def tables(result: Result) -> dict[str, pd.DataFrame]:
    """The tables the notebook saves: ``08_merged`` (every merge, summarised over groups) and
    ``08_convergence`` (iterative matching)."""
    return {"08_merged": merged_summary(result.merged),
            "08_convergence": convergence_summary(result.merged, result.trace)}


# --- verdicts -------------------------------------------------------------------------------

def _per_group(frame: pd.DataFrame, **where) -> pd.Series:
    """``accuracy`` per group for the rows matching ``where`` (one row per group expected)."""
    sel = frame
    for k, v in where.items():
        sel = sel[sel[k] == v]
    return sel.groupby("group")["accuracy"].mean()


def statistics(result: Result, experiment: str) -> list[tuple[str, str, np.ndarray]]:
    """``(criterion, subject, values per group)`` for one experiment (see ``params/criteria.yaml``):

    - ``cnn_merge_degrades`` (conv nets): WM merge accuracy at the smallest n minus at the largest,
      default evaluation, per regime;
    - ``mlp_merge_suffices`` (MLPs): the n endpoints' mean accuracy minus the WM merge's at the
      largest n, no re-normalisation, reference and sequential regimes;
    - ``iterative_gains_little``: iterative minus reference WM merge accuracy at the largest n,
      default evaluation;
    - ``renorm_changes_merge``: re-normalised minus plain WM merge accuracy at the largest n, per regime;
    - ``same_basin_merges_well``: spawned groups, the largest (over n) endpoints' mean accuracy
      minus the plain average's, no matching, no re-normalisation;
    - ``wm_merges_better_than_ste``: WM minus STE merge accuracy, reference regime, default
      evaluation, mean over the n >= 3 at which both merged.
    """
    m = result.merged[result.merged["experiment"] == experiment]
    ind = m[m["kind"] == "independent"]
    out = []
    if ind.empty:
        return out
    n_lo, n_hi = int(ind["n"].min()), int(ind["n"].max())
    is_mlp = bool((ind["arch"] == "mlp").all())
    wm = ind[ind["matcher"] == "weight"]
    dflt = wm[wm["default"]]
    regimes = list(dict.fromkeys(wm["regime"]))
    for regime in regimes:
        if not is_mlp and n_hi > n_lo:
            d = _per_group(dflt, regime=regime, n=n_lo) - _per_group(dflt, regime=regime, n=n_hi)
            out.append(("cnn_merge_degrades", f"{experiment} / WM {regime} (n {n_lo} → {n_hi})", d.to_numpy()))
        if is_mlp and regime in ("reference", "sequential"):
            sel = wm[(wm["regime"] == regime) & (wm["renorm"] == "none") & (wm["n"] == n_hi)]
            d = (sel.groupby("group")["endpoints_accuracy"].mean() - sel.groupby("group")["accuracy"].mean())
            out.append(("mlp_merge_suffices", f"{experiment} / WM {regime} (n = {n_hi})", d.to_numpy()))
    if {"iterative", "reference"} <= set(regimes):
        d = _per_group(dflt, regime="iterative", n=n_hi) - _per_group(dflt, regime="reference", n=n_hi)
        out.append(("iterative_gains_little", f"{experiment} / WM (n = {n_hi})", d.to_numpy()))
    for regime in regimes:
        rn = [r for r in wm["renorm"].unique() if r != "none"]
        for r in rn:
            d = (_per_group(wm, regime=regime, n=n_hi, renorm=r) - _per_group(wm, regime=regime, n=n_hi, renorm="none"))
            out.append(("renorm_changes_merge", f"{experiment} / WM {regime} + {r} (n = {n_hi})", d.to_numpy()))
    sp = m[(m["kind"] == "spawned") & (m["renorm"] == "none") & (m["matcher"] == NAIVE)]
    if not sp.empty:
        d = (sp["endpoints_accuracy"] - sp["accuracy"]).groupby(sp["group"]).max()
        out.append(("same_basin_merges_well", f"{experiment} / spawned (n ≤ {int(sp['n'].max())})", d.to_numpy()))
    ste = ind[(ind["matcher"] == "ste") & (ind["regime"] == "reference") & ind["default"] & (ind["n"] >= 3)]
    if not ste.empty:
        ref = dflt[(dflt["regime"] == "reference") & dflt["n"].isin(set(ste["n"]))]
        d = ref.groupby("group")["accuracy"].mean() - ste.groupby("group")["accuracy"].mean()
        both = sorted(set(ste["n"]))
        label = f"n ≥ 3" if both == sorted(set(ind[ind["n"] >= 3]["n"])) else "n " + ", ".join(map(str, both))
        out.append(("wm_merges_better_than_ste", f"{experiment} / WM vs STE (reference, {label})", d.dropna().to_numpy()))
    return out


def verdicts(result: Result, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One verdict row per criterion x subject (:func:`statistics`; one value per group).
    Raises :class:`~lmc_utils.verdicts.CriteriaError` if a statistic's criterion is not declared."""
    rows = []
    for experiment in dict.fromkeys(result.merged["experiment"]):
        for name, subject, values in statistics(result, experiment):
            if name not in criteria:
                raise V.CriteriaError(f"{NOTEBOOK}: criterion {name!r} is not declared in params/criteria.yaml")
            rows.append(V.verdict(NOTEBOOK, criteria[name], subject, values))
    return V.table(rows)
