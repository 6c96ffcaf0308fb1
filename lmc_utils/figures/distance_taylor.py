"""The figures of notebook 01 (distance taylor)."""

from __future__ import annotations

import pandas as pd
from matplotlib.ticker import MaxNLocator

from .layout import first_column, legend_below, panels as grid
from .style import experiment_label, method_label, method_style, SPAWNED_STYLE


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


def plot_distance_over_sweeps(sweeps: pd.DataFrame, title: str = ""):
    """The L2 distance after each sweep of weight matching, as a share of the pair's distance before
    matching (sweep 0), one panel per experiment: a faint line per search (pair and group order) over
    the sweeps it ran, and their mean (a search that has stopped keeps its last distance)."""
    names = list(dict.fromkeys(sweeps["experiment"]))
    fig, axes = grid(len(names), 3.8, 3.6, sharey=True)
    color = method_style("weight")["color"]
    for ax, name in zip(axes, names):
        wide = sweeps[sweeps["experiment"] == name].pivot_table(index="sweep", columns=["pair", "order"],
                                                                 values="relative_to_naive", sort=True)
        for k, column in enumerate(wide):
            ax.plot(wide.index, wide[column], "-", color=color, alpha=0.25, linewidth=0.8,
                    label="one pair and group order" if k == 0 else None)
        ax.plot(wide.index, wide.ffill().mean(axis=1), "-o", color=color, linewidth=2, markersize=4,
                label="mean over pairs and group orders")
        ax.set_title(experiment_label(name))
        ax.set_xlabel("weight-matching sweep (0: before)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in first_column(axes):
        ax.set_ylabel("L2 distance relative to before")
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, axes, ncol=1)
    return fig
