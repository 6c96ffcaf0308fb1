"""The figures of notebook 09 (width clusters)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .layout import legend_below, panels
from .style import method_label, experiment_label, method_style


def plot_width_barriers(pairs: pd.DataFrame, column: str = "loss_barrier", ylabel: str = "test loss barrier (nats)"):
    """One panel per experiment: ``column`` (per pair) against hidden width for each method, the mean
    over pairs with a 95% t interval as error bars, on a log-2 width axis."""
    import numpy as np
    from scipy import stats

    names = list(dict.fromkeys(pairs["experiment"]))
    fig, axes = panels(len(names), 4.2, 3.2)
    for ax, name in zip(axes, names):
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
    fig.tight_layout()
    legend_below(fig, axes)
    return fig


def plot_midpoints(pairs: pd.DataFrame):
    """Per experiment: the endpoints' mean test accuracy and the naive and weight-matched midpoints'
    (mean over pairs) against width ("worse, but not by much")."""
    names = list(dict.fromkeys(pairs["experiment"]))
    fig, axes = panels(len(names), 4.2, 3.2)
    for ax, name in zip(axes, names):
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
    fig.tight_layout()
    legend_below(fig, axes)
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
            ax_d.set_ylabel("networks (clustered)")
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
