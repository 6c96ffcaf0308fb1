"""The figures of notebook 03 (three models)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .layout import legend_below
from .style import method_label, method_style, STE_START_LABELS


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
    colour and marker (:func:`lmc_utils.figures.method_style`). The unmatched models' barriers
    (``naive``) are an order of magnitude larger, so they have panels of their own (left), and the
    matching methods share the right ones."""
    import numpy as np

    pairs = list(dict.fromkeys(summary["pair"]))
    methods = list(dict.fromkeys(summary["method"]))
    groups = [g for g in ([m for m in methods if m == "naive"], [m for m in methods if m != "naive"]) if g]
    fig, axes = plt.subplots(2, len(groups), figsize=(4.6 * len(groups), 6.0), squeeze=False,
                             gridspec_kw={"width_ratios": [len(g) + 1 for g in groups]})
    for row, (metric, scale, label) in enumerate((("loss_barrier", 1.0, "loss barrier (nats)"),
                                                  ("accuracy_barrier", 100.0, "accuracy barrier (points)"))):
        for col, group in enumerate(groups):
            ax = axes[row, col]
            step = 0.7 / max(len(group) - 1, 1)
            for i, m in enumerate(group):
                s = summary[summary["method"] == m].set_index("pair").reindex(pairs)
                style = method_style(m)
                ax.errorbar(np.arange(len(pairs)) + (i - (len(group) - 1) / 2) * step, scale * s[f"{metric}_mean"],
                            yerr=scale * s[f"{metric}_std"].fillna(0), fmt=style["marker"], color=style["color"],
                            ms=6, capsize=3, label=method_label(m))
            ax.axhline(0, color="0.5", lw=0.8)
            ax.set_xticks(np.arange(len(pairs)), pairs, fontsize="small")
            ax.set_ylabel(label)
            if row == 0:
                ax.set_title("no matching" if group == ["naive"] else "after matching", fontsize="small")
    fig.suptitle((f"{title}: " if title else "") + "mean ± sd over triples")
    fig.tight_layout()
    legend_below(fig, list(axes.flat), ncol=len(methods))
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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, list(axes))
    return fig


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
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if len(runs) <= 6:
        legend_below(fig, [ax], ncol=2)
    return fig


def plot_ste_budgets(summary: pd.DataFrame, title: str = "", paper_agreement: tuple[float, float] | None = None):
    """STE against its training length (``summary``: :func:`lmc_utils.studies.three_models.ste_budget_summary`,
    one experiment): four panels against the STE steps taken (log axis; the square is the runs' own
    result, where they stopped: by a patience rule or at their step cap), mean and a band of one standard deviation over triples: the share of
    hidden units on which STE agrees with weight matching (``paper_agreement``: the range Ito et al.
    report, shaded), the accuracy barriers of the matched edges (a-pi_b(b), a-pi_c(c)) and of the far
    edge (pi_b(b)-pi_c(c)), and the accuracy of the three-model average."""
    import numpy as np

    panels = [("agreement", "units where STE agrees\nwith WM (%)"),
              ("near_accuracy_barrier", "accuracy barrier, a to each\nmatched model (points)"),
              ("far_accuracy_barrier", "accuracy barrier between\nthe two matched models (points)"),
              ("merged_accuracy", "accuracy of the average\nof the three models (%)")]
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 5.0), sharex=True)
    x = summary["steps_mean"].to_numpy()
    for ax, (col, label) in zip(axes.flat, panels):  # every panel in percent (points)
        m = 100 * summary[f"{col}_mean"].to_numpy()
        sd = 100 * np.nan_to_num(summary[f"{col}_std"].to_numpy())
        ax.fill_between(x, m - sd, m + sd, color="C0", alpha=0.2, lw=0)
        ax.plot(x, m, "o-", color="C0", ms=4)
        conv = summary["budget"].to_numpy() == "converged"
        ax.plot(x[conv], m[conv], "s", color="C3", ms=6)
        if col == "agreement" and paper_agreement is not None:
            ax.axhspan(100 * paper_agreement[0], 100 * paper_agreement[1], color="0.6", alpha=0.4, lw=0)
        ax.set_ylabel(label)
        ax.set_xscale("log")
    for ax in axes[1]:
        ax.set_xlabel("STE steps (square: where the runs stopped)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
