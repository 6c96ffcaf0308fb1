"""Plots shared by the notebooks (style and file output live in :mod:`lmc_utils.figures`)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from .figures import METHOD_LABELS

METHOD_COLORS = {"naive": "#7f7f7f", "weight": "#1f77b4", "activation": "#d62728"}
SPLIT_STYLES = {"train": "-", "test": "--"}


def plot_interpolation(curves: pd.DataFrame, title: str = "", metrics: Sequence[str] = ("loss", "accuracy")):
    """Loss and accuracy along lambda for each method (colour), split (line style) and
    RESET setting (one row of panels per setting). Returns the figure."""
    resets = list(dict.fromkeys(curves["reset"])) if "reset" in curves else [False]
    fig, axes = plt.subplots(len(resets), len(metrics), figsize=(4.2 * len(metrics), 3.0 * len(resets)),
                             squeeze=False)
    for row, reset in enumerate(resets):
        sub = curves[curves["reset"] == reset] if "reset" in curves else curves
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            for (method, split), c in sub.groupby(["method", "split"], sort=False):
                label = f"{METHOD_LABELS.get(method, method)} ({split})"
                ax.plot(c["lam"], c[metric], SPLIT_STYLES.get(split, ":"), marker="o",
                        color=METHOD_COLORS.get(method), label=label)
            ax.set_xlabel(r"$\lambda$  (0: model A, 1: aligned model B)")
            ax.set_ylabel("accuracy" if metric == "accuracy" else "cross-entropy loss")
            suffix = (" — with RESET" if reset else " — no RESET") if len(resets) > 1 else ""
            ax.set_title(f"{title}{suffix}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.04 * (len(labels) > 3)))
    fig.tight_layout(rect=(0, 0.08 if len(resets) == 1 else 0.05, 1, 1))
    return fig


def plot_taylor_curves(curves: pd.DataFrame, title: str = ""):
    """Actual loss along the line (markers) and its second-order Taylor model around the
    midpoint (line), one panel per kind of pair and alignment method."""
    panels = list(dict.fromkeys(zip(curves["kind"], curves["method"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.0), squeeze=False)
    for ax, (kind, method) in zip(axes[0], panels):
        c = curves[(curves["kind"] == kind) & (curves["method"] == method)]
        actual, quad = c[c["source"] == "actual"], c[c["source"] == "taylor"]
        color = METHOD_COLORS.get(method, "#2ca02c") if kind == "independent" else "#2ca02c"
        ax.plot(actual["lam"], actual["loss"], "o", color=color, label="actual loss")
        ax.plot(quad["lam"], quad["loss"], "-", color=color, alpha=0.7, label="2nd-order Taylor (midpoint)")
        ax.set_title(f"{kind}, {METHOD_LABELS.get(method, method)}" if kind == "independent" else f"{kind} pair")
        ax.set_xlabel(r"$\lambda$")
    axes[0, 0].set_ylabel("train loss")
    axes[0, 0].legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_swa_barriers(samples: pd.DataFrame, independent: pd.DataFrame):
    """One heat map per width of the pairwise loss barrier between SWA samples, titled with the
    largest of them and the mean barrier between independently trained runs of that width. The
    colour scale is shared and reaches the largest independent-run barrier, so a dark map means
    "negligible next to independent runs"."""
    import numpy as np

    widths = list(dict.fromkeys(samples["width"]))
    vmax = max(float(samples["loss_barrier"].max()), float(independent["loss_barrier"].max()), 1e-6)
    fig, axes = plt.subplots(1, len(widths), figsize=(3.0 * len(widths) + 0.8, 3.0), squeeze=False)
    for ax, w in zip(axes[0], widths):
        s = samples[samples["width"] == w]
        idx = sorted(set(s["i"]) | set(s["j"]))
        pos = {k: n for n, k in enumerate(idx)}
        mat = np.zeros((len(idx), len(idx)))
        for r in s.itertuples():
            mat[pos[r.i], pos[r.j]] = mat[pos[r.j], pos[r.i]] = r.loss_barrier
        im = ax.imshow(mat, vmin=0, vmax=vmax, cmap="viridis", origin="lower")
        ticks = list(range(0, len(idx), max(1, len(idx) // 5)))
        ax.set_xticks(ticks, [idx[t] for t in ticks])
        ax.set_yticks(ticks, [idx[t] for t in ticks])
        ax.set_xlabel("SWA sample (epoch)")
        ax.grid(False)
        ind = independent.loc[independent["width"] == w, "loss_barrier"].mean()
        ax.set_title(f"width {w}: max {s['loss_barrier'].max():.2g}\n(independent runs: {ind:.3g})")
    axes[0, 0].set_ylabel("SWA sample (epoch)")
    fig.colorbar(im, ax=axes[0].tolist(), label="loss barrier (nats)")
    return fig


def plot_identity_share(summary: pd.DataFrame):
    """Share of units weight matching leaves in place, between SWA samples and between
    independent runs, against hidden width."""
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    ax.plot(summary["width"], summary["swa_pairs_identity_share"], "o-", label="between SWA samples")
    ax.plot(summary["width"], summary["independent_identity_share"], "s--", label="between independent runs")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width")
    ax.set_ylabel("units left in place by WM")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    return fig


THREE_MODEL_LABELS = {"naive": "naive", "weight": "WM", "activation": "AM", "ste": "STE"}
THREE_MODEL_COLORS = {"naive": "#7f7f7f", "weight": "#1f77b4", "activation": "#d62728", "ste": "#2ca02c"}


def plot_planes(planes: pd.DataFrame, title: str = "", split: str | None = None):
    """Contour plots of the test loss (log10) and accuracy on the plane through a, pi_b(b) and
    pi_c(c), one column per alignment method (``planes`` from :func:`lmc_utils.interpolation.plane_grid`
    with a ``method`` column); the three models are marked. Colour scales are shared per row."""
    import numpy as np

    split = split or planes["split"].iloc[0]
    planes = planes[planes["split"] == split]
    methods = list(dict.fromkeys(planes["method"]))
    fig, axes = plt.subplots(2, len(methods), figsize=(4.0 * len(methods) + 0.8, 6.8), squeeze=False,
                             layout="constrained")
    grid = planes[planes["point"] == "grid"]
    x_mid = 0.5 * (float(grid["x"].min()) + float(grid["x"].max()))
    for row, (metric, cmap) in enumerate((("loss", "viridis"), ("accuracy", "magma"))):
        vals = np.log10(grid["loss"]) if metric == "loss" else grid["accuracy"]
        levels = np.linspace(float(vals.min()), float(vals.max()), 16)
        for col, m in enumerate(methods):
            ax = axes[row, col]
            g = grid[grid["method"] == m]
            xs, ys = np.unique(g["x"]), np.unique(g["y"])
            z = g.pivot_table(index="y", columns="x", values=metric).reindex(index=ys, columns=xs).to_numpy()
            z = np.log10(z) if metric == "loss" else z
            cs = ax.contourf(xs, ys, z, levels=levels, cmap=cmap)
            pts = planes[(planes["method"] == m) & (planes["point"] != "grid")]
            names = {"a": r"$\theta_a$", "b": r"$\pi_b(\theta_b)$", "c": r"$\pi_c(\theta_c)$"}
            for p in pts.itertuples():
                ax.plot(p.x, p.y, "o", color="white", markeredgecolor="black")
                right = p.x > x_mid
                ax.annotate(f"{names[p.point]}\n{100 * p.accuracy:.1f}%", (p.x, p.y), color="white", fontsize=8,
                            xytext=(-4 if right else 4, 4), textcoords="offset points", ha="right" if right else "left")
            ax.set_aspect("equal")
            ax.grid(False)
            ax.set_title(f"{THREE_MODEL_LABELS.get(m, m)}: {'log10 loss' if metric == 'loss' else 'accuracy'} ({split})")
            if row == 1:
                ax.set_xlabel("distance along a→π_b(b)")
        axes[row, 0].set_ylabel("orthogonal distance")
        fig.colorbar(cs, ax=axes[row].tolist(), label="log10 cross-entropy" if metric == "loss" else "accuracy")
    if title:
        fig.suptitle(title)
    return fig


def plot_three_model_barriers(summary: pd.DataFrame, title: str = ""):
    """Accuracy barriers (mean +- std over triples) for each pair of the three aligned models,
    one bar per method (``summary`` from :func:`lmc_utils.studies.three_models.barrier_summary`)."""
    import numpy as np

    pairs = list(dict.fromkeys(summary["pair"]))
    methods = list(dict.fromkeys(summary["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.2))
    width = 0.8 / len(methods)
    for ax, metric, scale, label in ((axes[0], "loss_barrier", 1.0, "loss barrier (nats)"),
                                     (axes[1], "accuracy_barrier", 100.0, "accuracy barrier (points)")):
        for i, m in enumerate(methods):
            s = summary[summary["method"] == m].set_index("pair").reindex(pairs)
            ax.bar(np.arange(len(pairs)) + (i - (len(methods) - 1) / 2) * width, scale * s[f"{metric}_mean"],
                   width, yerr=scale * s[f"{metric}_std"].fillna(0), color=THREE_MODEL_COLORS.get(m),
                   label=THREE_MODEL_LABELS.get(m, m), capsize=2)
        ax.set_xticks(np.arange(len(pairs)), pairs)
        ax.set_ylabel(label)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_singular_alignment(summary: pd.DataFrame, title: str = ""):
    """Mean top-k singular-vector alignment between a and the aligned b per layer, left (u) and
    right (v) vectors, one bar per method (``summary`` from
    :func:`lmc_utils.studies.three_models.alignment_summary`)."""
    import numpy as np

    layers = list(dict.fromkeys(summary["layer"]))
    methods = list(dict.fromkeys(summary["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.2), sharey=True)
    width = 0.8 / len(methods)
    for ax, col, label in ((axes[0], "u_top", "left singular vectors u"), (axes[1], "v_top", "right singular vectors v")):
        for i, m in enumerate(methods):
            s = summary[summary["method"] == m].set_index("layer").reindex(layers)
            ax.bar(np.arange(len(layers)) + (i - (len(methods) - 1) / 2) * width, s[col], width,
                   color=THREE_MODEL_COLORS.get(m), label=THREE_MODEL_LABELS.get(m, m))
        ax.set_xticks(np.arange(len(layers)), layers, rotation=30)
        ax.set_title(label)
    axes[0].set_ylabel(r"mean $|\langle x_i^a, x_i^b \rangle|$, top-k ranks")
    axes[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- notebook 04: re-normalisation ---------------------------------------------------------

VARIANT_COLORS = {"none": "#7f7f7f", "REPAIR": "#1f77b4", "RESCALE": "#2ca02c", "RESCALE (avg)": "#98df8a",
                  "RESHIFT": "#d62728", "SEQ REPAIR": "#9467bd", "RESET": "#ff7f0e"}


def plot_variant_curves(curves: pd.DataFrame, title: str = ""):
    """Test accuracy and loss along lambda per re-normalisation variant (colour), one row per
    alignment method."""
    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(len(methods), 2, figsize=(8.4, 2.8 * len(methods)), squeeze=False)
    for row, method in enumerate(methods):
        sub = curves[curves["method"] == method]
        for col, metric in enumerate(("accuracy", "loss")):
            ax = axes[row, col]
            for variant, c in sub.groupby("variant", sort=False):
                ax.plot(c["lam"], c[metric], "--" if variant.startswith("SEQ") else "-", marker="o",
                        color=VARIANT_COLORS.get(variant), label=variant)
            ax.set_xlabel(r"$\lambda$")
            ax.set_ylabel(f"test {metric}")
            ax.set_title(f"{title}: {METHOD_LABELS.get(method, method)}")
            if metric == "loss":
                ax.set_yscale("log")
    axes[0, 0].legend(loc="best")
    fig.tight_layout()
    return fig


def plot_activation_profiles(profiles: pd.DataFrame, title: str = ""):
    """Per hidden layer: mean pre-activation std, post-activation std and share of zero
    post-activations, one line per model (endpoints, midpoints, repaired midpoints, random init)."""
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.2))
    # line style: which model (endpoints, naive or WM midpoint, random init); colour: which correction
    fixes = {"": "#7f7f7f", "REPAIR": "#1f77b4", "RESCALE": "#2ca02c", "RESET": "#ff7f0e"}
    for name, p in profiles.groupby("model", sort=False):
        base, _, fix = name.partition(" + ")
        if base.startswith("endpoint"):
            ls, color = "-", "#000000"
        elif base.startswith("random"):
            ls, color = ":", "#8c564b"
        else:
            ls, color = ("--" if base.startswith("naive") else "-"), fixes.get(fix, "#9467bd")
        for ax, col in zip(axes, ("pre_std", "post_std", "zero_share")):
            ax.plot(p["layer"], p[col], ls, marker="o", color=color, label=name,
                    alpha=0.5 if base.startswith("endpoint") else 1.0)
    for ax, label in zip(axes, ("pre-activation std (mean over channels)", "post-activation std",
                                "share of zero post-activations")):
        ax.set_xlabel("hidden layer")
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    fig.suptitle(title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return fig


def plot_bias_curves(curves: pd.DataFrame, title: str = ""):
    """Test accuracy and loss along lambda (mean over pairs) for each bias-study curve."""
    m = curves.groupby(["curve", "lam"], sort=False)[["accuracy", "loss"]].mean().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.0))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for i, (name, c) in enumerate(m.groupby("curve", sort=False)):
            ax.plot(c["lam"], c[metric], marker="o", color=f"C{i}", label=name)
        ax.set_xlabel(r"$\lambda$")
        ax.set_ylabel(f"test {metric}")
    axes[0].legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_ste_history(history: pd.DataFrame, title: str = ""):
    """Held midpoint loss of the straight-through estimator against its steps, one line per
    matched pair (``history`` from :attr:`lmc_utils.studies.three_models.ThreeModelResult.ste_history`);
    step 0 is the weight-matching start, a dot marks the permutation returned."""
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for i, ((triple, pair), h) in enumerate(history.groupby(["triple", "pair"], sort=False)):
        best = h[h["step"] == h["best_step"].iloc[0]]
        ax.plot(h["step"], h["held_loss"], color=f"C{i}", lw=1.2, label=f"triple {triple}, {pair}")
        ax.plot(best["step"], best["held_loss"], "o", color=f"C{i}", ms=4)
    ax.set_xlabel("STE step (0: weight-matching permutation)")
    ax.set_ylabel("held midpoint loss (nats)")
    ax.legend(fontsize="x-small", ncol=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_retraining(history: pd.DataFrame, target: float):
    """Running train accuracy per epoch against optimisation steps, per starting point."""
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for i, (start, h) in enumerate(history.groupby("start", sort=False)):
        ax.plot(h["steps"], h["train_accuracy"], marker="o", color=f"C{i}", label=start)
    ax.axhline(target, color="k", lw=0.8, ls=":")
    ax.set_xlabel("optimisation steps")
    ax.set_ylabel("train accuracy (running, per epoch)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


# --- Notebook 02: singular values and singular vectors -------------------------------------

SPECTRAL_METHOD_COLORS = {"naive": "#7f7f7f", "random": "#bcbd22", "weight": "#1f77b4", "activation": "#d62728",
                          "ste": "#2ca02c"}
SPECTRAL_METHOD_LABELS = {"naive": "no permutation", "random": "random permutation", "weight": "weight matching",
                          "activation": "activation matching", "ste": "STE"}


def plot_spectra(spectra: pd.DataFrame, width: int):
    """Singular values against rank for every layer (one panel each) and model (one line each);
    the last layer is also drawn rescaled by the fitted constant (dashed)."""
    sub = spectra[spectra["width"] == width]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 2.8), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for i, (model, s) in enumerate(sub[sub["layer"] == layer].groupby("model", sort=False)):
            ax.plot(s["rank"], s["s"], color=f"C{i}", lw=1.2, label=f"model {model}")
            if layer == layers[-1] and model != 0:
                ax.plot(s["rank"], s["s_scaled"], color=f"C{i}", lw=1.0, ls="--")
        ax.set_xlabel("rank")
        ax.set_title(layer + (" (dashed: rescaled)" if layer == layers[-1] else ""), fontsize=9)
    axes[0, 0].set_ylabel("singular value")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"width {width}: singular values of independently trained models", fontsize=10)
    fig.tight_layout()
    return fig


def plot_alignment_matrices(matrices: dict, width: int, layer: str, methods: Sequence[str]):
    """``|<u_i^a, u_j^b>|`` (top row) and ``|<v_i^a, v_j^b>|`` (bottom row) over the top ranks for
    each method (columns): a bright diagonal means the singular vectors of that rank are aligned."""
    fig, axes = plt.subplots(2, len(methods), figsize=(2.6 * len(methods), 5.0), squeeze=False)
    for col, method in enumerate(methods):
        m = matrices[(width, method, layer)]
        for row, side in enumerate(("u", "v")):
            ax = axes[row, col]
            im = ax.imshow(m[side].numpy(), vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
            ax.set_title(f"{SPECTRAL_METHOD_LABELS.get(method, method)}\n|<{side}_i^a, {side}_j^b>|", fontsize=8)
            ax.set_xlabel("rank j (B)", fontsize=8)
            ax.set_ylabel("rank i (A)", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6)
    fig.suptitle(f"width {width}, layer {layer}: singular-vector alignment, top {m['u'].shape[0]} ranks", fontsize=10)
    return fig


def plot_diagonal_alignment(diagonal: pd.DataFrame, width: int, side: str = "u", max_rank: int | None = 64):
    """Mean over pairs of ``|<u_i^a, u_i^b>|`` (or ``v``) against rank ``i``, one panel per layer,
    one line per method."""
    sub = diagonal[diagonal["width"] == width]
    if max_rank:
        sub = sub[sub["rank"] <= max_rank]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 2.8), squeeze=False, sharey=True)
    for ax, layer in zip(axes[0], layers):
        m = sub[sub["layer"] == layer].groupby(["method", "rank"], sort=False)[side].mean().reset_index()
        for method, c in m.groupby("method", sort=False):
            ax.plot(c["rank"], c[side], color=SPECTRAL_METHOD_COLORS.get(method), lw=1.2,
                    label=SPECTRAL_METHOD_LABELS.get(method, method))
        ax.set_xlabel("singular value rank")
        ax.set_title(layer, fontsize=9)
    axes[0, 0].set_ylabel(f"|<{side}_i^a, {side}_i^b>|")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"width {width}: alignment of the i-th {'left' if side == 'u' else 'right'} singular vectors", fontsize=10)
    fig.tight_layout()
    return fig


def plot_top_k_contribution(contribution: pd.DataFrame, width: int):
    """``sum_{i,j<k} s_i^a s_j^b <u_i^a,u_j^b><v_i^a,v_j^b> / (||W_a|| ||W_b||)`` against k (log axis),
    one panel per layer, one line per method; the right end is the whole inner product."""
    sub = contribution[contribution["width"] == width]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 2.8), squeeze=False, sharey=True)
    for ax, layer in zip(axes[0], layers):
        m = sub[sub["layer"] == layer].groupby(["method", "k"], sort=True)["contribution"].mean().reset_index()
        for method, c in m.groupby("method", sort=False):
            ax.plot(c["k"], c["contribution"], marker="o", ms=3, color=SPECTRAL_METHOD_COLORS.get(method),
                    label=SPECTRAL_METHOD_LABELS.get(method, method))
        ax.set_xscale("log")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("top-k singular pairs")
        ax.set_title(layer, fontsize=9)
    axes[0, 0].set_ylabel(r"$\langle W_a, \pi(W_b)\rangle$ from top k / norms")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_input_alignment(inputs: pd.DataFrame, layers: Sequence[str] | None = None):
    """Mean ``|<v_i, z>| / ||z||`` against the relative rank ``i / r`` for every width (colour),
    one panel per layer (model 0 of each width)."""
    sub = inputs[inputs["model"] == 0]
    layers = list(layers or dict.fromkeys(sub["layer"]))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 2.8), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for i, (width, c) in enumerate(sub[sub["layer"] == layer].groupby("width", sort=True)):
            ax.plot(c["rank_fraction"], c["input_alignment"], color=plt.cm.viridis(i / max(1, sub["width"].nunique() - 1)),
                    lw=1.2, label=f"width {width}")
        ax.set_xscale("log")
        ax.set_xlabel("rank / number of singular values")
        ax.set_title(layer, fontsize=9)
    axes[0, 0].set_ylabel(r"mean $|\langle v_i, z\rangle| / \|z\|$")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_large_vs_merged(summary: pd.DataFrame):
    """Per width: share of large singular values (mean over hidden layers) and the test loss of
    the weight-matched and naive midpoints next to the endpoints' (mean over pairs)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.0))
    ax1.plot(summary["width"], summary["large_fraction"], marker="o")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("width")
    ax1.set_ylabel("large singular values / width")
    for col, label, color in (("loss_wm_mid", "WM midpoint", "#1f77b4"), ("loss_naive_mid", "naive midpoint", "#7f7f7f"),
                              ("loss_endpoints", "endpoints (mean)", "k")):
        ax2.plot(summary["width"], summary[col], marker="o", color=color, label=label)
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("width")
    ax2.set_ylabel("test loss")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- notebook 05: pruning and redundant units --------------------------------------------------

