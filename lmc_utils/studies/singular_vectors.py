"""Notebook 02's protocol: singular values and singular vectors of independently trained models
before and after matching, across widths (Ito et al., ICLR 2025, §4–5).

:func:`run` trains (or loads) ``n_pairs`` independent pairs per experiment and width (seeds
``seed + 2i, seed + 2i + 1``, :func:`lmc_utils.zoo.independent_pairs`), aligns model B of every
pair to model A by each method (no permutation, a random permutation, weight matching under
``n_orders`` random group orders, activation matching) and measures, per layer: the singular value
spectra, the diagonal alignment of singular vectors by rank, the contribution of the top-k singular
pairs to ``<W_a, pi(W_b)>``, how strongly each right singular vector points along the layer's
inputs, the share of large singular values, and the test losses of the naive and weight-matched
midpoints. On the first ``sinkhorn_pairs`` pairs at ``sinkhorn_widths`` it also solves weight
matching by the Sinkhorn relaxation (the solver Ito et al. used) next to the iterative one.

:func:`tables` gives the summary tables, :func:`unit_statistics` one number per independent unit
for every declared claim, and :func:`verdicts` the verdict rows (:mod:`lmc_utils.verdicts`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core import data as data_mod
from .. import permutation as P
from ..measure import spectral
from ..claims import verdicts as V
from .. import zoo
from ..core.data import TensorData
from ..core.device import get_device
from ..measure.distance import l2_distance
from ..measure.evaluation import evaluate
from ..measure.interpolation import evaluate_state, interpolate
from ..matching import sinkhorn_weight_matching, unit_agreement, weight_matching
from ..matching.rebasin import align
from . import quality

NOTEBOOK = "02_singular_vectors"
METHODS = ("naive", "random", "weight", "activation")
FRAMES = ("spectra", "diagonal", "contribution", "inputs", "large", "merged", "invariance", "sinkhorn")


@dataclass
class Result:
    """Tidy tables of every measurement; ``experiment`` and ``width`` columns everywhere."""

    spectra: pd.DataFrame  # pair, model (a | b), layer, rank, s, s_scaled (B's fitted to A's by one constant)
    matrices: dict  # (experiment, width, method, layer) -> {"u": |U_a^T U_b|, "v": |V_a^T V_b|}: pair 0, WM order 0, top ranks
    diagonal: pd.DataFrame  # pair, method, order, layer, rank, rank_fraction, u, v (|<u_i^a, u_i^b>|, |<v_i^a, v_i^b>|)
    contribution: pd.DataFrame  # pair, method, order, layer, k, all, contribution
    inputs: pd.DataFrame  # pair, model, layer, rank, rank_fraction, s, input_alignment
    large: pd.DataFrame  # pair, model, layer, n_large, large_fraction
    merged: pd.DataFrame  # pair, order, loss_a, loss_b, loss_naive_mid, loss_wm_mid (test cross-entropy, nats)
    invariance: pd.DataFrame  # pair, layer, max_singular_value_change, mean_u_alignment, mean_v_alignment (B vs randomly permuted B)
    sinkhorn: pd.DataFrame  # pair, solver, sq_distance, midpoint_test_loss, seconds, agreement_with_iterative, gap_to_iterative
    top: int = 5
    large_ratio: float = 0.5
    layers: dict = field(default_factory=dict)  # experiment -> layer names in order (the last is the output layer)


def hidden_layers(layers) -> list[str]:
    """All layers but the last (the output layer), in order."""
    return list(dict.fromkeys(layers))[:-1]


def _frame(rows: list[dict] | list[pd.DataFrame]) -> pd.DataFrame:
    if rows and isinstance(rows[0], pd.DataFrame):
        return pd.concat(rows, ignore_index=True)
    return pd.DataFrame(rows)


def _per_rank(svd_a: spectral.SVD, svd_b: spectral.SVD, **keys: Any) -> pd.DataFrame:
    diag = spectral.diagonal_alignment(svd_a, svd_b)
    r = len(svd_a.s)
    ranks = np.arange(1, r + 1)
    return pd.DataFrame({**keys, "rank": ranks, "rank_fraction": ranks / r, "u": diag["u"].numpy(),
                         "v": diag["v"].numpy()})


def permuted_spectra(spec: P.PermutationSpec, perm: P.Permutation, svds: dict[str, spectral.SVD]) -> dict[str, spectral.SVD]:
    """The SVDs of the layers of ``apply_permutation(spec, perm, state)`` from those of ``state``:
    ``W' = W[p_out][:, p_in]`` has ``U' = U[p_out]``, ``V' = V[p_in]`` (rows of ``V`` in blocks of
    ``kh * kw`` for convs) and the same singular values, so no decomposition is recomputed."""
    out = {}
    for layer, d in svds.items():
        axes = spec.axes.get(f"{layer}.weight", ())
        if any(g is not None for g in axes[2:]):
            raise NotImplementedError(f"{layer}: permuted kernel axes are not supported")
        u, v = d.u, d.v
        if axes and axes[0] is not None:
            u = u.index_select(0, perm[axes[0]].cpu())
        if len(axes) > 1 and axes[1] is not None:
            v = v.reshape(spec.sizes[axes[1]], -1, v.shape[1]).index_select(0, perm[axes[1]].cpu()).reshape(v.shape)
        out[layer] = spectral.SVD(u=u, s=d.s, v=v)
    return out


def _midpoint_loss(model: torch.nn.Module, state_a, state_b, test: TensorData, reset: TensorData | None) -> float:
    """Test loss of the midpoint of two states (BatchNorm statistics recomputed on ``reset``)."""
    return evaluate_state(model, interpolate(state_a, state_b, 0.5), test, reset)[0]


def _solver_rows(model, spec, sa, sb, wm_perm, wm_seconds: float, test, reset, sinkhorn: dict, seed: int) -> list[dict]:
    """Weight matching by iterative assignment (``wm_perm``, already computed) and by the
    Sinkhorn relaxation on one pair: squared L2 distance, midpoint loss, seconds, agreement."""
    t = time.perf_counter()
    sk = sinkhorn_weight_matching(spec, sa, sb, seed=seed, **sinkhorn)
    sk_seconds = time.perf_counter() - t
    rows = []
    for solver, perm, secs in (("iterative", wm_perm, wm_seconds), ("sinkhorn", sk.perm, sk_seconds)):
        pb = P.apply_permutation(spec, perm, sb)
        rows.append({"solver": solver, "sq_distance": l2_distance(sa, pb) ** 2,
                     "midpoint_test_loss": _midpoint_loss(model, sa, pb, test, reset), "seconds": secs,
                     "agreement_with_iterative": 1.0 if solver == "iterative" else unit_agreement(wm_perm, sk.perm)})
    rows[1]["gap_to_iterative"] = rows[1]["sq_distance"] / rows[0]["sq_distance"] - 1
    rows[0]["gap_to_iterative"] = 0.0
    return rows


def measure(base: zoo.TrainConfig, widths: list, n_pairs: int, test: TensorData, match: TensorData,
            n_orders: int = 3, top: int = 5, large_ratio: float = 0.5, ks: tuple[int, ...] = (1, 2, 5, 10, 20, 50),
            matrix_ranks: int = 64, input_samples: int | None = None, sinkhorn: dict | None = None,
            sinkhorn_widths: list | None = None, sinkhorn_pairs: int = 0, seed: int = 0, device="auto",
            name: str | None = None) -> Result:
    """Every measurement of :func:`run` for one family of models (``base`` at each width).

    Args:
        base: training config; its width is replaced by each of ``widths`` (:func:`zoo.with_width`).
        n_pairs: independent pairs per width, seeds ``(seed + 2i, seed + 2i + 1)``.
        test: data for the losses of endpoints and midpoints.
        match: training data for activation matching and BatchNorm resets; its inputs (the first
            ``input_samples``, default all) are also the layer inputs ``z`` of the input alignment.
        n_orders: weight matching is run with group-order seeds ``0 .. n_orders - 1``.
        top: the "large" singular values of the alignment and input claims (top ranks).
        large_ratio: a singular value is "large" when at least this fraction of its layer's largest.
        ks: top-k values of the objective contribution (``top`` is always included).
        matrix_ranks: top ranks kept in the alignment matrices (pair 0, WM order 0).
        sinkhorn: keyword arguments of :func:`matching.sinkhorn_weight_matching`; it runs on the
            first ``sinkhorn_pairs`` pairs at the ``sinkhorn_widths`` that are among ``widths``.
    """
    name = name or base.dataset
    ks = sorted(set(ks) | {top})
    out: dict[str, list] = {k: [] for k in FRAMES}
    matrices: dict = {}
    layers: list[str] = []
    for width in tqdm(widths, desc=f"{name}: widths", leave=False):
        cfg = zoo.with_width(base, width)
        pairs = zoo.independent_pairs(cfg, n_pairs, seed=seed, device=device)
        quality.record(name, [m for p in pairs for m in p], arm=f"width {width}", device=device)
        for p, (ta, tb) in enumerate(tqdm(pairs, desc=f"width {width}: pairs", leave=False)):
            a, b = ta.model, tb.model
            keys = {"experiment": name, "width": width, "pair": p}
            spec = P.spec_for(a)
            sa, sb = a.state_dict(), b.state_dict()
            svd_a, svd_b = spectral.spectra(sa), spectral.spectra(sb)
            layers = list(svd_a)
            # spectra and the share of large singular values, both models
            for model, sv in (("a", svd_a), ("b", svd_b)):
                for layer, d in sv.items():
                    c = spectral.fit_scale(svd_a[layer].s, d.s)
                    out["spectra"].append(pd.DataFrame({**keys, "model": model, "layer": layer,
                                                        "rank": np.arange(1, len(d.s) + 1), "s": d.s.numpy(),
                                                        "s_scaled": (c * d.s).numpy()}))
                    n_large = spectral.count_large(d.s, large_ratio)
                    out["large"].append({**keys, "model": model, "layer": layer, "n_large": n_large,
                                         "large_fraction": n_large / len(d.s)})
            # right singular vectors against the layer inputs, both models
            for model, net, sv in (("a", a, svd_a), ("b", b, svd_b)):
                z = spectral.layer_inputs(net, match.x[:input_samples])
                for layer, d in sv.items():
                    r = len(d.s)
                    out["inputs"].append(pd.DataFrame({**keys, "model": model, "layer": layer,
                                                       "rank": np.arange(1, r + 1), "rank_fraction": np.arange(1, r + 1) / r,
                                                       "s": d.s.numpy(),
                                                       "input_alignment": spectral.input_alignment(d.v, z[layer]).numpy()}))
            # B aligned to A by every method (weight matching under each group order); the SVD of
            # permuted B is B's SVD with its rows permuted (exact), except for the random
            # permutation, whose SVD is computed afresh: it is claim 1's measurement
            aligned: list[tuple[str, int, dict]] = [("naive", 0, P.identity(spec))]
            aligned.append(("random", 0, align("random", a, b, seed=seed + p)))
            wm_perm0, wm_seconds = None, float("nan")
            for order in range(n_orders):
                t = time.perf_counter()
                perm = weight_matching(spec, sa, sb, seed=order).perm
                if order == 0:
                    wm_perm0, wm_seconds = perm, time.perf_counter() - t
                aligned.append(("weight", order, perm))
            aligned.append(("activation", 0, align("activation", a, b, match.x)))
            svd_random = spectral.spectra(P.apply_permutation(spec, aligned[1][2], sb))
            for method, order, perm in aligned:
                sv = svd_random if method == "random" else permuted_spectra(spec, perm, svd_b)
                for layer, da in svd_a.items():
                    db = sv[layer]
                    out["diagonal"].append(_per_rank(da, db, **keys, method=method, order=order, layer=layer))
                    r = len(da.s)
                    contrib = spectral.top_k_contribution(da, db, [k for k in ks if k < r] + [r])
                    out["contribution"] += [{**keys, "method": method, "order": order, "layer": layer, "k": k,
                                             "all": k == r, "contribution": v} for k, v in contrib.items()]
                    if p == 0 and order == 0:
                        n = min(matrix_ranks, r)
                        matrices[(name, width, method, layer)] = {"u": spectral.alignment(da.u[:, :n], db.u[:, :n]),
                                                                  "v": spectral.alignment(da.v[:, :n], db.v[:, :n])}
            # claim 1: B against its randomly permuted copy
            for layer, d in svd_b.items():
                moved = spectral.diagonal_alignment(d, svd_random[layer])
                out["invariance"].append({**keys, "layer": layer,
                                          "max_singular_value_change": float((d.s - svd_random[layer].s).abs().max() / d.s.max()),
                                          "mean_u_alignment": float(moved["u"].mean()),
                                          "mean_v_alignment": float(moved["v"].mean())})
            # losses of the endpoints and midpoints
            loss_a, loss_b = evaluate(a, test)[0], evaluate(b, test)[0]
            naive_mid = _midpoint_loss(a, sa, sb, test, match)
            for method, order, perm in aligned:
                if method == "weight":
                    out["merged"].append({**keys, "order": order, "loss_a": loss_a, "loss_b": loss_b,
                                          "loss_naive_mid": naive_mid,
                                          "loss_wm_mid": _midpoint_loss(a, sa, P.apply_permutation(spec, perm, sb),
                                                                        test, match)})
            if sinkhorn is not None and width in (sinkhorn_widths or []) and p < sinkhorn_pairs:
                out["sinkhorn"] += [{**keys, **row} for row in
                                    _solver_rows(a, spec, sa, sb, wm_perm0, wm_seconds, test, match, sinkhorn, seed)]
    return Result(**{k: _frame(v) for k, v in out.items()}, matrices=matrices, top=top, large_ratio=large_ratio,
                  layers={name: layers})


def run(experiments: Mapping[str, Mapping[str, Any] | zoo.TrainConfig], widths: Mapping[str, list], n_pairs: int,
        n_orders: int = 3, match_samples: int | None = 2000, eval_subset: int | None = None, top: int = 5,
        large_ratio: float = 0.5, sinkhorn: dict | None = None, sinkhorn_widths: list | None = None,
        sinkhorn_pairs: int = 0, seed: int = 0, device="auto", **kwargs: Any) -> Result:
    """:func:`measure` for every experiment (``name -> TrainConfig`` or its fields), at the widths
    ``widths[name]``; test data: ``eval_subset`` test examples (``None``: all); matching and layer
    inputs: ``match_samples`` training examples. The results are concatenated (``experiment`` column)."""
    dev = get_device(device)
    parts = []
    for name, cfg in experiments.items():
        base = cfg if isinstance(cfg, zoo.TrainConfig) else zoo.TrainConfig(**cfg)
        test = data_mod.load(base.dataset, "test", subset=eval_subset, device=dev)
        match = data_mod.load(base.dataset, "train", subset=match_samples, device=dev)
        parts.append(measure(base, list(widths[name]), n_pairs, test, match, n_orders=n_orders, top=top,
                             large_ratio=large_ratio, sinkhorn=sinkhorn, sinkhorn_widths=sinkhorn_widths,
                             sinkhorn_pairs=sinkhorn_pairs, seed=seed, device=dev, name=name, **kwargs))
    return Result(**{k: _frame([getattr(r, k) for r in parts if len(getattr(r, k))]) for k in FRAMES},
                  matrices={k: v for r in parts for k, v in r.matrices.items()}, top=top, large_ratio=large_ratio,
                  layers={k: v for r in parts for k, v in r.layers.items()})


# --- summaries -----------------------------------------------------------------------------

def _hidden(frame: pd.DataFrame, result: Result) -> pd.DataFrame:
    keep = np.zeros(len(frame), dtype=bool)
    for name, layers in result.layers.items():
        keep |= (frame["experiment"] == name).to_numpy() & frame["layer"].isin(hidden_layers(layers)).to_numpy()
    return frame[keep]


def _output(frame: pd.DataFrame, result: Result) -> pd.DataFrame:
    keep = np.zeros(len(frame), dtype=bool)
    for name, layers in result.layers.items():
        keep |= (frame["experiment"] == name).to_numpy() & (frame["layer"] == layers[-1]).to_numpy()
    return frame[keep]


def spectrum_differences(result: Result) -> pd.DataFrame:
    """Per experiment, width, pair and layer: ``||s_b - s_a|| / ||s_a||`` (``relative_difference``)
    and the same with B's spectrum fitted to A's by one constant (``relative_difference_rescaled``)."""
    rows = []
    for (name, width, pair, layer), g in result.spectra.groupby(["experiment", "width", "pair", "layer"], sort=False):
        sa = g[g["model"] == "a"].sort_values("rank")["s"].to_numpy()
        b = g[g["model"] == "b"].sort_values("rank")
        norm = np.linalg.norm(sa)
        rows.append({"experiment": name, "width": width, "pair": pair, "layer": layer,
                     "relative_difference": np.linalg.norm(b["s"].to_numpy() - sa) / norm,
                     "relative_difference_rescaled": np.linalg.norm(b["s_scaled"].to_numpy() - sa) / norm})
    return pd.DataFrame(rows)


def top_and_bottom(result: Result) -> pd.DataFrame:
    """Per experiment, width, pair, method, order and layer: mean diagonal alignment
    ``(u + v) / 2`` of the top-``result.top`` ranks (``top``) and of the bottom half (``bottom``)."""
    d = result.diagonal.assign(uv=(result.diagonal["u"] + result.diagonal["v"]) / 2)
    r = d.groupby(["experiment", "width", "layer"])["rank"].transform("max")
    keys = ["experiment", "width", "pair", "method", "order", "layer"]
    top = d[d["rank"] <= result.top].groupby(keys, sort=False)["uv"].mean().rename("top")
    bottom = d[d["rank"] > r / 2].groupby(keys, sort=False)["uv"].mean().rename("bottom")
    return pd.concat([top, bottom], axis=1).reset_index()


def input_ratios(result: Result) -> pd.DataFrame:
    """Per experiment, width, pair, model and layer: the mean input alignment of the top-``top``
    right singular vectors divided by its mean over all ranks (1: no preference for the top)."""
    inp = result.inputs
    keys = ["experiment", "width", "pair", "model", "layer"]
    top = inp[inp["rank"] <= result.top].groupby(keys, sort=False)["input_alignment"].mean()
    every = inp.groupby(keys, sort=False)["input_alignment"].mean()
    return (top / every).rename("ratio").reset_index()


def tables(result: Result) -> dict[str, pd.DataFrame]:
    """The summary tables the notebook saves (means over pairs, and over WM group orders):

    - ``02_permutation_invariance``: per width and layer, the largest relative singular value change
      under a random permutation (max over pairs) and how far the singular vectors moved;
    - ``02_spectra_differences``: per width and layer, the relative spectrum difference of
      independent models, raw and after fitting one constant;
    - ``02_alignment_summary``: per width, method and layer, top-k and bottom-half diagonal alignment;
    - ``02_width_summary``: per width, share of large singular values (hidden layers), input
      alignment ratio of the top-k right singular vectors, endpoint and midpoint test losses;
    - ``02_sinkhorn_vs_iterative``: both weight-matching solvers on the same pairs, without their
      wall-clock seconds (``result.sinkhorn`` keeps them): a time differs on every rerun, and a
      committed table that changes when nothing else did hides the changes that matter.
    """
    k = result.top
    inv = result.invariance.groupby(["experiment", "width", "layer"], sort=False).agg(
        max_singular_value_change=("max_singular_value_change", "max"),
        mean_u_alignment=("mean_u_alignment", "mean"), mean_v_alignment=("mean_v_alignment", "mean")).reset_index()
    spec = spectrum_differences(result).groupby(["experiment", "width", "layer"], sort=False)[
        ["relative_difference", "relative_difference_rescaled"]].mean().reset_index()
    tb = top_and_bottom(result).groupby(["experiment", "width", "method", "layer"], sort=False)[["top", "bottom"]].mean()
    tb = tb.rename(columns={"top": f"top{k}_alignment", "bottom": "bottom_half_alignment"}).reset_index()
    large = _hidden(result.large, result).groupby(["experiment", "width"], sort=False)[["large_fraction", "n_large"]].mean()
    ratio = _hidden(input_ratios(result), result).groupby(["experiment", "width"], sort=False)["ratio"].mean()
    m = result.merged.assign(loss_endpoints=(result.merged["loss_a"] + result.merged["loss_b"]) / 2)
    losses = m.groupby(["experiment", "width"], sort=False)[["loss_endpoints", "loss_naive_mid", "loss_wm_mid"]].mean()
    width = pd.concat([large, ratio.rename(f"input_alignment_top{k}_vs_mean"), losses], axis=1).reset_index()
    return {"02_permutation_invariance": inv, "02_spectra_differences": spec, "02_alignment_summary": tb,
            "02_width_summary": width, "02_sinkhorn_vs_iterative": result.sinkhorn.drop(columns="seconds")}


# --- verdicts ------------------------------------------------------------------------------

def _slopes(frame: pd.DataFrame, value: str, unit: list[str]) -> pd.DataFrame:
    """Per experiment and ``unit``: least-squares slope of ``value`` against log2(width) (NaN with
    fewer than two widths)."""
    rows = []
    for key, g in frame.groupby(["experiment", *unit], sort=False):
        x, y = np.log2(g["width"].to_numpy(dtype=float)), g[value].to_numpy(dtype=float)
        slope = float(np.polyfit(x, y, 1)[0]) if len(np.unique(x)) > 1 else float("nan")
        rows.append(dict(zip(["experiment", *unit], key)) | {"slope": slope})
    return pd.DataFrame(rows)


def _units_by_orders(frame: pd.DataFrame, value: str, unit: str = "pair") -> np.ndarray:
    """``units x orders`` array of ``value`` (NaN where an order is missing)."""
    return frame.pivot_table(index=unit, columns="order", values=value, aggfunc="mean").to_numpy()


def _alignment_margin(tb: pd.DataFrame, method: str) -> pd.DataFrame:
    """Per pair (and order): ``min(top - bottom, top - top after a random permutation)`` for ``method``,
    both alignments averaged over hidden layers first."""
    per = tb.groupby(["experiment", "width", "pair", "method", "order"], sort=False)[["top", "bottom"]].mean().reset_index()
    rnd = per[per["method"] == "random"].set_index(["experiment", "width", "pair"])["top"]
    m = per[per["method"] == method].copy()
    base = rnd.loc[list(zip(m["experiment"], m["width"], m["pair"]))].to_numpy()
    m["margin"] = np.minimum(m["top"] - m["bottom"], m["top"] - base)
    return m


def unit_statistics(result: Result) -> dict[str, dict[str, np.ndarray]]:
    """``claim -> {subject: values}``, one value per independent unit (a 2-D ``units x orders``
    array where weight matching is involved), for every claim of ``params/criteria.yaml``'s
    ``02_singular_vectors`` section. Subjects are ``experiment`` or ``experiment / width w``."""
    stats: dict[str, dict[str, np.ndarray]] = {c: {} for c in (
        "permutation_keeps_singular_values", "hidden_spectra_similar", "output_spectrum_constant_multiple",
        "wm_aligns_top_singular_vectors", "am_aligns_top_singular_vectors", "top_right_vectors_follow_inputs",
        "wider_smaller_large_share", "wider_lower_wm_midpoint_loss")}
    inv = result.invariance.groupby(["experiment", "width", "pair"], sort=False)["max_singular_value_change"].max()
    diffs = spectrum_differences(result)
    hidden = _hidden(diffs, result).groupby(["experiment", "width", "pair"], sort=False)["relative_difference"].mean()
    output = _output(diffs, result).set_index(["experiment", "width", "pair"]).sort_index()["relative_difference_rescaled"]
    tb = _hidden(top_and_bottom(result), result)
    wm, am = _alignment_margin(tb, "weight"), _alignment_margin(tb, "activation")
    ratios = _hidden(input_ratios(result), result).groupby(["experiment", "width", "pair", "model"], sort=False)["ratio"].mean()
    for name in result.layers:
        stats["permutation_keeps_singular_values"][name] = inv.loc[name].to_numpy()
        for width in dict.fromkeys(result.spectra.loc[result.spectra["experiment"] == name, "width"]):
            subject = f"{name} / width {width}"
            stats["hidden_spectra_similar"][subject] = hidden.loc[(name, width)].to_numpy()
            stats["output_spectrum_constant_multiple"][subject] = output.loc[(name, width)].to_numpy()
            sel = lambda f: f[(f["experiment"] == name) & (f["width"] == width)]  # noqa: E731
            stats["wm_aligns_top_singular_vectors"][subject] = _units_by_orders(sel(wm), "margin")
            stats["am_aligns_top_singular_vectors"][subject] = _units_by_orders(sel(am), "margin")
            stats["top_right_vectors_follow_inputs"][subject] = ratios.loc[(name, width)].to_numpy()
    large = _hidden(result.large, result).groupby(["experiment", "width", "pair"], sort=False)["large_fraction"].mean()
    for name, g in _slopes(large.reset_index(), "large_fraction", ["pair"]).groupby("experiment", sort=False):
        stats["wider_smaller_large_share"][name] = g["slope"].to_numpy()
    for name, g in _slopes(result.merged, "loss_wm_mid", ["pair", "order"]).groupby("experiment", sort=False):
        stats["wider_lower_wm_midpoint_loss"][name] = _units_by_orders(g, "slope")
    return stats


def verdicts(result: Result, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One verdict row per declared claim x subject (:func:`lmc_utils.verdicts.verdict`); claims
    are judged in their declared order, subjects as :func:`unit_statistics` names them."""
    stats = unit_statistics(result)
    rows = [V.verdict(NOTEBOOK, c, subject, values)
            for name, c in criteria.items() for subject, values in stats.get(name, {}).items()]
    return V.table(rows)
