"""Notebook 02's protocol: singular values and singular vectors of independently trained models
before and after matching, across widths (Ito et al., ICLR 2025, §4–5).

:func:`singular_vector_study` trains (or loads) ``n_models`` models per width, aligns model B of
every pair to model A by each method (naive, random permutation, weight matching, activation
matching) and measures, per hidden/output layer: singular value spectra, the diagonal alignment of
singular vectors by rank, the contribution of the top-k singular pairs to ``<W_a, pi(W_b)>``, how
strongly each right singular vector points along the layer's inputs, the number of large
singular values, and the test loss of the weight-matched midpoint. :func:`sinkhorn_comparison`
solves weight matching both ways (iterative assignment and Sinkhorn relaxation) on the same pairs.
The ``describe_*`` functions turn the tables into the notebook's verdicts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import combinations

import pandas as pd
import torch
from tqdm import tqdm

from .. import permutation as P
from .. import spectral, zoo
from ..data import TensorData
from ..distance import l2_distance
from ..evaluation import evaluate
from ..interpolation import evaluate_state, interpolate
from ..matching import sinkhorn_weight_matching, unit_agreement, weight_matching
from ..rebasin import aligned_states

METHODS = ("naive", "random", "weight", "activation")


@dataclass
class SpectralResult:
    spectra: pd.DataFrame  # width, model, layer, rank, s, s_scaled (s times the fitted constant to model 0's spectrum)
    matrices: dict  # (width, method, layer) -> {"u": |U_a^T U_b|, "v": |V_a^T V_b|} of the first pair, top ranks
    diagonal: pd.DataFrame  # width, pair, method, layer, rank, rank_fraction, u, v
    contribution: pd.DataFrame  # width, pair, method, layer, k, contribution
    inputs: pd.DataFrame  # width, model, layer, rank, rank_fraction, s, input_alignment
    merged: pd.DataFrame  # width, pair, layer, n_large, large_fraction, loss_a, loss_b, loss_naive_mid, loss_wm_mid
    invariance: pd.DataFrame  # width, layer, max_singular_value_change, mean_u_alignment, mean_v_alignment (random permutation)


def _midpoint_loss(model: torch.nn.Module, state_a, state_b, data: TensorData, reset_data: TensorData | None = None) -> float:
    """Test loss of the midpoint of two states (BatchNorm statistics recomputed on ``reset_data``)."""
    return evaluate_state(model, interpolate(state_a, state_b, 0.5), data, reset_data)[0]


def singular_vector_study(base: zoo.TrainConfig, widths: list[int], n_models: int, test: TensorData,
                          match: TensorData, input_samples: int | None = None, ks: tuple[int, ...] = (1, 2, 5, 10, 20, 50),
                          top: int = 5, large_ratio: float = 0.5, matrix_ranks: int = 64, seed: int = 0,
                          device="auto") -> SpectralResult:
    """Ito et al. §4–5 for one family of MLPs (or conv nets) at several widths.

    Args:
        base: training config; its width is replaced by each of ``widths`` (:func:`studies.with_width`).
        n_models: independently trained models per width (seeds ``seed .. seed + n_models - 1``);
            every pair of them is matched (B = the later seed, aligned to A).
        test: data for the losses of endpoints and midpoints.
        match: training data for activation matching and RESET (BatchNorm midpoints); its inputs
            (the first ``input_samples``, default all) are also the hidden-layer inputs ``z`` whose
            alignment with right singular vectors is measured.
        ks, top: top-k values for the objective contribution (``top`` is always included).
        large_ratio: a singular value is "large" when at least this fraction of its layer's largest.
        matrix_ranks: how many top ranks of the alignment matrices to keep (first pair only).
    """
    ks = sorted(set(ks) | {top})
    rows_s, rows_d, rows_c, rows_i, rows_m, invariance = [], [], [], [], [], []
    matrices = {}
    for width in tqdm(widths, desc="widths", leave=False):
        cfg = zoo.with_width(base, width)
        models = zoo.get_many([cfg.replace(seed=seed + i) for i in range(n_models)], device=device)
        scratch = models[0].model
        states = [m.model.state_dict() for m in models]
        invariance.append(permutation_invariance(states[0], scratch, seed).assign(width=width))
        losses = [evaluate(m.model, test)[0] for m in models]
        svds = [spectral.spectra(s) for s in states]
        for i, sv in enumerate(svds):
            for layer, d in sv.items():
                c = spectral.fit_scale(svds[0][layer].s, d.s)
                rows_s += [{"width": width, "model": i, "layer": layer, "rank": r + 1, "s": float(x), "s_scaled": float(c * x)}
                           for r, x in enumerate(d.s)]
        for i, (m, sv) in enumerate(zip(models, svds)):
            z = spectral.layer_inputs(m.model, match.x[:input_samples])
            for layer, d in sv.items():
                align = spectral.input_alignment(d.v, z[layer])
                r = len(d.s)
                rows_i += [{"width": width, "model": i, "layer": layer, "rank": q + 1, "rank_fraction": (q + 1) / r,
                            "s": float(d.s[q]), "input_alignment": float(align[q])} for q in range(r)]
        for p, (i, j) in enumerate(combinations(range(n_models), 2)):
            a, b = models[i].model, models[j].model
            aligned = aligned_states(a, b, METHODS, match.x, seed=seed)
            for method, state_b in aligned.items():
                sb = spectral.spectra(state_b)
                for layer, da in svds[i].items():
                    db = sb[layer]
                    diag = spectral.diagonal_alignment(da, db)
                    r = len(da.s)
                    rows_d += [{"width": width, "pair": p, "method": method, "layer": layer, "rank": q + 1,
                                "rank_fraction": (q + 1) / r, "u": float(diag["u"][q]), "v": float(diag["v"][q])}
                               for q in range(r)]
                    contrib = spectral.top_k_contribution(da, db, [k for k in ks if k <= r] + [r])
                    rows_c += [{"width": width, "pair": p, "method": method, "layer": layer, "k": k,
                                "all": k == r, "contribution": v} for k, v in contrib.items()]
                    if p == 0:
                        n = min(matrix_ranks, r)
                        matrices[(width, method, layer)] = {"u": spectral.alignment(da.u[:, :n], db.u[:, :n]),
                                                            "v": spectral.alignment(da.v[:, :n], db.v[:, :n])}
            naive_mid = _midpoint_loss(scratch, states[i], aligned["naive"], test, match)
            wm_mid = _midpoint_loss(scratch, states[i], aligned["weight"], test, match)
            for layer, da in svds[i].items():
                n_large = spectral.count_large(da.s, large_ratio)
                rows_m.append({"width": width, "pair": p, "layer": layer, "n_large": n_large,
                               "large_fraction": n_large / len(da.s), "loss_a": losses[i], "loss_b": losses[j],
                               "loss_naive_mid": naive_mid, "loss_wm_mid": wm_mid})
    return SpectralResult(pd.DataFrame(rows_s), matrices, pd.DataFrame(rows_d), pd.DataFrame(rows_c),
                          pd.DataFrame(rows_i), pd.DataFrame(rows_m), pd.concat(invariance, ignore_index=True))


def permutation_invariance(state: dict[str, torch.Tensor], model: torch.nn.Module, seed: int = 0) -> pd.DataFrame:
    """Claim 1's first half, checked: per layer, the largest change of a singular value (relative
    to the largest singular value) and the
    smallest diagonal alignment of left/right singular vectors under a random permutation."""
    spec = P.spec_for(model)
    permuted = P.apply_permutation(spec, P.random_permutation(spec, seed), state)
    before, after = spectral.spectra(state), spectral.spectra(permuted)
    rows = []
    for layer, d in before.items():
        diag = spectral.diagonal_alignment(d, after[layer])
        rows.append({"layer": layer, "max_singular_value_change": float((d.s - after[layer].s).abs().max() / d.s.max()),
                     "mean_u_alignment": float(diag["u"].mean()), "mean_v_alignment": float(diag["v"].mean())})
    return pd.DataFrame(rows)


def sinkhorn_comparison(base: zoo.TrainConfig, widths: list[int], n_models: int, test: TensorData,
                        reset_data: TensorData | None = None, sinkhorn: dict | None = None, n_pairs: int | None = None,
                        seed: int = 0, device="auto") -> pd.DataFrame:
    """Weight matching solved by iterative assignment and by the Sinkhorn relaxation on the same
    pairs (the models of :func:`singular_vector_study`): squared L2 distance after matching,
    relative gap of Sinkhorn to the iterative solution, midpoint test loss, seconds, and the share
    of units on which the two permutations agree. ``n_pairs``: compare only the first pairs (default all)."""
    rows = []
    for width in tqdm(widths, desc="Sinkhorn vs iterative", leave=False):
        cfg = zoo.with_width(base, width)
        models = zoo.get_many([cfg.replace(seed=seed + i) for i in range(n_models)], device=device, progress=False)
        scratch = models[0].model
        spec = P.spec_for(scratch)
        for p, (i, j) in enumerate(list(combinations(range(n_models), 2))[:n_pairs]):
            sa, sb = models[i].model.state_dict(), models[j].model.state_dict()
            t = time.perf_counter()
            wm = weight_matching(spec, sa, sb, seed=seed)
            t_wm = time.perf_counter() - t
            t = time.perf_counter()
            sk = sinkhorn_weight_matching(spec, sa, sb, seed=seed, **(sinkhorn or {}))
            t_sk = time.perf_counter() - t
            share = unit_agreement(wm.perm, sk.perm)
            for solver, res, secs in (("iterative", wm, t_wm), ("sinkhorn", sk, t_sk)):
                pb = P.apply_permutation(spec, res.perm, sb)
                rows.append({"width": width, "pair": p, "solver": solver,
                             "sq_distance": l2_distance(sa, pb) ** 2,
                             "midpoint_test_loss": _midpoint_loss(scratch, sa, pb, test, reset_data),
                             "seconds": secs, "agreement_with_iterative": 1.0 if solver == "iterative" else share})
    df = pd.DataFrame(rows)
    ref = df[df["solver"] == "iterative"].set_index(["width", "pair"])["sq_distance"]
    df["gap_to_iterative"] = [r.sq_distance / ref[(r.width, r.pair)] - 1 for r in df.itertuples()]
    return df


def hidden_layers(layers) -> list[str]:
    """All layers but the last (the output layer), in order."""
    layers = list(dict.fromkeys(layers))
    return layers[:-1]


def spectra_summary(spectra: pd.DataFrame) -> pd.DataFrame:
    """Per width and layer: how far the spectra of models 1.. are from model 0's, as the mean
    relative L2 difference ``||s_m - s_0|| / ||s_0||``, raw and after the fitted rescaling."""
    rows = []
    for (width, layer), g in spectra.groupby(["width", "layer"], sort=False):
        ref = g[g["model"] == 0].sort_values("rank")
        s0 = torch.tensor(ref["s"].to_numpy())
        raw, scaled = [], []
        for model, m in g[g["model"] != 0].groupby("model"):
            m = m.sort_values("rank")
            raw.append(float((torch.tensor(m["s"].to_numpy()) - s0).norm() / s0.norm()))
            scaled.append(float((torch.tensor(m["s_scaled"].to_numpy()) - s0).norm() / s0.norm()))
        rows.append({"width": width, "layer": layer, "relative_difference": sum(raw) / len(raw),
                     "relative_difference_rescaled": sum(scaled) / len(scaled)})
    return pd.DataFrame(rows)


def alignment_summary(diagonal: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Per width, method and layer: mean diagonal alignment (u and v averaged) of the top-``top``
    ranks and of the bottom half of the ranks (mean over pairs)."""
    d = diagonal.assign(uv=(diagonal["u"] + diagonal["v"]) / 2)
    rows = []
    for (width, method, layer), g in d.groupby(["width", "method", "layer"], sort=False):
        r = g["rank"].max()
        rows.append({"width": width, "method": method, "layer": layer,
                     f"top{top}_alignment": g[g["rank"] <= top]["uv"].mean(),
                     "bottom_half_alignment": g[g["rank"] > r / 2]["uv"].mean()})
    return pd.DataFrame(rows)