from .figures import method_label, method_style  # noqa: E402


def plot_pruning(table: pd.DataFrame, judge_sparsity: float | None = None):
    """Test accuracy against sparsity, one panel per experiment: each method (its colour and
    marker) as pruned (dashed) and after re-normalisation (solid); the unpruned accuracy as a grey
    line and the judged sparsity as a dotted vertical line. ``table``: rows of
    ``studies.pruning.pruning_table``."""
    exps = list(dict.fromkeys(table["experiment"]))
    fig, axes = plt.subplots(1, len(exps), figsize=(4.0 * len(exps), 3.2), squeeze=False)
    for ax, exp in zip(axes[0], exps):
        t = table[table["experiment"] == exp]
        for method, m in t.groupby("method", sort=False):
            style = method_style(method)
            c, mk = style["color"], style["marker"]
            ax.plot(m["sparsity"], m["pruned"], "--", marker=mk, color=c, alpha=0.7, mfc="none",
                    label=f"{method_label(method)}")
            ax.plot(m["sparsity"], m["renormalized"], "-", marker=mk, color=c,
                    label=f"{method_label(method)} + {t['renorm'].iloc[0]}")
        ax.axhline(t["dense"].iloc[0], color="grey", lw=1, label="unpruned")
        if judge_sparsity is not None:
            ax.axvline(judge_sparsity, color="k", lw=0.8, ls=":")
        ax.set_xlabel("sparsity (share of weights removed)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{exp}\n(dashed: pruned, solid: re-normalised)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig


def plot_samples(samples: pd.DataFrame):
    """Accuracy after re-normalisation from n examples against sparsity, one panel per
    experiment and magnitude method. ``samples``: ``studies.pruning.samples_table`` (columns
    ``none``, the sample sizes, ``all``)."""
    keys = list(dict.fromkeys(zip(samples["experiment"], samples["method"])))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 3.0), squeeze=False)
    labels = [c for c in samples.columns if c not in ("experiment", "method", "sparsity")]
    sized = [c for c in labels if c != "none"]
    cmap = plt.get_cmap("viridis")
    for ax, (exp, method) in zip(axes[0], keys):
        t = samples[(samples["experiment"] == exp) & (samples["method"] == method)]
        for lab in labels:
            if lab == "none":
                style = dict(color="grey", ls="--", label="no re-normalisation")
            else:
                style = dict(color=cmap(sized.index(lab) / max(1, len(sized) - 1)),
                             label="all examples" if lab == "all" else f"{lab} examples")
            ax.plot(t["sparsity"], t[lab], marker="o", **style)
        ax.set_title(f"{exp}\n{method_label(method)}")
        ax.set_xlabel("sparsity")
        ax.set_ylim(-0.02, 1.02)
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_scale(scale: pd.DataFrame):
    """Per experiment: pre-activation std of each hidden layer relative to the unpruned model
    against sparsity (global magnitude), as pruned (dashed) and re-normalised (solid); means over
    the models in ``scale`` (rows of ``studies.pruning.Result.scale``)."""
    exps = list(dict.fromkeys(scale["experiment"]))
    fig, axes = plt.subplots(1, len(exps), figsize=(3.8 * len(exps), 3.0), squeeze=False)
    s = scale.groupby(["experiment", "renorm", "layer", "sparsity"])["std_ratio"].mean().reset_index()
    for ax, exp in zip(axes[0], exps):
        t = s[s["experiment"] == exp]
        layers = sorted(t["layer"].unique())
        cmap = plt.get_cmap("plasma")
        for layer in layers:
            c = cmap(layer / max(1, len(layers)))
            for flag, ls in ((False, "--"), (True, "-")):
                m = t[(t["layer"] == layer) & (t["renorm"] == flag)]
                ax.plot(m["sparsity"], m["std_ratio"], ls, color=c,
                        label=f"layer {layer + 1}" if flag else None)
        ax.axhline(1.0, color="grey", lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{exp}\n(dashed: pruned, solid: re-normalised)")
        ax.set_xlabel("global magnitude sparsity")
    axes[0, 0].set_ylabel("pre-activation std / unpruned")
    axes[0, -1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def plot_redundancy(units: pd.DataFrame, barriers: pd.DataFrame, tol: float, talk: dict | None = None):
    """Left: reduced against full width per dataset (mean ± std), with the talk's Moons values
    (``talk``: width -> (reduced width, ...)) and the identity line. Right: naive and
    weight-matched test loss barriers between full and between reduced networks against width.
    ``units``: ``studies.pruning.Result.units``; ``barriers``: ``studies.pruning.barrier_summary``."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    u = units[units["tol"] == tol]
    colors = {}  # one colour per dataset in both panels
    for ds, g in u.groupby("dataset", sort=False):
        m = g.groupby("width")["reduced_width"].agg(["mean", "std"]).reset_index()
        bars = ax1.errorbar(m["width"], m["mean"], yerr=m["std"].fillna(0), marker="o", capsize=2,
                            label=f"{ds} (measured)")
        colors[ds] = bars.lines[0].get_color()
    if talk:
        widths = sorted(talk)
        ax1.plot(widths, [talk[w][0] for w in widths], "k^:", label="Moons (talk)")
    lim = [1, max(units["width"].max(), 512)]
    ax1.plot(lim, lim, color="grey", lw=0.8, label="no reduction")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log", base=2)
    ax1.set_xlabel("hidden width")
    ax1.set_ylabel("units after removing redundancy")
    ax1.set_title(f"merge tolerance {tol:g}")
    ax1.legend(fontsize=7)
    networks = {"full": dict(mfc=None), "reduced": dict(mfc="none", alpha=0.7)}
    for (ds, method), g in barriers.groupby(["dataset", "method"], sort=False):
        style = method_style(method)
        for network, extra in networks.items():
            ax2.plot(g["width"], g[network], ls=style["linestyle"], marker=style["marker"], color=colors.get(ds),
                     label=f"{ds}, {method_label(method)}: {network}", **extra)
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("hidden width")
    ax2.set_ylabel("test loss barrier (nats)")
    ax2.set_title("colour: dataset, line: alignment; filled: full, open: reduced", fontsize=8)
    ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig
