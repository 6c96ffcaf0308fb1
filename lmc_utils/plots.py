"""Plots shared by the notebooks (style and file output live in :mod:`lmc_utils.figures`)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from .figures import _OKABE_ITO, experiment_label, method_label, method_style

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
                style = {**method_style(method), "linestyle": SPLIT_STYLES.get(split, ":")}
                ax.plot(c["lam"], c[metric], label=f"{method_label(method)} ({split})", **style)
            ax.set_xlabel(r"$\lambda$  (0: model A, 1: aligned model B)")
            ax.set_ylabel("accuracy" if metric == "accuracy" else "cross-entropy loss")
            suffix = (" — with RESET" if reset else " — no RESET") if len(resets) > 1 else ""
            ax.set_title(f"{title}{suffix}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.04 * (len(labels) > 3)))
    fig.tight_layout(rect=(0, 0.08 if len(resets) == 1 else 0.05, 1, 1))
    return fig


SPAWNED_STYLE = {"color": "#009E73", "marker": "o"}  # spawned pairs (same basin): Okabe-Ito green


def plot_taylor_curves(curves: pd.DataFrame, title: str = ""):
    """Actual loss along the line (markers) and its second-order Taylor model around the
    midpoint (line), one panel per kind of pair and alignment method."""
    panels = list(dict.fromkeys(zip(curves["kind"], curves["method"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.0), squeeze=False)
    for ax, (kind, method) in zip(axes[0], panels):
        c = curves[(curves["kind"] == kind) & (curves["method"] == method)]
        actual, quad = c[c["source"] == "actual"], c[c["source"] == "taylor"]
        style = method_style(method) if kind == "independent" else SPAWNED_STYLE
        ax.plot(actual["lam"], actual["loss"], linestyle="none", marker=style["marker"], color=style["color"],
                label="actual loss")
        ax.plot(quad["lam"], quad["loss"], "-", color=style["color"], alpha=0.7, label="2nd-order Taylor (midpoint)")
        ax.set_title(f"{kind}, {method_label(method)}" if kind == "independent" else f"{kind} pair")
        ax.set_xlabel(r"$\lambda$")
    axes[0, 0].set_ylabel("train loss")
    axes[0, 0].legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_swa_barriers(samples: pd.DataFrame, independent: pd.DataFrame, threshold: float | None = None,
                      floor: float = 1e-6):
    """Naive test loss barriers against hidden width on one log scale: every pair of SWA samples
    (small dots, jittered, one colour) and every independent pair of runs (large squares), with each
    group's median as a line. Barriers below ``floor`` (zero up to rounding) are drawn at ``floor``
    and counted in the legend; ``threshold``: a dashed reference line (the declared criterion)."""
    import numpy as np

    colors = {"samples": "#0072B2", "independent": "#D55E00"}  # Okabe-Ito blue / vermillion
    widths = sorted(set(samples["width"]) | set(independent["width"]))
    pos = {w: k for k, w in enumerate(widths)}
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for kind, frame, marker, size in (("samples", samples, "o", 6), ("independent", independent, "s", 36)):
        if frame.empty:
            continue
        x = frame["width"].map(pos).to_numpy(float)
        y = frame["loss_barrier"].to_numpy(float)
        below = int((y < floor).sum())
        jitter = rng.uniform(-0.15, 0.15, len(x)) if kind == "samples" else rng.uniform(-0.05, 0.05, len(x))
        label = ("pairs of SWA samples within a run" if kind == "samples" else "independent runs (final iterates)")
        label += f"; {below} of {len(y)} below {floor:g}" if below else ""
        ax.scatter(x + jitter + (0.25 if kind == "independent" else 0), np.maximum(y, floor), s=size, marker=marker,
                   color=colors[kind], alpha=0.35 if kind == "samples" else 0.9, edgecolors="none", label=label)
        med = frame.groupby("width")["loss_barrier"].median()
        ax.plot([pos[w] + (0.25 if kind == "independent" else 0) for w in med.index], np.maximum(med.to_numpy(), floor),
                color=colors[kind], linestyle="-" if kind == "samples" else "--", linewidth=1.2)
    if threshold is not None:
        ax.axhline(threshold, color="#000000", linestyle=":", linewidth=1, label=f"criterion: {threshold:g} nats")
    ax.set_yscale("log")
    ax.set_xticks(range(len(widths)), [str(w) for w in widths])
    ax.set_xlabel("hidden width")
    ax.set_ylabel("naive test loss barrier (nats, log)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, fontsize=8)
    return fig


def plot_identity_share(summary: pd.DataFrame):
    """Share of units weight matching leaves in place, between SWA samples and between
    independent runs, against hidden width."""
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    ax.plot(summary["width"], summary["swa_pairs_identity_share"], "o-", color="#0072B2", label="between SWA samples")
    ax.plot(summary["width"], summary["independent_identity_share"], "s--", color="#D55E00",
            label="between independent runs")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width")
    ax.set_ylabel("units left in place by WM")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    return fig


# --- notebook 03: STE and three models ------------------------------------------------------


def plot_planes(planes: pd.DataFrame, title: str = "", split: str | None = None):
    """Contour plots of the test loss (log10) and accuracy on the plane through a, pi_b(b) and
    pi_c(c), one column per alignment method (``planes`` from :func:`lmc_utils.interpolation.plane_grid`
    with a ``method`` column); the three models are marked, each labelled with its accuracy in
    dark text on a white box (legible on pale and dark parts of any colour map). Colour scales
    are shared per row."""
    import numpy as np


    split = split or planes["split"].iloc[0]
    planes = planes[planes["split"] == split]
    methods = list(dict.fromkeys(planes["method"]))
    fig, axes = plt.subplots(2, len(methods), figsize=(4.0 * len(methods) + 0.8, 6.8), squeeze=False,
                             layout="constrained")
    grid = planes[planes["point"] == "grid"]
    x_mid = 0.5 * (float(grid["x"].min()) + float(grid["x"].max()))
    names = {"a": r"$\theta_a$", "b": r"$\pi_b(\theta_b)$", "c": r"$\pi_c(\theta_c)$"}
    for row, (metric, cmap) in enumerate((("loss", "viridis"), ("accuracy", "magma"))):
        vals = np.log10(grid["loss"]) if metric == "loss" else grid["accuracy"]
        levels = np.linspace(float(vals.min()), float(vals.max()), 16)
        if levels[-1] <= levels[0]:
            levels = np.linspace(levels[0] - 1e-6, levels[0] + 1e-6, 3)
        for col, m in enumerate(methods):
            ax = axes[row, col]
            g = grid[grid["method"] == m]
            xs, ys = np.unique(g["x"]), np.unique(g["y"])
            z = g.pivot_table(index="y", columns="x", values=metric).reindex(index=ys, columns=xs).to_numpy()
            z = np.log10(z) if metric == "loss" else z
            cs = ax.contourf(xs, ys, z, levels=levels, cmap=cmap)
            pts = planes[(planes["method"] == m) & (planes["point"] != "grid")]
            marker = method_style(m)["marker"]
            for p in pts.itertuples():
                ax.plot(p.x, p.y, marker, color="white", markeredgecolor="black", ms=6)
                right = p.x > x_mid
                ax.annotate(f"{names[p.point]}\n{100 * p.accuracy:.1f}%", (p.x, p.y), color="black", fontsize=8,
                            xytext=(-6 if right else 6, 6), textcoords="offset points", ha="right" if right else "left",
                            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "0.3",
                                  "alpha": 0.85, "linewidth": 0.5})
            ax.set_aspect("equal")
            ax.grid(False)
            ax.set_title(f"{method_label(m)}: {'log10 loss' if metric == 'loss' else 'accuracy'} ({split})")
            if row == 1:
                ax.set_xlabel("distance along a→π_b(b)")
        axes[row, 0].set_ylabel("orthogonal distance")
        fig.colorbar(cs, ax=axes[row].tolist(), label="log10 cross-entropy" if metric == "loss" else "accuracy")
    if title:
        fig.suptitle(title)
    return fig


def plot_three_model_barriers(summary: pd.DataFrame, title: str = ""):
    """Loss and accuracy barriers (mean and sd over triples) for each pair of the three aligned
    models, one marker per method (``summary`` from
    :func:`lmc_utils.studies.three_models.barrier_summary`, one experiment); methods differ by
    colour and marker (:func:`lmc_utils.figures.method_style`)."""
    import numpy as np


    pairs = list(dict.fromkeys(summary["pair"]))
    methods = list(dict.fromkeys(summary["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.3))
    step = 0.7 / max(len(methods) - 1, 1)
    for ax, metric, scale, label in ((axes[0], "loss_barrier", 1.0, "loss barrier (nats)"),
                                     (axes[1], "accuracy_barrier", 100.0, "accuracy barrier (points)")):
        for i, m in enumerate(methods):
            s = summary[summary["method"] == m].set_index("pair").reindex(pairs)
            style = method_style(m)
            ax.errorbar(np.arange(len(pairs)) + (i - (len(methods) - 1) / 2) * step, scale * s[f"{metric}_mean"],
                        yerr=scale * s[f"{metric}_std"].fillna(0), fmt=style["marker"], color=style["color"],
                        ms=6, capsize=3, label=method_label(m))
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(np.arange(len(pairs)), pairs)
        ax.set_ylabel(label)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle((f"{title}: " if title else "") + "mean ± sd over triples")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_singular_alignment(summary: pd.DataFrame, title: str = ""):
    """Mean top-k singular-vector alignment between a and the aligned b, c per layer, left (u)
    and right (v) vectors, one line per method in its colour, line style and marker (``summary``
    from :func:`lmc_utils.studies.three_models.alignment_summary`, one experiment)."""
    import numpy as np


    layers = list(dict.fromkeys(summary["layer"]))
    methods = list(dict.fromkeys(summary["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.3), sharey=True)
    for ax, col, label in ((axes[0], "u_top", "left singular vectors u"), (axes[1], "v_top", "right singular vectors v")):
        for m in methods:
            s = summary[summary["method"] == m].set_index("layer").reindex(layers)
            ax.plot(np.arange(len(layers)), s[col], ms=6, label=method_label(m), **method_style(m))
        ax.set_xticks(np.arange(len(layers)), layers, rotation=30)
        ax.set_title(label)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel(r"mean $|\langle x_i^a, x_i^b \rangle|$, top-k ranks")
    axes[0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- notebook 04: re-normalisation ---------------------------------------------------------

# variant name -> key of figures.METHOD_STYLES / METHOD_LABELS
VARIANT_KEYS = {"none": "none", "REPAIR": "repair", "RESCALE": "rescale", "RESHIFT": "reshift",
                "SEQ REPAIR": "seq_repair", "RESET": "reset"}


def variant_style(variant: str) -> dict:
    """Line style of a re-normalisation variant: the house style of its method
    (:func:`figures.method_style`); RESCALE (avg) is RESCALE's colour, dotted, open marker.
    REPAIR is drawn wide and SEQ REPAIR narrow on top of it, so that both show where they agree."""
    if variant == "RESCALE (avg)":
        style = {**method_style("rescale"), "linestyle": ":", "marker": "s", "markerfacecolor": "white"}
    else:
        style = method_style(VARIANT_KEYS.get(variant, variant))
    if variant == "REPAIR":
        style.update(linewidth=3.2, alpha=0.55, zorder=2)
    elif variant == "SEQ REPAIR":
        style.update(linewidth=1.2, markersize=3, markerfacecolor="white", zorder=3)
    return style


def variant_label(variant: str) -> str:
    return method_label(VARIANT_KEYS[variant]) if variant in VARIANT_KEYS else variant


def plot_variant_curves(curves: pd.DataFrame, title: str = ""):
    """Test accuracy and loss along lambda per re-normalisation variant (colour, line style and
    marker from :func:`variant_style`), one row per alignment method."""
    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(len(methods), 2, figsize=(8.4, 2.8 * len(methods)), squeeze=False)
    for row, method in enumerate(methods):
        sub = curves[curves["method"] == method]
        for col, metric in enumerate(("accuracy", "loss")):
            ax = axes[row, col]
            for variant, c in sub.groupby("variant", sort=False):
                ax.plot(c["lam"], c[metric], label=variant_label(variant), **variant_style(variant))
            ax.set_xlabel(r"$\lambda$")
            ax.set_ylabel(f"test {metric}")
            ax.set_title(f"{title}: {method_label(method)}")
            if metric == "loss":
                ax.set_yscale("log")
    axes[0, 0].legend(loc="best")
    fig.tight_layout()
    return fig


def plot_activation_profiles(profiles: pd.DataFrame, title: str = ""):
    """Per hidden layer: mean pre-activation std, post-activation std and share of zero
    post-activations, one line per model (endpoints, midpoints, corrected midpoints, random init).
    Colour and marker: the correction (house style); line style: dashed for the naive midpoint."""
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.2))
    for name, p in profiles.groupby("model", sort=False):
        base, _, fix = name.partition(" + ")
        if base.startswith("endpoint"):
            style = {"color": "#000000", "linestyle": "-", "marker": "o", "alpha": 0.5}
        elif base.startswith("random"):
            style = {"color": "#8c564b", "linestyle": ":", "marker": "x"}
        else:
            style = variant_style(fix or "none")
            style.update(linestyle="--" if base.startswith("naive") else "-", linewidth=1.6, alpha=1.0)
            if base.startswith("naive"):
                style["markerfacecolor"] = "white"
        for ax, col in zip(axes, ("pre_std", "post_std", "zero_share")):
            ax.plot(p["layer"], p[col], label=name, **style)
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


BIAS_CURVE_STYLES = {"with biases: WM": "weight", "with biases: WM + RESCALE": "rescale",
                     "with biases: WM, homogeneous": "seq_repair", "no biases: WM": "reshift"}


def plot_bias_curves(curves: pd.DataFrame, title: str = ""):
    """Test accuracy and loss along lambda (mean over pairs and group orders) for each bias-study curve."""
    m = curves.groupby(["curve", "lam"], sort=False)[["accuracy", "loss"]].mean().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.0))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for name, c in m.groupby("curve", sort=False):
            ax.plot(c["lam"], c[metric], label=name, **method_style(BIAS_CURVE_STYLES.get(name, name)))
        ax.set_xlabel(r"$\lambda$")
        ax.set_ylabel(f"test {metric}")
    axes[0].legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


STE_START_LABELS = {"wm": "weight-matching permutation", "wm_projected": "weight-matching permutation",
                    "a_identity": "θ_a, identity permutation", "identity": "identity permutation",
                    "random": "a random permutation"}


def plot_ste_history(history: pd.DataFrame, title: str = ""):
    """Held midpoint loss of the straight-through estimator against its steps, relative to its
    start (step 0: the weight-matching permutation for the WM starts; the axis says which), one thin line per matched pair and a dot at the permutation
    each run returned (``history``: :attr:`lmc_utils.studies.three_models.Result.ste_history`,
    one experiment). A line still falling at its last step means the budget stopped the search."""
    import numpy as np

    runs = list(history.groupby(["triple", "pair"], sort=False))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(runs), 1)))
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for colour, ((triple, pair), h) in zip(colours, runs):
        start = float(h.loc[h["step"] == 0, "held_loss"].iloc[0])
        rel = 100 * (h["held_loss"] / start - 1)
        best = h["step"] == h["best_step"].iloc[0]
        ax.plot(h["step"], rel, color=colour, lw=1.0, alpha=0.8, label=f"triple {triple}, {pair}")
        ax.plot(h.loc[best, "step"], rel[best], "o", color=colour, ms=4)
    ax.axhline(0, color="0.5", lw=0.8)
    inits = history["init"].unique() if "init" in history else ["wm"]
    start = STE_START_LABELS.get(inits[0], f"the {inits[0]!r} start") if len(inits) == 1 else "each run's start"
    ax.set_xlabel(f"STE step (0: {start})")
    ax.set_ylabel("held midpoint loss vs start (%)")
    if len(runs) <= 6:
        ax.legend(fontsize="x-small", ncol=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


RETRAIN_STYLES = {"naive midpoint": "naive", "WM midpoint": "weight", "AM midpoint": "activation",
                  "fresh init": "random"}


def plot_retraining(history: pd.DataFrame, target: float):
    """Running train accuracy per epoch against optimisation steps, per starting point: the mean
    over pairs (and group orders) as a line, each pair's run as a faint line."""
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    keys = [c for c in ("pair", "order") if c in history]
    for start, h in history.groupby("start", sort=False):
        style = method_style(RETRAIN_STYLES.get(start, start))
        if keys:
            for _, run in h.groupby(keys):
                ax.plot(run["steps"], run["train_accuracy"], color=style["color"], lw=0.6, alpha=0.3)
        mean = h.groupby("steps", sort=True)["train_accuracy"].mean()
        ax.plot(mean.index, mean.to_numpy(), label=start, **style)
    ax.axhline(target, color="k", lw=0.8, ls=":")
    ax.set_xlabel("optimisation steps")
    ax.set_ylabel("train accuracy (running, per epoch)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


# --- Notebook 02: singular values and singular vectors -------------------------------------



MAX_PANEL_COLUMNS = 6  # per-layer figures wrap after this many panels (ResNet20 has 22 layers)


def layer_panels(n: int, width: float = 3.2, height: float = 2.8, sharey: bool = False) -> tuple[plt.Figure, list]:
    """A figure with ``n`` panels of ``width x height`` inches, at most :data:`MAX_PANEL_COLUMNS`
    per row (unused grid cells hidden); returns the figure and the ``n`` axes in reading order."""
    cols = max(1, min(n, MAX_PANEL_COLUMNS))
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, sharey=sharey)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _line_style(method: str) -> dict:
    """Colour and line style of ``method`` without markers (for curves over hundreds of ranks)."""
    style = method_style(method)
    return {"color": style["color"], "linestyle": style["linestyle"]}


