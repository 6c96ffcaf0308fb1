"""Panel layouts and drawing helpers shared by several notebooks' plots."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .style import experiment_label, method_style


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


def _errorbar(ax, x, t: pd.DataFrame, column: str, low: str, high: str, **style) -> None:
    """Mean ``column`` with its interval ``[low, high]`` as error bars (infinite bounds drawn as none)."""
    import numpy as np

    y = t[column].to_numpy(dtype=float)
    lo = np.nan_to_num(y - t[low].to_numpy(dtype=float), posinf=0.0, neginf=0.0)
    hi = np.nan_to_num(t[high].to_numpy(dtype=float) - y, posinf=0.0, neginf=0.0)
    ax.errorbar(x, y, yerr=[lo, hi], capsize=3, **style)
