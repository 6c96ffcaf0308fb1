"""Plots shared by the notebooks (style and file output live in :mod:`lmc_utils.figures`)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from .rebasin import METHOD_LABELS

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