def _experiment_prefix(frame: pd.DataFrame) -> str:
    """``"MLP, 3 hidden layers, MNIST, "`` for a frame of one experiment: its label
    (:func:`lmc_utils.figures.experiment_label`; empty without an ``experiment`` column)."""
    if "experiment" not in frame:
        return ""
    return ", ".join(experiment_label(str(e)) for e in dict.fromkeys(frame["experiment"])) + ", "


def plot_spectra(spectra: pd.DataFrame, width: int):
    """Singular values against rank for every layer (one panel each) and every model of every
    pair at ``width`` (model A solid, model B dashed); in the output layer, B's spectrum is also
    drawn rescaled by the one fitted constant (dotted)."""
    sub = spectra[spectra["width"] == width]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = layer_panels(len(layers), height=2.9)
    for ax, layer in zip(axes, layers):
        for (pair, model), s in sub[sub["layer"] == layer].groupby(["pair", "model"], sort=False):
            first = pair == sub["pair"].min()
            ax.plot(s["rank"], s["s"], color="C0" if model == "a" else "C1", ls="-" if model == "a" else "--",
                    lw=0.9, alpha=0.7, label=(f"model {model.upper()} of each pair" if first else None))
            if layer == layers[-1] and model == "b":
                ax.plot(s["rank"], s["s_scaled"], color="C2", ls=":", lw=1.1, alpha=0.8,
                        label="B rescaled to A" if first else None)
        ax.set_xlabel("rank")
        ax.set_title(layer + (" (output)" if layer == layers[-1] else ""), fontsize=9)
    axes[0].set_ylabel("singular value")
    axes[0].legend(fontsize=7)
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"{_experiment_prefix(sub)}width {width}: singular values of independently trained models",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_alignment_matrices(matrices: dict, experiment: str, width: int, layer: str, methods: Sequence[str]):
    """``|<u_i^a, u_j^b>|`` (top row) and ``|<v_i^a, v_j^b>|`` (bottom row) over the top ranks for
    each way of aligning B (columns), first pair: a bright diagonal means the singular vectors of
    that rank point the same way. One labelled colour bar for all panels; no grid over the images."""
    fig, axes = plt.subplots(2, len(methods), figsize=(2.5 * len(methods) + 1.2, 5.4), squeeze=False,
                             constrained_layout=True)
    sides = {"u": "left singular vectors u", "v": "right singular vectors v"}
    for col, method in enumerate(methods):
        m = matrices[(experiment, width, method, layer)]
        for row, side in enumerate(sides):
            ax = axes[row, col]
            n = m[side].shape[0]
            im = ax.imshow(m[side].numpy(), vmin=0, vmax=1, cmap="viridis", interpolation="nearest",
                           extent=(0.5, n + 0.5, n + 0.5, 0.5))  # ticks at ranks 1..n
            ax.grid(False)
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(method_label(method), fontsize=9)
            if row == 1:
                ax.set_xlabel("rank j (model B)", fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{sides[side]}\nrank i (model A)", fontsize=8)
    bar = fig.colorbar(im, ax=axes, shrink=0.8)
    bar.set_label(r"$|\langle x_i^A, x_j^B\rangle|$ (x = u or v)")
    fig.suptitle(f"{experiment_label(experiment)}, width {width}, layer {layer}: singular-vector alignment, "
                 f"top {m['u'].shape[0]} ranks", fontsize=10)
    return fig


def plot_diagonal_alignment(diagonal: pd.DataFrame, width: int, side: str = "u", max_rank: int | None = 64):
    """Mean over pairs (and weight-matching group orders) of ``|<u_i^a, u_i^b>|`` (or ``v``)
    against rank ``i``, one panel per layer, one line per method."""
    sub = diagonal[diagonal["width"] == width]
    if max_rank:
        sub = sub[sub["rank"] <= max_rank]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = layer_panels(len(layers), height=2.8, sharey=True)
    for ax, layer in zip(axes, layers):
        m = sub[sub["layer"] == layer].groupby(["method", "rank"], sort=False)[side].mean().reset_index()
        for method, c in m.groupby("method", sort=False):
            ax.plot(c["rank"], c[side], lw=1.2, label=method_label(method), **_line_style(method))
        ax.set_xlabel("singular value rank")
        ax.set_title(layer, fontsize=9)
    axes[0].set_ylabel(f"|<{side}_i^a, {side}_i^b>|")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{_experiment_prefix(sub)}width {width}: alignment of the i-th "
                 f"{'left' if side == 'u' else 'right'} singular vectors (mean over pairs)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_top_k_contribution(contribution: pd.DataFrame, width: int):
    """``sum_{i,j<k} s_i^a s_j^b <u_i^a,u_j^b><v_i^a,v_j^b> / (||W_a|| ||W_b||)`` against k (log axis),
    one panel per layer, one line per method (mean over pairs and group orders); the right end
    is the whole inner product."""
    sub = contribution[contribution["width"] == width]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = layer_panels(len(layers), height=2.8, sharey=True)
    for ax, layer in zip(axes, layers):
        m = sub[sub["layer"] == layer].groupby(["method", "k"], sort=True)["contribution"].mean().reset_index()
        for method in dict.fromkeys(sub["method"]):
            c = m[m["method"] == method]
            ax.plot(c["k"], c["contribution"], ms=3, label=method_label(method), **method_style(method))
        ax.set_xscale("log")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("top-k singular pairs")
        ax.set_title(layer, fontsize=9)
    axes[0].set_ylabel(r"$\langle W_a, \pi(W_b)\rangle$ from top k / norms")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{_experiment_prefix(sub)}width {width}: part of the inner product from the top-k singular pairs",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_input_alignment(inputs: pd.DataFrame, layers: Sequence[str] | None = None):
    """Mean ``|<v_i, z>| / ||z||`` (over all models of a width) against the relative rank
    ``i / r``, one line per width (colour), one panel per layer."""
    layers = list(layers or dict.fromkeys(inputs["layer"]))
    widths = sorted(inputs["width"].unique())
    fig, axes = layer_panels(len(layers), height=2.8)
    for ax, layer in zip(axes, layers):
        sub = inputs[inputs["layer"] == layer]
        for i, width in enumerate(widths):
            c = sub[sub["width"] == width].groupby("rank", sort=True)[["rank_fraction", "input_alignment"]].mean()
            ax.plot(c["rank_fraction"], c["input_alignment"], color=plt.cm.viridis(i / max(1, len(widths) - 1)),
                    lw=1.2, label=f"width {width}")
        ax.set_xscale("log")
        ax.set_xlabel("rank / number of singular values")
        ax.set_title(layer, fontsize=9)
    axes[0].set_ylabel(r"mean $|\langle v_i, z\rangle| / \|z\|$")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_large_vs_merged(summary: pd.DataFrame):
    """Per width (one experiment's rows of the width summary): share of large singular values
    (mean over hidden layers) and the test loss of the weight-matched and naive midpoints next to
    the endpoints' (means over pairs and group orders)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.0))
    ax1.plot(summary["width"], summary["large_fraction"], marker="o", color="k")
    ax1.set_xlabel("width")
    ax1.set_ylabel("large singular values / width")
    for col, method, label in (("loss_wm_mid", "weight", "midpoint after weight matching"),
                               ("loss_naive_mid", "naive", "midpoint, no permutation")):
        ax2.plot(summary["width"], summary[col], label=label, **method_style(method))
    ax2.plot(summary["width"], summary["loss_endpoints"], marker="o", color="k", label="endpoints (mean)")
    ax2.set_yscale("log")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(summary["width"]), [str(w) for w in summary["width"]])
        ax.xaxis.set_minor_locator(plt.NullLocator())
    ax2.yaxis.set_major_formatter(plt.FormatStrFormatter("%.3g"))
    ax2.yaxis.set_minor_formatter(plt.FormatStrFormatter("%.3g"))
    ax2.tick_params(axis="y", which="minor", labelsize=7)
    ax2.set_xlabel("width")
    ax2.set_ylabel("test loss (log scale)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- notebook 05: pruning and redundant units --------------------------------------------------



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
        ax.set_title(f"{experiment_label(exp)}\n(dashed: pruned, solid: re-normalised)")
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
        ax.set_title(f"{experiment_label(exp)}\n{method_label(method)}")
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
        ax.set_title(f"{experiment_label(exp)}\n(dashed: pruned, solid: re-normalised)")
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
                            label=f"{experiment_label(ds)} (measured)")
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
                     label=f"{experiment_label(ds)}, {method_label(method)}: {network}", **extra)
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("hidden width")
    ax2.set_ylabel("test loss barrier (nats)")
    ax2.set_title("colour: dataset, line: alignment; filled: full, open: reduced", fontsize=8)
    ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig


# --- notebook 07: same basin vs re-basin ----------------------------------------------------

KIND_LABELS = {"independent": "independent pair", "spawned": "spawned children", "retrained": "retrained copy"}


def plot_same_basin_curves(curves: pd.DataFrame, title: str = "", metric: str = "accuracy"):
    """Test ``metric`` along lambda for each kind of pair (rows: independent, spawned, retrained
    copy) and RESET setting (columns), one line per alignment method (``curves`` from
    :func:`lmc_utils.studies.same_basin.run`, its first pair of each kind)."""
    kinds = list(dict.fromkeys(curves["kind"]))
    resets = list(dict.fromkeys(curves["reset"]))
    fig, axes = plt.subplots(len(kinds), len(resets), figsize=(3.6 * len(resets), 2.5 * len(kinds)),
                             squeeze=False, sharex=True, sharey=True)
    for r, kind in enumerate(kinds):
        for c, reset in enumerate(resets):
            ax = axes[r, c]
            sub = curves[(curves["kind"] == kind) & (curves["reset"] == reset)]
            for method, m in sub.groupby("method", sort=False):
                ax.plot(m["lam"], m[metric], label=method_label(method), **method_style(method))
            ax.set_title(f"{KIND_LABELS.get(kind, kind)}" + ((", RESET" if reset else ", no RESET")
                                                           if len(resets) > 1 else ""), fontsize=9)
            if r == len(kinds) - 1:
                ax.set_xlabel(r"$\lambda$")
        axes[r, 0].set_ylabel(f"test {metric}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_retraining_distance(history: pd.DataFrame, reference: float | None = None, title: str = ""):
    """The retrained copies' L2 distance to the original (weights and BatchNorm statistics) after
    each retraining epoch, from 0 at the start (one line per copy; the learning rate on the right axis), with the mean
    distance between independent pairs after weight matching as a reference line (Qu & Horvath
    2024, Fig. 13)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for pair, h in history.groupby("pair"):
        ax.plot([0, *h["epoch"]], [0.0, *h["l2_from_start"]], "o-", color="#0072B2", alpha=0.7,
                label="retrained copy to original" if pair == history["pair"].min() else None)
    if reference is not None:
        ax.axhline(reference, color="#D55E00", linestyle="--", label="independent pair after WM")
    ax.set_xlabel("retraining epoch")
    ax.set_ylabel("L2 distance (incl. BN statistics)")
    ax.set_ylim(bottom=0)
    lr = ax.twinx()
    first = history[history["pair"] == history["pair"].min()]
    lr.step(first["epoch"], first["lr"], where="mid", color="grey", alpha=0.5)
    lr.set_ylabel("learning rate", color="grey")
    lr.grid(False)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_lr_barriers(table: pd.DataFrame, reset: bool, title: str = ""):
    """Mean test accuracy barrier after matching against the training learning rate, one line per
    method (``table``: ``07_lr`` of :func:`lmc_utils.studies.same_basin.tables`, one experiment),
    with the degraded largest-rate pairs as open markers; the endpoints' mean accuracy beside."""
    sub = table[(table["reset"] == reset) & (table["method"] != "naive")]
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    for method, m in sub.groupby("method", sort=False):
        style = method_style(method)
        t, d = m[m["variant"] == "trained"], m[m["variant"] == "degraded"]
        axes[0].plot(t["lr"], t["accuracy_barrier"], "o-", color=style["color"], label=method_label(method))
        axes[0].plot(d["lr"], d["accuracy_barrier"], "o", mfc="none", color=style["color"], markersize=9,
                     label=f"{method_label(method)}, degraded")
    ends = sub[sub["method"] == sub["method"].iloc[0]]
    for variant, marker in (("trained", "o-"), ("degraded", "o")):
        e = ends[ends["variant"] == variant]
        axes[1].plot(e["lr"], (e["accuracy_a"] + e["accuracy_b"]) / 2, marker, color="black",
                     mfc="none" if variant == "degraded" else "black", label=f"endpoints ({variant})")
    rates = sorted(set(sub["lr"]))
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(rates, [f"{v:g}" for v in rates])
        ax.minorticks_off()
        ax.set_xlabel("learning rate")
    axes[0].set_ylabel("test accuracy barrier" + (" (RESET)" if reset else ""))
    axes[1].set_ylabel("endpoint test accuracy")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _errorbar(ax, x, t: pd.DataFrame, column: str, low: str, high: str, **style) -> None:
    """Mean ``column`` with its interval ``[low, high]`` as error bars (infinite bounds drawn as none)."""
    import numpy as np

    y = t[column].to_numpy(dtype=float)
    lo = np.nan_to_num(y - t[low].to_numpy(dtype=float), posinf=0.0, neginf=0.0)
    hi = np.nan_to_num(t[high].to_numpy(dtype=float) - y, posinf=0.0, neginf=0.0)
    ax.errorbar(x, y, yerr=[lo, hi], capsize=3, **style)


def plot_weight_decay(table: pd.DataFrame, title: str = ""):
    """Test accuracy barrier after matching (left) and endpoint test accuracy (right) against the
    training weight decay, one line per method, means over pairs with 95% t intervals (``table``:
    ``07_weight_decay`` of :func:`lmc_utils.studies.same_basin.bias_tables`, one experiment). The
    weight decays are evenly spaced (0 has no place on a log axis) and labelled."""
    values = sorted(set(table["weight_decay"]))
    pos = {v: i for i, v in enumerate(values)}
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    for method, m in table.groupby("method", sort=False):
        style = method_style(method)
        m = m.sort_values("weight_decay")
        x = [pos[v] for v in m["weight_decay"]]
        _errorbar(axes[0], x, m, "accuracy_barrier", "ci_low", "ci_high", fmt="o-", color=style["color"],
                  label=method_label(method))
    first = table[table["method"] == table["method"].iloc[0]].sort_values("weight_decay")
    _errorbar(axes[1], [pos[v] for v in first["weight_decay"]], first, "endpoint_accuracy", "endpoint_ci_low",
              "endpoint_ci_high", fmt="o-", color="black", label="endpoints")
    for ax in axes:
        ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set_xlabel("weight decay")
    axes[0].set_ylabel("test accuracy barrier" + (" (RESET)" if bool(table["reset"].any()) else ""))
    axes[1].set_ylabel("endpoint test accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


INIT_LABELS = {"kaiming_uniform": "Kaiming uniform", "kaiming_normal": "Kaiming normal"}
INIT_COLORS = {"kaiming_uniform": "#0072B2", "kaiming_normal": "#D55E00"}


def plot_init_comparison(table: pd.DataFrame, history: pd.DataFrame, distances: pd.DataFrame, title: str = ""):
    """The initialisation study of one experiment (tables of
    :func:`lmc_utils.studies.same_basin.bias_tables`): the test accuracy barrier after each matching
    method per initialisation with 95% intervals over pairs (``07_init``); each model's L2 distance
    from its initialisation per epoch, mean and 95% band over models (``07_init_history``); and the
    distance between a pair's models at initialisation and after training, without and after weight
    matching (``07_init_distances``)."""
    import numpy as np

    inits = [i for i in INIT_LABELS if i in set(table["init"])]
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.1))
    width = 0.8 / max(1, len(inits))
    for k, init in enumerate(inits):
        t = table[table["init"] == init].set_index("method").loc[methods].reset_index()
        x = np.arange(len(methods)) + (k - (len(inits) - 1) / 2) * width
        _errorbar(axes[0], x, t, "accuracy_barrier", "ci_low", "ci_high", fmt="o", color=INIT_COLORS[init],
                  label=INIT_LABELS[init])
        h = history[history["init"] == init].sort_values("epoch")
        axes[1].plot([0, *h["epoch"]], [0.0, *h["l2_from_start"]], "o-", color=INIT_COLORS[init],
                     label=INIT_LABELS[init])
        lo = np.nan_to_num(h["ci_low"].to_numpy(dtype=float), neginf=np.nan)
        hi = np.nan_to_num(h["ci_high"].to_numpy(dtype=float), posinf=np.nan)
        axes[1].fill_between(h["epoch"], lo, hi, color=INIT_COLORS[init], alpha=0.2)
        for j, (alignment, ls) in enumerate((("naive", "--"), ("weight", "-"))):
            d = distances[(distances["init"] == init) & (distances["alignment"] == alignment)].set_index("stage")
            stages = [s for s in ("init", "trained") if s in d.index]
            axes[2].plot(range(len(stages)), d.loc[stages, "l2"], "o" + ls, color=INIT_COLORS[init],
                         label=f"{INIT_LABELS[init]}, {method_label(alignment)}")
    axes[0].set_xticks(range(len(methods)), [method_label(m) for m in methods])
    axes[0].set_ylabel("test accuracy barrier after matching")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("L2 distance from initialisation")
    axes[1].xaxis.get_major_locator().set_params(integer=True)
    axes[2].set_xticks([0, 1], ["initialisation", "trained"])
    axes[2].set_ylabel("L2 distance between the pair")
    for ax in axes:
        ax.legend(fontsize=7)
    axes[1].set_ylim(bottom=0)
    axes[2].set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_lr_pruning(table: pd.DataFrame, renorm_label: str = "RESET", title: str = ""):
    """Test accuracy against sparsity after global magnitude pruning, one colour per training
    learning rate: as pruned (dashed, open markers) and after re-normalisation (solid), means over
    models with 95% t intervals as bands (``table``: ``07_lr_pruning`` of
    :func:`lmc_utils.studies.same_basin.tables`, one experiment)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    rates = sorted(set(table["lr"]))
    cmap = plt.get_cmap("viridis")
    for k, lr in enumerate(rates):
        color = cmap(0.15 + 0.7 * k / max(1, len(rates) - 1))
        for flag, ls, mfc in ((False, "--", "none"), (True, "-", None)):
            t = table[(table["lr"] == lr) & (table["renorm"] == flag)].sort_values("sparsity")
            ax.plot(t["sparsity"], t["accuracy"], ls, marker="o", mfc=mfc or color, color=color,
                    label=f"lr {lr:g}" + (f" + {renorm_label}" if flag else ", pruned"))
            lo = np.nan_to_num(t["ci_low"].to_numpy(dtype=float), neginf=np.nan)
            hi = np.nan_to_num(t["ci_high"].to_numpy(dtype=float), posinf=np.nan)
            ax.fill_between(t["sparsity"], lo, hi, color=color, alpha=0.15)
    ax.set_xlabel("sparsity (share of weights removed)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# --- notebook 09: width, epsilon-loss clusters, decision boundaries ---------------------------


def plot_width_barriers(pairs: pd.DataFrame, column: str = "loss_barrier", ylabel: str = "test loss barrier (nats)"):
    """One panel per experiment: ``column`` (per pair) against hidden width for each method, the mean
    over pairs with a 95% t interval as error bars, on a log-2 width axis."""
    import numpy as np
    from scipy import stats

    names = list(dict.fromkeys(pairs["experiment"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        sub = pairs[pairs["experiment"] == name]
        for method in dict.fromkeys(sub["method"]):
            g = sub[sub["method"] == method].groupby("width")[column]
            mean, sem, n = g.mean(), g.sem(), g.size()
            half = sem * stats.t.ppf(0.975, np.maximum(n - 1, 1))
            style = method_style(method)
            ax.errorbar(mean.index, mean.to_numpy(), yerr=half.fillna(0).to_numpy(), capsize=2,
                        label=method_label(method), **style)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden width")
        ax.set_ylabel(ylabel)
        ax.set_title(experiment_label(name))
        ax.legend()
    return fig


def plot_midpoints(pairs: pd.DataFrame):
    """Per experiment: the endpoints' mean test accuracy and the naive and weight-matched midpoints'
    (mean over pairs) against width ("worse, but not by much")."""
    names = list(dict.fromkeys(pairs["experiment"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        sub = pairs[pairs["experiment"] == name]
        ends = sub[sub["method"] == "naive"].groupby("width")["endpoint_accuracy"].mean()
        ax.plot(ends.index, ends.to_numpy(), "k-", marker="o", label="endpoints (mean)")
        for method in dict.fromkeys(sub["method"]):
            mid = sub[sub["method"] == method].groupby("width")["midpoint_accuracy"].mean()
            ax.plot(mid.index, mid.to_numpy(), label=f"midpoint, {method_label(method)}", **method_style(method))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden width")
        ax.set_ylabel("test accuracy")
        ax.set_title(experiment_label(name))
        ax.legend()
    return fig


def plot_epsilon_clusters(epsilon: pd.DataFrame, clusters: pd.DataFrame, experiment: str):
    """For one experiment: a row per clustered width and a column pair per reference (no matching,
    matched to network 0): the average-linkage dendrogram of the epsilon-loss and its heatmap ordered by
    the dendrogram, colours capped at the cut (the networks' mean test loss, as in the talk)."""
    import numpy as np
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    e = epsilon[epsilon["experiment"] == experiment]
    widths = sorted(e["width"].unique())
    refs = list(dict.fromkeys(e["reference"]))
    fig, axes = plt.subplots(len(widths), 2 * len(refs), figsize=(3.4 * 2 * len(refs), 2.9 * len(widths)),
                             squeeze=False, gridspec_kw={"width_ratios": [1, 1.3] * len(refs)})
    for r, width in enumerate(widths):
        for c, ref in enumerate(refs):
            sub = e[(e["width"] == width) & (e["reference"] == ref)]
            n = int(sub["i"].max()) + 1
            m = np.zeros((n, n))
            m[sub["i"].to_numpy(), sub["j"].to_numpy()] = sub["epsilon_loss"].to_numpy()
            d = np.clip((m + m.T) / 2, 0, None)
            np.fill_diagonal(d, 0)
            cut = float(clusters[(clusters["experiment"] == experiment) & (clusters["width"] == width)
                                 & (clusters["reference"] == ref)]["cut"].iloc[0])
            z = linkage(squareform(d, checks=False), method="average")
            ax_d, ax_h = axes[r][2 * c], axes[r][2 * c + 1]
            tree = dendrogram(z, ax=ax_d, orientation="left", no_labels=True, color_threshold=cut,
                              above_threshold_color="#999999")
            ax_d.axvline(cut, color="k", linestyle=":", linewidth=1)
            ax_d.set_title(f"width {width}, {ref}", fontsize=9)
            ax_d.set_xlabel("epsilon-loss (nats)")
            order = tree["leaves"][::-1]  # top to bottom as in the dendrogram
            im = ax_h.imshow(d[np.ix_(order, order)], vmin=0, vmax=cut, cmap="viridis")
            ax_h.set_xticks([])
            ax_h.set_yticks([])
            ax_h.grid(False)
            fig.colorbar(im, ax=ax_h, fraction=0.046, label="epsilon-loss (capped at cut)")
    fig.suptitle(experiment_label(experiment))
    fig.tight_layout()
    return fig


def plot_decision_boundaries(boundaries: pd.DataFrame, points=None):
    """A row per width and a column per panel (endpoints, naive and weight-matched midpoints): the
    class-1 probability on the grid with the 0.5 contour (the decision boundary); ``points``: an
    optional ``(x [n, 2], y [n])`` of data drawn on top."""
    import numpy as np

    widths = sorted(boundaries["width"].unique())
    panels = list(dict.fromkeys(boundaries["panel"]))
    fig, axes = plt.subplots(len(widths), len(panels), figsize=(2.6 * len(panels), 2.2 * len(widths)),
                             squeeze=False, sharex=True, sharey=True)
    for r, width in enumerate(widths):
        for c, panel in enumerate(panels):
            sub = boundaries[(boundaries["width"] == width) & (boundaries["panel"] == panel)]
            xs, ys = np.sort(sub["x"].unique()), np.sort(sub["y"].unique())
            grid = sub.pivot_table(index="y", columns="x", values="p1").loc[ys, xs].to_numpy()
            ax = axes[r][c]
            ax.contourf(xs, ys, grid, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.8)
            ax.contour(xs, ys, grid, levels=[0.5], colors="k", linewidths=1)
            if points is not None:
                px, py = points
                ax.scatter(px[:, 0], px[:, 1], c=py, s=2, cmap="coolwarm", alpha=0.4)
            ax.grid(False)
            if r == 0:
                ax.set_title(panel)
            if c == 0:
                ax.set_ylabel(f"width {width}")
    return fig


def plot_duplicates(duplicates: pd.DataFrame):
    """Share of hidden units with a near-duplicate in their own network against width (mean ± sd)."""
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for k, name in enumerate(dict.fromkeys(duplicates["experiment"])):
        g = duplicates[duplicates["experiment"] == name].groupby("width")["duplicate_share"]
        ax.errorbar(g.mean().index, g.mean().to_numpy(), yerr=g.std().fillna(0).to_numpy(), capsize=2,
                    marker="os^"[k % 3], label=experiment_label(name))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width")
    ax.set_ylabel("units with a near-duplicate")
    ax.legend()
    return fig


def plot_robustness(pairs: pd.DataFrame):
    """Naive and weight-matched test loss barriers (mean ± 95% t interval over pairs) per
    initialisation x optimiser configuration."""
    import numpy as np
    from scipy import stats

    names = list(dict.fromkeys(pairs["experiment"]))
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 3.2))
    methods = list(dict.fromkeys(pairs["method"]))
    for k, method in enumerate(methods):
        g = pairs[pairs["method"] == method].groupby("experiment", sort=False)["loss_barrier"]
        mean, sem, n = g.mean().reindex(names), g.sem().reindex(names), g.size().reindex(names)
        half = (sem * stats.t.ppf(0.975, np.maximum(n - 1, 1))).fillna(0)
        x = np.arange(len(names)) + (k - (len(methods) - 1) / 2) * 0.25
        style = method_style(method)
        ax.errorbar(x, mean.to_numpy(), yerr=half.to_numpy(), fmt=style.get("marker", "o"), color=style["color"],
                    capsize=2, label=method_label(method))
    ax.set_xticks(range(len(names)), [n.replace("kaiming_", "").replace(", ", "\n") for n in names])
    ax.set_ylabel("test loss barrier (nats)")
    ax.legend()
    return fig


