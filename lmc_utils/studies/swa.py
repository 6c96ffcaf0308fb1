"""Notebook 06's protocol (the talk, "Analyzing SWA"; Izmailov et al. 2018): SWA samples are
implicitly aligned. Per hidden width, ``n_runs`` SWA runs (the units): pairwise naive barriers among
each run's samples and the share of units weight matching leaves in place, the SWA average against
its samples; independent pairs of runs (their final iterates) as the contrast. Summary tables and
verdict rows; no plots, no prose."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pandas as pd
from tqdm.auto import tqdm

from .. import permutation as P
from ..claims import verdicts as V
from .. import zoo
from ..core.data import TensorData
from ..measure.barrier import barrier_rows, curve_barriers
from ..measure.interpolation import batched_curves, evaluate_state, has_batchnorm, interpolation_curve
from ..matching import unit_agreement, weight_matching
from . import quality

NOTEBOOK = "06_swa_alignment"


@dataclass
class Result:
    samples: pd.DataFrame  # width, run, i, j, loss_barrier, accuracy_barrier (pairs of one run's SWA samples)
    independent: pd.DataFrame  # width, pair, run_a, run_b, loss_barrier, accuracy_barrier (final iterates)
    identity: pd.DataFrame  # width, kind (samples | independent), run_or_pair, i, j, order, identity_share
    averages: pd.DataFrame  # width, run, model (sample k | SWA average), loss, accuracy


def _barriers(model, states_a, states_b, eval_data, reset_data, n_points) -> list[dict[str, float]]:
    """Naive (no permutation) test loss and accuracy barriers between ``states_a[p]`` and ``states_b[p]``
    for every pair ``p``: all pairs and lambdas evaluated together (:func:`batched_curves`) for models
    without BatchNorm, one curve at a time with RESET at every lambda for BatchNorm models."""
    if has_batchnorm(model):
        out = []
        for sa, sb in zip(states_a, states_b):
            curve = interpolation_curve(model, sa, sb, eval_data, n_points=n_points, reset_bn=True,
                                        reset_data=reset_data)
            row = barrier_rows(curve).iloc[0]
            out.append({"loss_barrier": row["loss_barrier"], "accuracy_barrier": row["accuracy_barrier"]})
        return out
    curves = batched_curves(model, list(states_a), list(states_b), eval_data, n_points=n_points)
    loss = curve_barriers(curves["loss"], curves["lam"])["barrier"]
    accuracy = curve_barriers(-curves["accuracy"], curves["lam"])["barrier"]
    return [{"loss_barrier": float(l), "accuracy_barrier": float(a)} for l, a in zip(loss, accuracy)]


def _identity_shares(model, state_a, state_b, n_orders: int) -> list[float]:
    """Share of units weight matching (group orders ``0 .. n_orders - 1``) leaves in place."""
    spec = P.spec_for(model)
    return [unit_agreement(weight_matching(spec, state_a, state_b, seed=k).perm, P.identity(spec))
            for k in range(n_orders)]


def run(base: zoo.TrainConfig, widths: list[int], eval_data: TensorData, reset_data: TensorData, n_runs: int = 2,
        sample_stride: int = 1, n_orders: int = 1, n_points: int = 11, seed: int = 0, device="auto",
        progress: bool = True) -> Result:
    """For each hidden width, ``n_runs`` runs of ``base`` (which has ``swa_epochs``; seeds ``seed + r``).

    Within every run, for each pair of its SWA samples (every ``sample_stride``-th): the naive loss and
    accuracy barrier on ``eval_data`` and the share of units weight matching leaves in place (per group
    order); the loss/accuracy of each sample and of the SWA average. Between runs ``2p`` and ``2p + 1``
    (``n_runs // 2`` independent pairs): the same barrier and shares for their final iterates.
    """
    if base.swa_epochs < 2:
        raise ValueError("the SWA study needs base.swa_epochs >= 2")
    if n_runs < 1 or n_orders < 1:
        raise ValueError(f"n_runs and n_orders must be at least 1, got {n_runs} and {n_orders}")
    rows_s, rows_i, rows_id, rows_a = [], [], [], []
    for width in tqdm(widths, desc="widths", leave=False, disable=not progress):
        cfg = zoo.with_width(base, width)
        runs = zoo.get_many([cfg.replace(seed=seed + r) for r in range(n_runs)], device=device, progress=progress)
        quality.record("SWA runs", runs, arm=f"width {width}", device=device, declared_as="model")  # last iterates
        scratch = runs[0].model
        for r, run_ in enumerate(runs):
            chosen = list(range(0, len(run_.samples), sample_stride))
            pairs = [(i, j) for a_i, i in enumerate(chosen) for j in chosen[a_i + 1:]]
            bars = _barriers(scratch, [run_.samples[i] for i, _ in pairs], [run_.samples[j] for _, j in pairs],
                             eval_data, reset_data, n_points)
            for (i, j), b in zip(pairs, bars):
                sa, sb = run_.samples[i], run_.samples[j]
                rows_s.append({"width": width, "run": r, "i": i + 1, "j": j + 1, **b})
                for k, share in enumerate(_identity_shares(scratch, sa, sb, n_orders)):
                    rows_id.append({"width": width, "kind": "samples", "unit": r, "i": i + 1, "j": j + 1,
                                    "order": k, "identity_share": share})
            for k, state in enumerate(run_.samples):
                loss, acc = evaluate_state(scratch, state, eval_data)  # a sample keeps its own BN statistics
                rows_a.append({"width": width, "run": r, "model": f"sample {k + 1}", "loss": loss, "accuracy": acc})
            loss, acc = evaluate_state(scratch, run_.swa_state, eval_data)
            rows_a.append({"width": width, "run": r, "model": "SWA average", "loss": loss, "accuracy": acc})
        finals = [(runs[2 * p].samples[-1], runs[2 * p + 1].samples[-1]) for p in range(n_runs // 2)]
        bars = _barriers(scratch, [a for a, _ in finals], [b for _, b in finals], eval_data, reset_data, n_points)
        for p, ((fa, fb), b) in enumerate(zip(finals, bars)):
            rows_i.append({"width": width, "pair": p, "run_a": 2 * p, "run_b": 2 * p + 1, **b})
            for k, share in enumerate(_identity_shares(scratch, fa, fb, n_orders)):
                rows_id.append({"width": width, "kind": "independent", "unit": p, "i": 2 * p, "j": 2 * p + 1,
                                "order": k, "identity_share": share})
    cols_i = ["width", "pair", "run_a", "run_b", "loss_barrier", "accuracy_barrier"]
    return Result(pd.DataFrame(rows_s), pd.DataFrame(rows_i, columns=cols_i), pd.DataFrame(rows_id),
                  pd.DataFrame(rows_a))


def per_unit(result: Result) -> pd.DataFrame:
    """One row per width and unit (an SWA run, or an independent pair of runs): the statistics the
    verdicts judge. Columns ``width, kind, unit, max_loss_barrier`` (largest over the run's sample
    pairs; the pair's barrier for independent pairs), ``mean_loss_barrier``, ``identity_share`` (mean
    over sample pairs and group orders), and for SWA runs ``swa_minus_samples_loss`` (test loss of
    the SWA average minus the mean test loss of its samples)."""
    rows = []
    shares = result.identity.groupby(["width", "kind", "unit"], sort=False)["identity_share"].mean()
    for (width, r), s in result.samples.groupby(["width", "run"], sort=False):
        av = result.averages[(result.averages["width"] == width) & (result.averages["run"] == r)].set_index("model")
        samples = av.drop(index="SWA average")
        rows.append({"width": width, "kind": "samples", "unit": r, "max_loss_barrier": s["loss_barrier"].max(),
                     "mean_loss_barrier": s["loss_barrier"].mean(),
                     "identity_share": shares.get((width, "samples", r), float("nan")),
                     "swa_minus_samples_loss": av.loc["SWA average", "loss"] - samples["loss"].mean()})
    for r in result.independent.itertuples():
        rows.append({"width": r.width, "kind": "independent", "unit": r.pair, "max_loss_barrier": r.loss_barrier,
                     "mean_loss_barrier": r.loss_barrier,
                     "identity_share": shares.get((r.width, "independent", r.pair), float("nan")),
                     "swa_minus_samples_loss": float("nan")})
    return pd.DataFrame(rows)


def tables(result: Result) -> dict[str, pd.DataFrame]:
    """``06_swa_summary``: per width, means over units of the barriers among SWA samples and between
    independent runs, the shares of units weight matching leaves in place, and the SWA average's
    test loss/accuracy next to its samples' mean and best; ``06_swa_vs_samples``: every sample and
    average."""
    units = per_unit(result)
    av = result.averages
    rows = []
    for width in av["width"].unique():
        s = units[(units["width"] == width) & (units["kind"] == "samples")]
        ind = units[(units["width"] == width) & (units["kind"] == "independent")]
        a = av[av["width"] == width]
        swa = a[a["model"] == "SWA average"]
        samples = a[a["model"] != "SWA average"]
        by_run = samples.groupby("run")
        rows.append({"width": width, "n_runs": len(s), "n_independent_pairs": len(ind),
                     "swa_pairs_loss_barrier": s["mean_loss_barrier"].mean(),
                     "swa_pairs_max_loss_barrier": s["max_loss_barrier"].max(),
                     "independent_loss_barrier": ind["max_loss_barrier"].mean(),
                     "swa_pairs_identity_share": s["identity_share"].mean(),
                     "independent_identity_share": ind["identity_share"].mean(),
                     "swa_average_loss": swa["loss"].mean(), "samples_mean_loss": by_run["loss"].mean().mean(),
                     "samples_best_loss": by_run["loss"].min().mean(),
                     "swa_average_accuracy": swa["accuracy"].mean(),
                     "samples_mean_accuracy": by_run["accuracy"].mean().mean(),
                     "samples_best_accuracy": by_run["accuracy"].max().mean()})
    return {"06_swa_summary": pd.DataFrame(rows), "06_swa_vs_samples": av}


def verdicts(result: Result, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One row per claim x width (see ``params/criteria.yaml``, section ``06_swa_alignment``): units
    are SWA runs for the claims about samples and the average, independent pairs of runs for the
    contrasts; weight matching's group orders are averaged per unit."""
    units = per_unit(result)
    ident = result.identity
    claims = {  # claim -> (kind of unit, column)
        "swa_samples_connected": ("samples", "max_loss_barrier"),
        "independent_runs_not_connected": ("independent", "max_loss_barrier"),
        "wm_identity_between_samples": ("samples", "identity_share"),
        "wm_moves_independent_runs": ("independent", "identity_share"),
        "swa_average_not_worse": ("samples", "swa_minus_samples_loss"),
    }
    rows = []
    for claim, (kind, column) in claims.items():
        if claim not in criteria:
            continue
        for width in result.averages["width"].unique():
            if column == "identity_share":  # unit x order: mean over the unit's pairs per order
                sub = ident[(ident["width"] == width) & (ident["kind"] == kind)]
                values = sub.pivot_table(index="unit", columns="order", values="identity_share", aggfunc="mean")
                values = values.to_numpy(dtype=float)
            else:
                sub = units[(units["width"] == width) & (units["kind"] == kind)]
                values = sub[column].to_numpy(dtype=float)
            rows.append(V.verdict(NOTEBOOK, criteria[claim], f"width {width}", values))
    return V.table(rows)
