"""The figures of notebook 07 (same basin)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .layout import _errorbar, legend_below, panels
from .style import method_label, method_style, KIND_LABELS, INIT_LABELS, INIT_COLORS


def plot_same_basin_curves(curves: pd.DataFrame, title: str = "", metric: str = "accuracy"):
    """Test ``metric`` along lambda for each kind of pair (rows: independent, spawned, retrained
    copy) and RESET setting (columns), one line per alignment method (``curves`` from
    :func:`lmc_utils.studies.same_basin.run`, its first pair of each kind)."""
    kinds = list(dict.fromkeys(curves["kind"]))
    resets = list(dict.fromkeys(curves["reset"]))
    fig, axes = plt.subplots(len(kinds), len(resets), figsize=(3.6 * len(resets), 2.5 * len(kinds)),
                             squeeze=False, sharex=True, sharey=True)
    for r, kind in enumerate(kinds):
        for c, reset in enumerate(resets):
            ax = axes[r, c]
            sub = curves[(curves["kind"] == kind) & (curves["reset"] == reset)]
            for method, m in sub.groupby("method", sort=False):
                ax.plot(m["lam"], m[metric], label=method_label(method), **method_style(method))
            ax.set_title(f"{KIND_LABELS.get(kind, kind)}" + ((", RESET" if reset else ", no RESET")
                                                           if len(resets) > 1 else ""), fontsize=9)
            if r == len(kinds) - 1:
                ax.set_xlabel(r"$\lambda$")
        axes[r, 0].set_ylabel(f"test {metric}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_retraining_distance(history: pd.DataFrame, reference: float | None = None, title: str = ""):
    """The retrained copies' L2 distance to the original (weights and BatchNorm statistics) after
    each retraining epoch, from 0 at the start (one line per copy; the learning rate on the right axis), with the mean
    distance between independent pairs after weight matching as a reference line (Qu & Horvath
    2024, Fig. 13)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for pair, h in history.groupby("pair"):
        ax.plot([0, *h["epoch"]], [0.0, *h["l2_from_start"]], "o-", color="#0072B2", alpha=0.7,
                label="retrained copy to original" if pair == history["pair"].min() else None)
    if reference is not None:
        ax.axhline(reference, color="#D55E00", linestyle="--", label="independent pair after WM")
    ax.set_xlabel("retraining epoch")
    ax.set_ylabel("L2 distance (incl. BN statistics)")
    ax.set_ylim(bottom=0)
    lr = ax.twinx()
    first = history[history["pair"] == history["pair"].min()]
    lr.step(first["epoch"], first["lr"], where="mid", color="grey", alpha=0.5)
    lr.set_ylabel("learning rate", color="grey")
    lr.grid(False)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    legend_below(fig, [ax], ncol=2)
    return fig


