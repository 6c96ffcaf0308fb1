"""The figures of notebook 01 (distance taylor)."""

from __future__ import annotations

import pandas as pd

from .layout import first_column, panels as grid
from .style import method_label, method_style, SPAWNED_STYLE


def plot_taylor_curves(curves: pd.DataFrame, title: str = ""):
    """Actual loss along the line (markers) and its second-order Taylor model around the
    midpoint (line), one panel per kind of pair and alignment method."""
    panels = list(dict.fromkeys(zip(curves["kind"], curves["method"])))
    fig, axes = grid(len(panels), 3.3, 3.0)
    for ax, (kind, method) in zip(axes, panels):
        c = curves[(curves["kind"] == kind) & (curves["method"] == method)]
        actual, quad = c[c["source"] == "actual"], c[c["source"] == "taylor"]
        style = method_style(method) if kind == "independent" else SPAWNED_STYLE
        ax.plot(actual["lam"], actual["loss"], linestyle="none", marker=style["marker"], color=style["color"],
                label="actual loss")
        ax.plot(quad["lam"], quad["loss"], "-", color=style["color"], alpha=0.7, label="2nd-order Taylor (midpoint)")
        ax.set_title(f"{kind}, {method_label(method)}" if kind == "independent" else f"{kind} pair")
        ax.set_xlabel(r"$\lambda$")
    for ax in first_column(axes):
        ax.set_ylabel("train loss")
    axes[0].legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