def width_summary(result: SpectralResult, top: int = 5) -> pd.DataFrame:
    """Per width (hidden layers, mean over layers and pairs): share of large singular values,
    input alignment of the top-``top`` right singular vectors relative to the mean over all ranks,
    and test losses of the endpoints and of the naive and weight-matched midpoints."""
    hidden = hidden_layers(result.merged["layer"])
    m = result.merged[result.merged["layer"].isin(hidden)]
    per_width = m.groupby("width").agg(large_fraction=("large_fraction", "mean"), n_large=("n_large", "mean"),
                                       loss_a=("loss_a", "mean"), loss_b=("loss_b", "mean"),
                                       loss_naive_mid=("loss_naive_mid", "mean"), loss_wm_mid=("loss_wm_mid", "mean"))
    per_width["loss_endpoints"] = (per_width["loss_a"] + per_width["loss_b"]) / 2
    inp = result.inputs[result.inputs["layer"].isin(hidden)]
    ratio = {}
    for width, g in inp.groupby("width"):
        vals = [c[c["rank"] <= top]["input_alignment"].mean() / c["input_alignment"].mean()
                for _, c in g.groupby(["model", "layer"])]
        ratio[width] = sum(vals) / len(vals)
    per_width[f"input_alignment_top{top}_vs_mean"] = pd.Series(ratio)
    return per_width.drop(columns=["loss_a", "loss_b"]).reset_index()


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(x, y).statistic) if len(x) > 1 else float("nan")