def plot_lr_barriers(table: pd.DataFrame, reset: bool, title: str = ""):
    """Mean test accuracy barrier after matching against the training learning rate, one line per
    method (``table``: ``07_lr`` of :func:`lmc_utils.studies.same_basin.tables`, one experiment),
    with the degraded largest-rate pairs as open markers; the endpoints' mean accuracy beside."""
    sub = table[(table["reset"] == reset) & (table["method"] != "naive")]
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    for method, m in sub.groupby("method", sort=False):
        style = method_style(method)
        t, d = m[m["variant"] == "trained"], m[m["variant"] == "degraded"]
        axes[0].plot(t["lr"], t["accuracy_barrier"], "o-", color=style["color"], label=method_label(method))
        axes[0].plot(d["lr"], d["accuracy_barrier"], "o", mfc="none", color=style["color"], markersize=9,
                     label=f"{method_label(method)}, degraded")
    ends = sub[sub["method"] == sub["method"].iloc[0]]
    for variant, marker in (("trained", "o-"), ("degraded", "o")):
        e = ends[ends["variant"] == variant]
        axes[1].plot(e["lr"], (e["accuracy_a"] + e["accuracy_b"]) / 2, marker, color="black",
                     mfc="none" if variant == "degraded" else "black", label=f"endpoints ({variant})")
    rates = sorted(set(sub["lr"]))
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(rates, [f"{v:g}" for v in rates])
        ax.minorticks_off()
        ax.set_xlabel("learning rate")
    axes[0].set_ylabel("test accuracy barrier" + (" (RESET)" if reset else ""))
    axes[1].set_ylabel("endpoint test accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, list(axes))
    return fig


def plot_lr_only(table: pd.DataFrame, title: str = ""):
    """The learning-rate-only study of one experiment (``table``: :func:`lmc_utils.studies.same_basin.lr_table`,
    one experiment): test accuracy barrier and test loss barrier after matching, one line per method,
    and the endpoints' test accuracy, against the training learning rate on a log axis; means over
    pairs with 95% t intervals; the declared accuracy floor (column ``floor``) drawn on the endpoints' panel."""
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.3))
    rates = sorted(set(table["lr"]))
    for method, m in table.groupby("method", sort=False):
        m = m.sort_values("lr")
        style = method_style(method)
        for ax, col in zip(axes[:2], ("accuracy_barrier", "loss_barrier")):
            _errorbar(ax, m["lr"], m, col, f"{col}_low", f"{col}_high", fmt="o-", color=style["color"],
                      label=method_label(method))
    first = table[table["method"] == table["method"].iloc[0]].sort_values("lr")
    _errorbar(axes[2], first["lr"], first, "endpoint_accuracy", "endpoint_accuracy_low", "endpoint_accuracy_high",
              fmt="o-", color="black", label="endpoints")
    floor = float(table["floor"].iloc[0]) if "floor" in table else float("nan")
    if floor == floor:  # not NaN
        axes[2].axhline(floor, color="grey", linestyle=":", label=f"declared floor ({floor:.0%})")
    for ax, label in zip(axes, ("test accuracy barrier", "test loss barrier (nats)", "endpoint test accuracy")):
        ax.set_xscale("log")
        ax.set_xticks(rates, [f"{v:g}" for v in rates])
        ax.minorticks_off()
        ax.set_xlabel("peak learning rate")
        ax.set_ylabel(label)
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, list(axes))
    return fig


