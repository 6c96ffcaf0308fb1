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