def describe(result: SpectralResult, top: int = 5, large_ratio: float = 0.5, spectrum_tolerance: float = 0.05) -> str:
    """Markdown verdicts on Ito et al.'s claims 1–4, computed from the measured tables.

    Criteria (fixed before looking at the numbers): claim 1 holds when a random permutation leaves
    every singular value unchanged (to 1e-9 relative) and the hidden-layer spectra of independent
    models differ by less than ``spectrum_tolerance`` (relative L2), with the output layer closer
    after rescaling than before; claim 2 when, at every width, weight matching aligns the top-``top``
    singular vectors more than the bottom half and more than a random permutation does; AM
    "behaves like WM" when the same holds for activation matching; claim 3 when the top-``top``
    right singular vectors are more aligned with the layer inputs than average at every width, and
    more so at the largest width than at the smallest; claim 4 when the share of large singular
    values falls and the WM midpoint loss falls with width (Spearman correlation across widths).
    ``large_ratio`` must be the value the study counted with (only quoted here).
    """
    lines = []
    invariance = result.invariance
    spec_sum = spectra_summary(result.spectra)
    hidden = hidden_layers(result.spectra["layer"])
    out_layer = list(dict.fromkeys(result.spectra["layer"]))[-1]
    h = spec_sum[spec_sum["layer"].isin(hidden)]
    o = spec_sum[spec_sum["layer"] == out_layer]
    perm_ok = bool((invariance["max_singular_value_change"] <= 1e-9).all())
    c1 = perm_ok and bool((h["relative_difference"] < spectrum_tolerance).all()) and bool(
        (o["relative_difference_rescaled"] <= o["relative_difference"]).all())
    lines.append(
        f"- **Claim 1 {'held' if c1 else 'did not fully hold'}.** A random permutation changed no singular value by "
        f"more than {invariance['max_singular_value_change'].max():.1e}, while it moved the singular vectors "
        f"(mean |<u_i, u_i'>| {invariance['mean_u_alignment'].mean():.2f}). Hidden-layer spectra of independent models "
        f"differ by {100 * h['relative_difference'].min():.1f}–{100 * h['relative_difference'].max():.1f}% (relative L2; "
        f"criterion < {100 * spectrum_tolerance:.0f}%); the output layer's by "
        f"{100 * o['relative_difference'].mean():.1f}%, {100 * o['relative_difference_rescaled'].mean():.1f}% after fitting one constant.")
    al = alignment_summary(result.diagonal, top)
    al = al[al["layer"].isin(hidden)].groupby(["width", "method"])[[f"top{top}_alignment", "bottom_half_alignment"]].mean()
    widths = sorted(result.diagonal["width"].unique())

    def method_verdict(method: str) -> tuple[bool, str]:
        ok, parts = True, []
        for w in widths:
            t, b = al.loc[(w, method)]
            rnd = al.loc[(w, "random")][f"top{top}_alignment"]
            ok &= bool(t > b and t > rnd)
            parts.append(f"width {w}: {t:.2f} vs {b:.2f} (random permutation {rnd:.2f})")
        return ok, "; ".join(parts)

    ok_w, text_w = method_verdict("weight")
    ok_a, text_a = method_verdict("activation")
    contrib = result.contribution[result.contribution["layer"].isin(hidden)]
    c_top = contrib[(contrib["k"] == top) & (contrib["method"] == "weight")]["contribution"].mean()
    c_all = contrib[contrib["all"] & (contrib["method"] == "weight")]["contribution"].mean()
    lines.append(
        f"- **Claim 2 {'held' if ok_w else 'did not hold'}.** Mean alignment |<u_i^a, u_i^b>|, |<v_i^a, v_i^b>| of the "
        f"top-{top} singular vectors of hidden layers after weight matching vs the bottom half of the ranks: {text_w}. "
        f"The top-{top} singular pairs give {c_top:.3f} of the normalised inner product, the whole matrix {c_all:.3f}.")
    lines.append(f"- **AM {'behaves like WM' if ok_a else 'does not behave like WM'}** in this respect: {text_a}.")
    ws = width_summary(result, top)
    col = f"input_alignment_top{top}_vs_mean"
    c3 = bool((ws[col] > 1).all() and ws[col].iloc[-1] > ws[col].iloc[0])
    lines.append(
        f"- **Claim 3 {'held' if c3 else 'did not hold'}.** The top-{top} right singular vectors have "
        + ", ".join(f"{r:.2f}x" for r in ws[col]) + f" the mean inner product with the layer inputs at widths "
        + ", ".join(str(w) for w in ws["width"]) + ".")
    if len(ws) > 1:
        r_large = _spearman(ws["width"], ws["large_fraction"])
        r_loss = _spearman(ws["width"], ws["loss_wm_mid"])
        c4 = r_large < 0 and r_loss < 0
        lines.append(
            f"- **Claim 4 {'held' if c4 else 'did not hold'}.** Share of large singular values (at least {large_ratio:g} "
            f"times the largest of the layer; mean over hidden layers) at widths " + ", ".join(str(w) for w in ws["width"]) + ": " + ", ".join(f"{100 * x:.1f}%" for x in ws["large_fraction"])
            + "; WM midpoint test loss: " + ", ".join(f"{x:.3f}" for x in ws["loss_wm_mid"])
            + f" (naive midpoint: " + ", ".join(f"{x:.2f}" for x in ws["loss_naive_mid"]) + ").")
    return "\n".join(lines)


def describe_sinkhorn(table: pd.DataFrame) -> str:
    """One sentence comparing the two weight-matching solvers (from :func:`sinkhorn_comparison`)."""
    sk = table[table["solver"] == "sinkhorn"]
    it = table[table["solver"] == "iterative"]
    return (f"Sinkhorn weight matching ends {100 * sk['gap_to_iterative'].min():+.2f}% to "
            f"{100 * sk['gap_to_iterative'].max():+.2f}% from the iterative solution's squared L2 distance "
            f"(mean midpoint test loss {sk['midpoint_test_loss'].mean():.3f} vs {it['midpoint_test_loss'].mean():.3f}); "
            f"the two solvers agree on {100 * sk['agreement_with_iterative'].mean():.0f}% of units and take "
            f"{sk['seconds'].mean():.1f} s vs {it['seconds'].mean():.2f} s per pair.")