def plot_weight_decay(table: pd.DataFrame, title: str = "", degraded: pd.DataFrame | None = None):
    """Test accuracy barrier after matching (left) and endpoint test accuracy (right) against the
    training weight decay, one line per method, means over pairs with 95% t intervals (``table``:
    ``07_weight_decay`` of :func:`lmc_utils.studies.implicit_bias.bias_tables`, one experiment). The
    weight decays are evenly spaced (0 has no place on a log axis) and labelled. ``degraded``
    (``07_weight_decay_degraded``, one experiment): the judged weight decay's pairs after their
    degrading epochs as open markers, as the learning-rate figure shows its degraded pairs."""
    values = sorted(set(table["weight_decay"]))
    pos = {v: i for i, v in enumerate(values)}
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0))
    for method, m in table.groupby("method", sort=False):
        style = method_style(method)
        m = m.sort_values("weight_decay")
        x = [pos[v] for v in m["weight_decay"]]
        _errorbar(axes[0], x, m, "accuracy_barrier", "ci_low", "ci_high", fmt="o-", color=style["color"],
                  label=method_label(method))
    first = table[table["method"] == table["method"].iloc[0]].sort_values("weight_decay")
    _errorbar(axes[1], [pos[v] for v in first["weight_decay"]], first, "endpoint_accuracy", "endpoint_ci_low",
              "endpoint_ci_high", fmt="o-", color="black", label="endpoints")
    worse = degraded[degraded["variant"] == "degraded"] if degraded is not None else pd.DataFrame()
    for method, m in worse.groupby("method", sort=False):
        x = [pos[v] + 0.08 for v in m["weight_decay"]]  # beside the trained arm's marker
        _errorbar(axes[0], x, m, "accuracy_barrier", "ci_low", "ci_high", fmt="o", mfc="none", markersize=8,
                  color=method_style(method)["color"], label=f"{method_label(method)}, degraded")
    if len(worse):
        w = worse[worse["method"] == worse["method"].iloc[0]]
        _errorbar(axes[1], [pos[v] + 0.08 for v in w["weight_decay"]], w, "endpoint_accuracy", "endpoint_ci_low",
                  "endpoint_ci_high", fmt="o", mfc="none", markersize=8, color="black", label="endpoints, degraded")
    for ax in axes:
        ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
        ax.set_xlabel("weight decay")
    axes[0].set_ylabel("test accuracy barrier" + (" (RESET)" if bool(table["reset"].any()) else ""))
    axes[1].set_ylabel("endpoint test accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, list(axes))
    return fig


COMPRESSION_AXES = {"parameter magnitude": "parameter magnitude |w| (log scale)",
                    "channel activation": "mean activation per hidden unit (log scale)"}


def plot_weight_decay_compression(hist: pd.DataFrame, title: str = ""):
    """The compression effect of weight decay (Qu & Horvath 2024, Fig. 6 (B), Figs. 69-70): per
    quantity (a panel: every parameter's magnitude; each hidden unit's post-ReLU activation averaged
    over the training examples) the density over a log axis, one line per training weight decay,
    pooled over the models of that weight decay (``hist``:
    :attr:`lmc_utils.studies.implicit_bias.BiasResult.compression_hist` of
    :func:`lmc_utils.studies.implicit_bias.run_bias`, one experiment). Densities are per decade (each
    line integrates to 1 over log10 of the value); values below the first bin (zeros: dead units)
    are counted in it."""
    import numpy as np

    quantities = [q for q in COMPRESSION_AXES if q in set(hist["quantity"])]
    wds = sorted(set(hist["value"]))
    cmap = plt.get_cmap("viridis")
    fig, axes = panels(len(quantities), 3.9, 3.0)
    for ax, q in zip(axes, quantities):
        for k, wd in enumerate(wds):
            h = hist[(hist["quantity"] == q) & (hist["value"] == wd)].sort_values("bin_low")
            width = np.log10(h["bin_high"].to_numpy()) - np.log10(h["bin_low"].to_numpy())
            density = h["count"].to_numpy(dtype=float) / max(1.0, float(h["count"].sum())) / width
            centre = np.sqrt(h["bin_low"].to_numpy() * h["bin_high"].to_numpy())
            ax.plot(centre, density, "-", color=cmap(0.1 + 0.75 * k / max(1, len(wds) - 1)),
                    label=f"weight decay {wd:g}")
        ax.set_xscale("log")
        ax.set_xlabel(COMPRESSION_AXES[q])
        ax.set_ylabel("density (per decade)")
        ax.set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, axes, ncol=min(4, len(wds)))
    return fig


RENORM_LABELS = {"none": "WM midpoint, no correction", "REPAIR": "WM midpoint + REPAIR",
                 "RESCALE": "WM midpoint + RESCALE", "endpoints": "endpoints (mean)"}


def plot_repair_rescale_by_weight_decay(table: pd.DataFrame, title: str = ""):
    """Test accuracy of the weight-matched midpoint against the training weight decay, plain, after
    REPAIR and after RESCALE, with the endpoints' mean for reference (dashed), means over pairs with
    95% t intervals (``table``: ``07_repair_rescale_by_weight_decay`` of
    :func:`lmc_utils.studies.implicit_bias.bias_tables`, one experiment; Qu & Horvath 2024, Fig. 6 (C),
    Fig. 71). The weight decays are evenly spaced (0 has no place on a log axis) and labelled; the
    series sit side by side at each."""
    from .style import variant_style

    values = sorted(set(table["weight_decay"]))
    pos = {v: i for i, v in enumerate(values)}
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    shown = [v for v in RENORM_LABELS if v in set(table["variant"])]
    for j, variant in enumerate(shown):
        t = table[table["variant"] == variant].sort_values("weight_decay")
        dodge = 0.07 * (j - (len(shown) - 1) / 2)  # side by side at each weight decay, so every interval shows
        style = ({"color": "black"} if variant == "endpoints" else
                 {k: v for k, v in variant_style(variant).items() if k in ("color", "linewidth", "alpha")})
        _errorbar(ax, [pos[v] + dodge for v in t["weight_decay"]], t, "accuracy", "ci_low", "ci_high",
                  fmt="o--" if variant == "endpoints" else "o-", label=RENORM_LABELS[variant], **style)
    ax.set_xticks(range(len(values)), [f"{v:g}" for v in values])
    ax.set_xlabel("weight decay")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    legend_below(fig, [ax], ncol=2)
    return fig


