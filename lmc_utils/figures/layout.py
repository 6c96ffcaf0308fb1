"""Panel layouts and drawing helpers shared by several notebooks' plots."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .style import experiment_label, method_style


MAX_PANEL_COLUMNS = 6  # per-layer figures wrap after this many panels (ResNet20 has 22 layers)
MAX_ASPECT = 2.7  # a grid of panels is at most this much wider than tall (3:1 with titles and labels)


def panel_columns(n: int, width: float, height: float) -> int:
    """Columns for ``n`` panels of ``width x height``: as many as fit :data:`MAX_PANEL_COLUMNS` and keep the
    grid within :data:`MAX_ASPECT` (wider than tall at most that much), so a row of panels wraps."""
    for cols in range(max(1, min(n, MAX_PANEL_COLUMNS)), 0, -1):
        if cols * width <= MAX_ASPECT * -(-n // cols) * height:
            return cols
    return 1


def panels(n: int, width: float = 3.2, height: float = 2.8, sharey: bool = False,
           sharex: bool = False) -> tuple[plt.Figure, list]:
    """A figure with ``n`` panels of ``width x height`` inches in reading order, wrapped into rows by
    :func:`panel_columns` (unused grid cells hidden); returns the figure and the ``n`` axes."""
    n = max(n, 1)
    cols = panel_columns(n, width, height)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, sharey=sharey,
                             sharex=sharex)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def first_column(axes: list) -> list:
    """The panels that start a row of their grid (where a shared y label goes)."""
    return [ax for ax in axes if ax.get_subplotspec().is_first_col()]


def legend_below(fig: plt.Figure, axes: list, ncol: int = 3, fontsize: str = "x-small") -> None:
    """One legend for every panel, under the grid and outside every panel (the entries of all
    panels, each label once); call after ``tight_layout``, which it makes room for."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab and not lab.startswith("_"):
                seen.setdefault(lab, h)
    if not seen:
        return
    rows = -(-len(seen) // ncol)
    height = fig.get_size_inches()[1]
    room = min(0.45, (0.22 * rows + 0.1) / height)  # inches of legend rows as a share of the figure
    fig.subplots_adjust(bottom=fig.subplotpars.bottom + room)
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=ncol, frameon=False, fontsize=fontsize,
               bbox_to_anchor=(0.5, 0.0))


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


def _errorbar(ax, x, t: pd.DataFrame, column: str, low: str, high: str, **style) -> None:
    """Mean ``column`` with its interval ``[low, high]`` as error bars (infinite bounds drawn as none)."""
    import numpy as np

    y = t[column].to_numpy(dtype=float)
    lo = np.nan_to_num(y - t[low].to_numpy(dtype=float), posinf=0.0, neginf=0.0)
    hi = np.nan_to_num(t[high].to_numpy(dtype=float) - y, posinf=0.0, neginf=0.0)
    ax.errorbar(x, y, yerr=[lo, hi], capsize=3, **style)
