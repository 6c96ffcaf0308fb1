"""The figures of notebook 00 (rebasin basics)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from .style import method_label, method_style, SPLIT_STYLES


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