def plot_init_comparison(table: pd.DataFrame, history: pd.DataFrame, distances: pd.DataFrame, title: str = ""):
    """The initialisation study of one experiment (tables of
    :func:`lmc_utils.studies.implicit_bias.bias_tables`): the test accuracy barrier after each matching
    method per initialisation with 95% intervals over pairs (``07_init``); each model's L2 distance
    from its initialisation per epoch, mean and 95% band over models (``07_init_history``); and the
    distance between a pair's models at initialisation and after training, without and after weight
    matching (``07_init_distances``)."""
    import numpy as np

    inits = [i for i in INIT_LABELS if i in set(table["init"])]
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = panels(3, 3.9, 3.1)
    width = 0.8 / max(1, len(inits))
    for k, init in enumerate(inits):
        t = table[table["init"] == init].set_index("method").loc[methods].reset_index()
        x = np.arange(len(methods)) + (k - (len(inits) - 1) / 2) * width
        _errorbar(axes[0], x, t, "accuracy_barrier", "ci_low", "ci_high", fmt="o", color=INIT_COLORS[init],
                  label=INIT_LABELS[init])
        h = history[history["init"] == init].sort_values("epoch")
        axes[1].plot([0, *h["epoch"]], [0.0, *h["l2_from_start"]], "o-", color=INIT_COLORS[init],
                     label=INIT_LABELS[init])
        lo = np.nan_to_num(h["ci_low"].to_numpy(dtype=float), neginf=np.nan)
        hi = np.nan_to_num(h["ci_high"].to_numpy(dtype=float), posinf=np.nan)
        axes[1].fill_between(h["epoch"], lo, hi, color=INIT_COLORS[init], alpha=0.2)
        for j, (alignment, ls) in enumerate((("naive", "--"), ("weight", "-"))):
            d = distances[(distances["init"] == init) & (distances["alignment"] == alignment)].set_index("stage")
            stages = [s for s in ("init", "trained") if s in d.index]
            axes[2].plot(range(len(stages)), d.loc[stages, "l2"], "o" + ls, color=INIT_COLORS[init],
                         label=f"{INIT_LABELS[init]}, {method_label(alignment)}")
    axes[0].set_xticks(range(len(methods)), [method_label(m) for m in methods])
    axes[0].set_ylabel("test accuracy barrier after matching")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("L2 distance from initialisation")
    axes[1].xaxis.get_major_locator().set_params(integer=True)
    axes[2].set_xticks([0, 1], ["initialisation", "trained"])
    axes[2].set_ylabel("L2 distance between the pair")
    axes[1].set_ylim(bottom=0)
    axes[2].set_ylim(bottom=0)
    fig.suptitle(title)
    fig.tight_layout()
    legend_below(fig, axes, ncol=2)
    return fig


def plot_lr_pruning(table: pd.DataFrame, renorm_label: str = "RESET", title: str = ""):
    """Test accuracy against sparsity after global magnitude pruning, one colour per training
    learning rate: as pruned (dashed, open markers) and after re-normalisation (solid), means over
    models with 95% t intervals as bands (``table``: ``07_lr_pruning`` of
    :func:`lmc_utils.studies.same_basin.tables`, one experiment)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    rates = sorted(set(table["lr"]))
    cmap = plt.get_cmap("viridis")
    for k, lr in enumerate(rates):
        color = cmap(0.15 + 0.7 * k / max(1, len(rates) - 1))
        for flag, ls, mfc in ((False, "--", "none"), (True, "-", None)):
            t = table[(table["lr"] == lr) & (table["renorm"] == flag)].sort_values("sparsity")
            ax.plot(t["sparsity"], t["accuracy"], ls, marker="o", mfc=mfc or color, color=color,
                    label=f"lr {lr:g}" + (f" + {renorm_label}" if flag else ", pruned"))
            lo = np.nan_to_num(t["ci_low"].to_numpy(dtype=float), neginf=np.nan)
            hi = np.nan_to_num(t["ci_high"].to_numpy(dtype=float), posinf=np.nan)
            ax.fill_between(t["sparsity"], lo, hi, color=color, alpha=0.15)
    ax.set_xlabel("sparsity (share of weights removed)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    legend_below(fig, [ax], ncol=2)
    return fig