REGIME_LINES = {"reference": "-", "sequential": "--", "iterative": ":", "none": "-"}
REGIME_MARKERS = {"reference": "o", "sequential": "s", "iterative": "^", "none": "x"}


def plot_merge_many(summary: pd.DataFrame, experiment: str):
    """Accuracy of the merge of n models against n, one panel per re-normalisation (``none`` and
    RESET or REPAIR): one line per matcher (colour, :func:`lmc_utils.figures.method_style`) and
    regime (line style and marker), mean ± sd over groups, next to the plain average without
    matching, the spawned children's plain average (same basin, green) and the mean accuracy of
    the n endpoints (black; dotted green: of the n children). ``summary``:
    :func:`lmc_utils.studies.merge_many.merged_summary`."""
    s = summary[summary["experiment"] == experiment]
    renorms = list(dict.fromkeys(s["renorm"]))
    fig, axes = plt.subplots(1, len(renorms), figsize=(4.6 * len(renorms), 3.5), squeeze=False, sharey=True)
    for ax, rn in zip(axes[0], renorms):
        r = s[s["renorm"] == rn]
        ind = r[r["kind"] == "independent"]
        for (matcher, regime), c in ind.groupby(["matcher", "regime"], sort=False):
            style = method_style(matcher)
            label = (f"{method_label(matcher)}, {regime}" if matcher != "naive" else "no matching")
            ax.errorbar(c["n"], c["accuracy_mean"], yerr=c["accuracy_std"].fillna(0), color=style["color"],
                        linestyle=REGIME_LINES.get(regime, "-"), marker=REGIME_MARKERS.get(regime, "."), ms=4,
                        capsize=2, lw=1.2, label=label)
        sp = r[(r["kind"] == "spawned")]
        if not sp.empty:
            ax.errorbar(sp["n"], sp["accuracy_mean"], yerr=sp["accuracy_std"].fillna(0), lw=1.4, capsize=2,
                        label="spawned children, no matching", **SPAWNED_STYLE)
            ax.plot(sp["n"], sp["endpoints_accuracy_mean"], color=SPAWNED_STYLE["color"], lw=0.9, ls=(0, (1, 1)),
                    label="mean of the n children")
        ends = ind[ind["matcher"] == "naive"]
        ax.plot(ends["n"], ends["endpoints_accuracy_mean"], color="black", lw=1.0, marker="_", ms=8,
                label="mean of the n endpoints")
        ax.set_xticks(sorted(s["n"].unique()))
        ax.set_xlabel("models merged (n)")
        ax.set_title("plain average" if rn == "none" else f"+ {rn}")
    axes[0, 0].set_ylabel("test accuracy of the merge")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize="x-small")
    fig.suptitle(f"{experiment_label(experiment)}: mean ± sd over groups")
    fig.tight_layout(rect=(0, 0.05 + 0.035 * ((len(labels) + 2) // 3), 1, 1))
    return fig


def plot_merge_convergence(trace: pd.DataFrame):
    """Iterative matching's objective as the weighted mean cosine similarity of every two aligned
    models (``cosine`` of :attr:`lmc_utils.studies.merge_many.Result.trace`) against its passes, one panel per experiment and
    matcher, one line per group and n (colour: n); a hollow marker at the last pass of a run
    stopped by the cap, a filled one where a pass changed no permutation."""
    import numpy as np

    panels = list(dict.fromkeys(zip(trace["experiment"], trace["matcher"])))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.4 * max(len(panels), 1), 3.2), squeeze=False)
    ns = sorted(trace["n"].unique()) if len(trace) else []
    colours = dict(zip(ns, plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(ns), 1)))))
    for ax, (exp, matcher) in zip(axes[0], panels):
        t = trace[(trace["experiment"] == exp) & (trace["matcher"] == matcher)]
        for (g, n), h in t.groupby(["group", "n"], sort=False):
            h = h.sort_values("iteration")
            ax.plot(h["iteration"], h["cosine"], color=colours[n], lw=1.0, alpha=0.8,
                    label=f"n = {n}" if g == t["group"].min() else None)
            last = h.iloc[-1]
            ax.plot(last["iteration"], last["cosine"], "o", color=colours[n], ms=5,
                    mfc=colours[n] if bool(last["converged"]) else "white")
        ax.set_xlabel("pass over the models")
        ax.set_title(f"{experiment_label(exp)}, {method_label(matcher)}", fontsize="small")
        ax.legend(fontsize="x-small")
    axes[0, 0].set_ylabel("mean pairwise cosine similarity")
    fig.tight_layout()
    return fig


