"""Notebook 00's protocol (Entezari et al. 2022; Ainsworth et al. 2023 §3-5; Jordan et al. 2023):
loss barriers of independent pairs along the straight line, before and after weight matching (WM,
over several random group orders) and activation matching (AM), with and without RESET for
BatchNorm networks; summary tables and verdict rows. No plots, no prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import permutation as P
from ..claims import tables as tables_mod
from ..claims import verdicts as V
from .. import zoo
from ..core.data import TensorData
from ..measure.barrier import barrier_rows
from ..measure.interpolation import has_batchnorm, interpolation_curve
from ..matching.rebasin import align
from . import quality

NOTEBOOK = "00_rebasin_basics"
METHODS = ("naive", "weight", "activation")


@dataclass
class Result:
    """Per-pair barriers and the first pair's curves of every experiment."""

    barriers: pd.DataFrame  # experiment, pair, method, order, reset, split, loss_barrier, accuracy_barrier,
    #                         loss_a, loss_b, accuracy_a, accuracy_b
    curves: pd.DataFrame  # experiment, method, reset, lam, split, loss, accuracy (pair 0, group order 0)
    batchnorm: dict[str, bool] = field(default_factory=dict)  # experiment -> has BatchNorm (RESET applies)


def run(configs: Mapping[str, zoo.TrainConfig], n_pairs: Mapping[str, int] | int,
        splits: Mapping[str, Mapping[str, TensorData]], match_data: Mapping[str, TensorData],
        n_orders: int = 1, n_points: int = 11, verdict_split: str = "test", seed: int = 0,
        device="auto", progress: bool = True) -> Result:
    """For every experiment: ``n_pairs`` independent pairs (seeds ``seed + 2i, seed + 2i + 1``);
    B aligned to A naively, by WM with ``n_orders`` random group orders (matching seeds
    ``0 .. n_orders - 1``) and by AM on ``match_data[name]``; the loss/accuracy barrier of each
    alignment with and (BatchNorm models) without RESET on ``match_data[name]``.

    The first pair is evaluated on every split of ``splits[name]`` (its curves are returned for the
    figures); further pairs only on ``verdict_split``, the split the verdicts use.
    """
    if n_orders < 1:
        raise ValueError(f"n_orders must be at least 1, got {n_orders}")
    rows, curve_frames, bn = [], [], {}
    for name, base in configs.items():
        n = n_pairs if isinstance(n_pairs, int) else n_pairs[name]
        pairs = zoo.independent_pairs(base, n, seed, device)
        quality.record(name, [m for p in pairs for m in p], device=device)
        bn[name] = has_batchnorm(pairs[0][0].model)
        resets = [False, True] if bn[name] else [False]
        reset_on = match_data[name]
        for i, (a, b) in enumerate(tqdm(pairs, desc=f"{name}: pairs", leave=False, disable=not progress)):
            spec = P.spec_for(a.model)
            state_a, state_b = a.model.state_dict(), b.model.state_dict()
            jobs = [("naive", 0), *[("weight", k) for k in range(n_orders)], ("activation", 0)]
            evaluate_on = dict(splits[name]) if i == 0 else {verdict_split: splits[name][verdict_split]}
            for method, order in jobs:
                perm = align(method, a.model, b.model, reset_on.x, seed=order)
                aligned = P.apply_permutation(spec, perm, state_b)
                for reset in resets:
                    curve = interpolation_curve(a.model, state_a, aligned, evaluate_on, n_points=n_points,
                                                reset_bn=reset, reset_data=reset_on)
                    key = {"experiment": name, "pair": i, "method": method, "order": order, "reset": reset}
                    ends = barrier_rows(curve, endpoints=("loss", "accuracy"))
                    rows += [{**key, **r} for r in ends.to_dict("records")]
                    if i == 0 and order == 0:
                        curve_frames.append(curve.assign(experiment=name, method=method, reset=reset))
    curves = pd.concat(curve_frames, ignore_index=True)[["experiment", "method", "reset", "lam", "split", "loss",
                                                          "accuracy"]]
    return Result(pd.DataFrame(rows), curves, bn)


