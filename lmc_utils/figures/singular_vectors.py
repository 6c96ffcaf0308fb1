"""The figures of notebook 02 (singular vectors)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from .layout import first_column, legend_below, panels, _line_style, _experiment_prefix
from .style import method_label, experiment_label, method_style


def plot_spectra(spectra: pd.DataFrame, width: int):
    """Singular values against rank for every layer (one panel each) and every model of every
    pair at ``width`` (model A solid, model B dashed); in the output layer, B's spectrum is also
    drawn rescaled by the one fitted constant (dotted)."""
    sub = spectra[spectra["width"] == width]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = panels(len(layers), height=2.9)
    for ax, layer in zip(axes, layers):
        for (pair, model), s in sub[sub["layer"] == layer].groupby(["pair", "model"], sort=False):
            first = pair == sub["pair"].min()
            ax.plot(s["rank"], s["s"], color="C0" if model == "a" else "C1", ls="-" if model == "a" else "--",
                    lw=0.9, alpha=0.7, label=(f"model {model.upper()} of each pair" if first else None))
            if layer == layers[-1] and model == "b":
                ax.plot(s["rank"], s["s_scaled"], color="C2", ls=":", lw=1.1, alpha=0.8,
                        label="B rescaled to A" if first else None)
        ax.set_xlabel("rank")
        ax.set_title(layer + (" (output)" if layer == layers[-1] else ""), fontsize=9)
    for ax in first_column(axes):
        ax.set_ylabel("singular value")
    fig.suptitle(f"{_experiment_prefix(sub)}width {width}: singular values of independently trained models",
                 fontsize=10)
    fig.tight_layout()
    legend_below(fig, axes)
    return fig


def plot_alignment_matrices(matrices: dict, experiment: str, width: int, layer: str, methods: Sequence[str]):
    """``|<u_i^a, u_j^b>|`` (top row) and ``|<v_i^a, v_j^b>|`` (bottom row) over the top ranks for
    each way of aligning B (columns), first pair: a bright diagonal means the singular vectors of
    that rank point the same way. One labelled colour bar for all panels; no grid over the images."""
    fig, axes = plt.subplots(2, len(methods), figsize=(2.5 * len(methods) + 1.2, 5.4), squeeze=False,
                             constrained_layout=True)
    sides = {"u": "left singular vectors u", "v": "right singular vectors v"}
    for col, method in enumerate(methods):
        m = matrices[(experiment, width, method, layer)]
        for row, side in enumerate(sides):
            ax = axes[row, col]
            n = m[side].shape[0]
            im = ax.imshow(m[side].numpy(), vmin=0, vmax=1, cmap="viridis", interpolation="nearest",
                           extent=(0.5, n + 0.5, n + 0.5, 0.5))  # ticks at ranks 1..n
            ax.grid(False)
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(method_label(method), fontsize=9)
            if row == 1:
                ax.set_xlabel("rank j (model B)", fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{sides[side]}\nrank i (model A)", fontsize=8)
    bar = fig.colorbar(im, ax=axes, shrink=0.8)
    bar.set_label(r"$|\langle x_i^A, x_j^B\rangle|$ (x = u or v)")
    fig.suptitle(f"{experiment_label(experiment)}, width {width}, layer {layer}: singular-vector alignment, "
                 f"top {m['u'].shape[0]} ranks", fontsize=10)
    return fig


def plot_diagonal_alignment(diagonal: pd.DataFrame, width: int, side: str = "u", max_rank: int | None = 64):
    """Mean over pairs (and weight-matching group orders) of ``|<u_i^a, u_i^b>|`` (or ``v``)
    against rank ``i``, one panel per layer, one line per method."""
    sub = diagonal[diagonal["width"] == width]
    if max_rank:
        sub = sub[sub["rank"] <= max_rank]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = panels(len(layers), height=2.8, sharey=True)
    for ax, layer in zip(axes, layers):
        m = sub[sub["layer"] == layer].groupby(["method", "rank"], sort=False)[side].mean().reset_index()
        for method, c in m.groupby("method", sort=False):
            ax.plot(c["rank"], c[side], lw=1.2, label=method_label(method), **_line_style(method))
        ax.set_xlabel("singular value rank")
        ax.set_title(layer, fontsize=9)
    for ax in first_column(axes):
        ax.set_ylabel(f"|<{side}_i^a, {side}_i^b>|")
    fig.suptitle(f"{_experiment_prefix(sub)}width {width}: alignment of the i-th "
                 f"{'left' if side == 'u' else 'right'} singular vectors (mean over pairs)", fontsize=10)
    fig.tight_layout()
    legend_below(fig, axes)
    return fig


def plot_top_k_contribution(contribution: pd.DataFrame, width: int):
    """``sum_{i,j<k} s_i^a s_j^b <u_i^a,u_j^b><v_i^a,v_j^b> / (||W_a|| ||W_b||)`` against k (log axis),
    one panel per layer, one line per method (mean over pairs and group orders); the right end
    is the whole inner product."""
    sub = contribution[contribution["width"] == width]
    layers = list(dict.fromkeys(sub["layer"]))
    fig, axes = panels(len(layers), height=2.8, sharey=True)
    for ax, layer in zip(axes, layers):
        m = sub[sub["layer"] == layer].groupby(["method", "k"], sort=True)["contribution"].mean().reset_index()
        for method in dict.fromkeys(sub["method"]):
            c = m[m["method"] == method]
            ax.plot(c["k"], c["contribution"], ms=3, label=method_label(method), **method_style(method))
        ax.set_xscale("log")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("top-k singular pairs")
        ax.set_title(layer, fontsize=9)
    for ax in first_column(axes):
        ax.set_ylabel(r"$\langle W_a, \pi(W_b)\rangle$ from top k / norms")
    fig.suptitle(f"{_experiment_prefix(sub)}width {width}: part of the inner product from the top-k singular pairs",
                 fontsize=10)
    fig.tight_layout()
    legend_below(fig, axes)
    return fig


def plot_input_alignment(inputs: pd.DataFrame, layers: Sequence[str] | None = None):
    """Mean ``|<v_i, z>| / ||z||`` (over all models of a width) against the relative rank
    ``i / r``, one line per width (colour), one panel per layer."""
    layers = list(layers or dict.fromkeys(inputs["layer"]))
    widths = sorted(inputs["width"].unique())
    fig, axes = panels(len(layers), height=2.8)
    for ax, layer in zip(axes, layers):
        sub = inputs[inputs["layer"] == layer]
        for i, width in enumerate(widths):
            c = sub[sub["width"] == width].groupby("rank", sort=True)[["rank_fraction", "input_alignment"]].mean()
            ax.plot(c["rank_fraction"], c["input_alignment"], color=plt.cm.viridis(i / max(1, len(widths) - 1)),
                    lw=1.2, label=f"width {width}")
        ax.set_xscale("log")
        ax.set_xlabel("rank / number of singular values")
        ax.set_title(layer, fontsize=9)
    for ax in first_column(axes):
        ax.set_ylabel(r"mean $|\langle v_i, z\rangle| / \|z\|$")
    fig.tight_layout()
    legend_below(fig, axes)
    return fig


def plot_large_vs_merged(summary: pd.DataFrame):
    """Per width (one experiment's rows of the width summary): share of large singular values
    (mean over hidden layers) and the test loss of the weight-matched and naive midpoints next to
    the endpoints' (means over pairs and group orders)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.0))
    ax1.plot(summary["width"], summary["large_fraction"], marker="o", color="k")
    ax1.set_xlabel("width")
    ax1.set_ylabel("large singular values / width")
    for col, method, label in (("loss_wm_mid", "weight", "midpoint after weight matching"),
                               ("loss_naive_mid", "naive", "midpoint, no permutation")):
        ax2.plot(summary["width"], summary[col], label=label, **method_style(method))
    ax2.plot(summary["width"], summary["loss_endpoints"], marker="o", color="k", label="endpoints (mean)")
    ax2.set_yscale("log")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(summary["width"]), [str(w) for w in summary["width"]])
        ax.xaxis.set_minor_locator(plt.NullLocator())
    ax2.yaxis.set_major_formatter(plt.FormatStrFormatter("%.3g"))
    ax2.yaxis.set_minor_formatter(plt.FormatStrFormatter("%.3g"))
    ax2.tick_params(axis="y", which="minor", labelsize=7)
    ax2.set_xlabel("width")
    ax2.set_ylabel("test loss (log scale)")
    fig.tight_layout()
    legend_below(fig, [ax1, ax2])
    return fig
