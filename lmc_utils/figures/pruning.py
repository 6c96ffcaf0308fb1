"""The figures of notebook 05 (pruning)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .layout import first_column, legend_below, panels
from .style import method_label, experiment_label, method_style


def plot_pruning(table: pd.DataFrame, judge_sparsity: float | None = None):
    """Test accuracy against sparsity, one panel per experiment: each method (its colour and
    marker) as pruned (dashed) and after re-normalisation (solid); the unpruned accuracy as a grey
    line and the judged sparsity as a dotted vertical line. ``table``: rows of
    ``studies.pruning.pruning_table``."""
    exps = list(dict.fromkeys(table["experiment"]))
    fig, axes = panels(len(exps), 4.0, 3.2)
    for ax, exp in zip(axes, exps):
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
    fig.tight_layout()
    legend_below(fig, axes)
    return fig


def plot_samples(samples: pd.DataFrame):
    """Accuracy after re-normalisation from n examples against sparsity, one panel per
    experiment and magnitude method. ``samples``: ``studies.pruning.samples_table`` (columns
    ``none``, the sample sizes, ``all``)."""
    keys = list(dict.fromkeys(zip(samples["experiment"], samples["method"])))
    fig, axes = panels(len(keys), 3.3, 3.0)
    labels = [c for c in samples.columns if c not in ("experiment", "method", "sparsity")]
    sized = [c for c in labels if c != "none"]
    cmap = plt.get_cmap("viridis")
    for ax, (exp, method) in zip(axes, keys):
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
    for ax in first_column(axes):
        ax.set_ylabel("test accuracy")
    fig.tight_layout()
    legend_below(fig, axes)
    return fig


def plot_scale(scale: pd.DataFrame):
    """Per experiment: pre-activation std of each hidden layer relative to the unpruned model
    against sparsity (global magnitude), as pruned (dashed) and re-normalised (solid); means over
    the models in ``scale`` (rows of ``studies.pruning.Result.scale``)."""
    exps = list(dict.fromkeys(scale["experiment"]))
    fig, axes = panels(len(exps), 3.8, 3.0)
    s = scale.groupby(["experiment", "renorm", "layer", "sparsity"])["std_ratio"].mean().reset_index()
    for ax, exp in zip(axes, exps):
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
    for ax in first_column(axes):
        ax.set_ylabel("pre-activation std / unpruned")
    fig.tight_layout()
    legend_below(fig, axes)
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