def _per_pair(result: Result, split: str) -> pd.DataFrame:
    """Barriers on ``split`` with WM's group orders averaged per pair (one row per pair, method, reset)."""
    b = result.barriers[result.barriers["split"] == split]
    cols = ["loss_barrier", "accuracy_barrier", "loss_a", "loss_b", "accuracy_a", "accuracy_b"]
    return b.groupby(["experiment", "method", "reset", "split", "pair"], sort=False)[cols].mean().reset_index()


def tables(result: Result) -> dict[str, pd.DataFrame]:
    """``00_barriers``: mean and standard deviation over pairs (group orders averaged per pair first)
    per experiment, method, RESET setting and split; ``00_barriers_pairs``: every pair and group order."""
    per_pair = pd.concat([_per_pair(result, s) for s in result.barriers["split"].unique()], ignore_index=True)
    summary = tables_mod.mean_std(per_pair, ["experiment", "method", "reset", "split"],
                                  ["loss_barrier", "accuracy_barrier", "accuracy_a", "accuracy_b"])
    return {"00_barriers": summary.rename(columns={"n": "n_pairs"}), "00_barriers_pairs": result.barriers}


def _matrix(result: Result, experiment: str, method: str, reset: bool, column: str, split: str) -> pd.DataFrame:
    """``pair x order`` values of ``column`` (one column for methods without group orders)."""
    b = result.barriers
    sub = b[(b["experiment"] == experiment) & (b["method"] == method) & (b["reset"] == reset) & (b["split"] == split)]
    return sub.pivot_table(index="pair", columns="order", values=column, sort=True)


def _ratio(num: pd.DataFrame | pd.Series, den: pd.Series | pd.DataFrame) -> np.ndarray:
    """``num / den`` per pair (rows aligned on the pair index), NaN where ``den`` is not positive: a
    pair with nothing to remove says nothing about the share removed (it is left out of n)."""
    den = den.where(den > 0)
    out = num.div(den, axis=0) if isinstance(num, pd.DataFrame) and isinstance(den, pd.Series) else num / den
    return out.to_numpy(dtype=float)


def _subject(experiment: str, method: str, reset: bool) -> str:
    return f"{experiment} / {method}" + (" + RESET" if reset else "")


def verdicts(result: Result, criteria: Mapping[str, V.Criterion], split: str = "test") -> pd.DataFrame:
    """One row per claim x subject (see ``params/criteria.yaml``, section ``00_rebasin_basics``).

    Units are independent pairs; WM's group orders are the repeats. The reference RESET setting is
    RESET on for BatchNorm models (their naive barrier with recomputed statistics), off otherwise.
    ``reset_needed`` is judged on BatchNorm experiments only (a row with n = 0 if there is none).
    """
    rows = []
    for name in result.barriers["experiment"].unique():
        ref = result.batchnorm.get(name, False)
        naive = _matrix(result, name, "naive", ref, "loss_barrier", split)[0]
        ends = (_matrix(result, name, "naive", ref, "loss_a", split)[0]
                + _matrix(result, name, "naive", ref, "loss_b", split)[0]) / 2
        if "naive_barrier" in criteria:
            rows.append(V.verdict(NOTEBOOK, criteria["naive_barrier"], _subject(name, "naive", ref),
                                  _ratio(naive, ends)))
        for method in ("weight", "activation"):
            matched = _matrix(result, name, method, ref, "loss_barrier", split)
            if matched.empty:
                continue
            if "matching_removes_barrier" in criteria:
                rows.append(V.verdict(NOTEBOOK, criteria["matching_removes_barrier"], _subject(name, method, ref),
                                      _ratio(matched, naive)))
            if ref and "reset_needed" in criteria:
                without = _matrix(result, name, method, False, "loss_barrier", split)
                rows.append(V.verdict(NOTEBOOK, criteria["reset_needed"], f"{name} / {method}",
                                      _ratio(matched, without)))
    if "reset_needed" in criteria and not any(r["claim"] == "reset_needed" for r in rows):
        rows.append(V.verdict(NOTEBOOK, criteria["reset_needed"], "no BatchNorm experiment", np.array([])))
    order = {name: k for k, name in enumerate(criteria)}
    return V.table(sorted(rows, key=lambda r: order[r["claim"]]))