VERDICT_MARKERS = {"held": {"marker": "o"}, "did not hold": {"marker": "X"}, "inconclusive": {"marker": "o", "mfc": "white"}}


def plot_claim_vs_width(frame: pd.DataFrame, columns: int = 3, xlabel: str = "width",
                        verdict_of: dict | None = None):
    """One panel per claim (``claim`` of :func:`lmc_utils.studies.regime_ladder.claim_vs_width`):
    the estimate and its 95% interval against width (log scale), one line per rung and subject
    detail (e.g. the method), the claim's threshold dashed; filled circle: the interval lies on the
    claimed side, cross: on the other side, hollow circle: it straddles the threshold.
    ``verdict_of``: ``(claim, rung, detail) -> verdict`` over all widths, added to the line's label."""
    verdict_of = verdict_of or {}
    claims = list(dict.fromkeys(frame["claim"]))
    rows = max(1, -(-len(claims) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.3 * columns, 3.1 * rows), squeeze=False)
    lines = list(dict.fromkeys(zip(frame["rung"], frame["detail"])))
    palette = [c for c in _OKABE_ITO if c != "#F0E442"]  # yellow is unreadable on white
    colours = dict(zip(lines, [palette[k % len(palette)] for k in range(len(lines))]))
    for ax, claim in zip(axes.flat, claims):
        t = frame[frame["claim"] == claim]
        for (rung, detail), g in t.groupby(["rung", "detail"], sort=False):
            g = g.sort_values("width")
            colour = colours[(rung, detail)]
            x = g["width"].to_numpy(dtype=float)
            y = g["estimate"].to_numpy(dtype=float)
            _errorbar(ax, x, g, "estimate", "ci_low", "ci_high", color=colour, lw=1.0,
                      label=experiment_label(rung) + (f" / {detail}" if detail else "")
                      + (f" — all widths: {verdict_of[(claim, rung, detail)]}" if (claim, rung, detail) in verdict_of
                         else ""))
            for xi, yi, v in zip(x, y, g["verdict"]):
                style = VERDICT_MARKERS.get(v, {"marker": "o"})
                ax.plot([xi], [yi], linestyle="none", color=colour, ms=6, mfc=style.get("mfc", colour),
                        marker=style["marker"])
        ax.axhline(float(t["threshold"].iloc[0]), color="0.4", ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(claim, fontsize="small")
        ax.set_xlabel(xlabel)
        ax.legend(fontsize="xx-small")
    for ax in list(axes.flat)[len(claims):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("estimate, 95% interval")
    fig.tight_layout()
    return fig
