"""Barriers: the one formula, and the tables every study builds from it.

The barrier of a curve ``L(lambda)`` on ``[0, 1]`` is ``max_lambda L(lambda) - ((1 - lambda) L(0) + lambda L(1))``,
the largest gap above the chord between the endpoints (for accuracy, of ``-accuracy``: the largest drop).
:func:`barrier` takes an :func:`lmc_utils.measure.interpolation.interpolation_curve`; :func:`curve_barriers`
many curves on one grid as an array; :func:`barrier_rows` groups of curves in a long table, with the
endpoint and midpoint values the studies report beside the barriers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def _barrier_1d(lam: np.ndarray, values: np.ndarray) -> float:
    order = np.argsort(lam)
    lam, values = lam[order], values[order]
    if lam[0] != 0.0 or lam[-1] != 1.0:
        raise ValueError("a barrier needs the endpoints lam=0 and lam=1 on the curve")
    line = (1 - lam) * values[0] + lam * values[-1]
    return float(np.max(values - line))


def barrier(curve: pd.DataFrame) -> pd.DataFrame:
    """Loss and accuracy barriers of an :func:`interpolation_curve`, one row per split.

    Returns a DataFrame indexed by ``split`` with columns ``loss`` (nats) and ``accuracy``
    (drop in accuracy, a fraction in ``[0, 1]``).
    """
    if "split" not in curve:
        curve = curve.assign(split="data")
    rows = {}
    for split, c in curve.groupby("split", sort=False):
        lam = c["lam"].to_numpy(float)
        rows[split] = {"loss": _barrier_1d(lam, c["loss"].to_numpy(float)),
                       "accuracy": _barrier_1d(lam, -c["accuracy"].to_numpy(float))}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "split"
    return out


def curve_barriers(values: np.ndarray, lams: np.ndarray) -> dict[str, np.ndarray]:
    """Barriers of many loss curves at once: ``values`` is ``[curves, lambdas]`` on the grid ``lams``
    (ascending, from 0 to 1). Returns ``{"barrier": max(L - chord), "epsilon": max(L) - max(L(0), L(1))}``
    per curve (``[curves]``). The first is :func:`barrier`'s loss barrier; the second is the
    epsilon-loss, the smallest epsilon for which the pair is epsilon-mode connected (the loss along the
    line never exceeds the worse endpoint by more than epsilon). Both are 0 for a constant curve; the
    epsilon-loss is not a metric between models (no triangle inequality)."""
    values, lams = np.asarray(values, dtype=float), np.asarray(lams, dtype=float)
    if values.ndim != 2 or values.shape[1] != lams.shape[0] or lams[0] != 0.0 or lams[-1] != 1.0:
        raise ValueError("curve_barriers needs values [curves, lambdas] on a grid from lam=0 to lam=1")
    chord = (1 - lams)[None] * values[:, :1] + lams[None] * values[:, -1:]
    return {"barrier": (values - chord).max(1),
            "epsilon": values.max(1) - np.maximum(values[:, 0], values[:, -1])}


def barrier_rows(curves: pd.DataFrame, by: Sequence[str] = (), endpoints: Sequence[str] = (),
                 midpoint: bool = False) -> pd.DataFrame:
    """Loss and accuracy barriers (:func:`barrier`) of every curve in ``curves`` (columns ``lam, loss,
    accuracy``, the ``by`` columns and, where there are several splits, ``split``): one row per group of
    ``by`` and split, with columns ``by``, ``split`` (only where ``curves`` has it), ``loss_barrier``,
    ``accuracy_barrier``, then ``<metric>_a`` and ``<metric>_b`` (the values at lambda 0 and 1) for each
    metric of ``endpoints``, then with ``midpoint`` the ``midpoint_accuracy`` and ``midpoint_loss`` of
    the point nearest lambda = 1/2. Without a ``split`` column all of a group's rows are one curve."""
    by = list(by)
    split = "split" in curves
    rows = []
    for key, group in (curves.groupby(by, sort=False) if by else [((), curves)]):
        key = key if isinstance(key, tuple) else (key,)
        cols = ["lam", "split", "loss", "accuracy"] if split else ["lam", "loss", "accuracy"]
        for name, b in barrier(group[cols]).iterrows():
            g = group[group["split"] == name] if split else group
            row = {**dict(zip(by, key)), **({"split": name} if split else {}),
                   "loss_barrier": float(b["loss"]), "accuracy_barrier": float(b["accuracy"])}
            first, last = g["lam"].idxmin(), g["lam"].idxmax()
            for metric in endpoints:
                row[f"{metric}_a"], row[f"{metric}_b"] = float(g.loc[first, metric]), float(g.loc[last, metric])
            if midpoint:
                mid = g.iloc[int(np.argmin(np.abs(g["lam"].to_numpy() - 0.5)))]
                row["midpoint_accuracy"], row["midpoint_loss"] = float(mid["accuracy"]), float(mid["loss"])
            rows.append(row)
    return pd.DataFrame(rows)
