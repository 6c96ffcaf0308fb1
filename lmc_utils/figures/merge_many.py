"""The figures of notebook 08 (merge many)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .layout import first_column, panels
from .style import method_label, experiment_label, method_style, SPAWNED_STYLE, REGIME_LINES, REGIME_MARKERS


def plot_merge_many(summary: pd.DataFrame, experiment: str):
    """Accuracy of the merge of n models against n, one panel per re-normalisation (``none`` and
    RESET or REPAIR): one line per matcher (colour, :func:`lmc_utils.figures.method_style`) and
    regime (line style and marker), mean ± sd over groups, next to the plain average without
    matching, the spawned children's plain average (same basin, green) and the mean accuracy of
    the n endpoints (black; dotted green: of the n children). ``summary``:
    :func:`lmc_utils.studies.merge_many.merged_summary`."""
    s = summary[summary["experiment"] == experiment]
    renorms = list(dict.fromkeys(s["renorm"]))
    fig, axes = panels(len(renorms), 4.6, 3.5, sharey=True)
    for ax, rn in zip(axes, renorms):
        r = s[s["renorm"] == rn]
        ind = r[r["kind"] == "independent"]
        for (matcher, regime), c in ind.groupby(["matcher", "regime"], sort=False):
            style = method_style(matcher)
            label = (f"{method_label(matcher)}, {regime}" if matcher != "naive" else "no matching")
            ax.errorbar(c["n"], c["accuracy_mean"], yerr=c["accuracy_std"].fillna(0), color=style["color"],
                        linestyle=REGIME_LINES.get(regime, "-"), marker=REGIME_MARKERS.get(regime, "."), ms=4,
                        capsize=2, lw=1.2, label=label)
        sp = r[(r["kind"] == "spawned")]
        if not sp.empty:
            ax.errorbar(sp["n"], sp["accuracy_mean"], yerr=sp["accuracy_std"].fillna(0), lw=1.4, capsize=2,
                        label="spawned children, no matching", **SPAWNED_STYLE)
            ax.plot(sp["n"], sp["endpoints_accuracy_mean"], color=SPAWNED_STYLE["color"], lw=0.9, ls=(0, (1, 1)),
                    label="mean of the n children")
        ends = ind[ind["matcher"] == "naive"]
        ax.plot(ends["n"], ends["endpoints_accuracy_mean"], color="black", lw=1.0, marker="_", ms=8,
                label="mean of the n endpoints")
        ax.set_xticks(sorted(s["n"].unique()))
        ax.set_xlabel("models merged (n)")
        ax.set_title("plain average" if rn == "none" else f"+ {rn}")
    for ax in first_column(axes):
        ax.set_ylabel("test accuracy of the merge")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize="x-small")
    fig.suptitle(f"{experiment_label(experiment)}: mean ± sd over groups")
    fig.tight_layout(rect=(0, 0.05 + 0.035 * ((len(labels) + 2) // 3), 1, 1))
    return fig


def plot_merge_convergence(trace: pd.DataFrame):
    """Iterative matching's objective as the weighted mean cosine similarity of every two aligned
    models (``cosine`` of :attr:`lmc_utils.studies.merge_many.Result.trace`) against its passes, one panel per experiment and
    matcher, one line per group and n (colour: n); a hollow marker at the last pass of a run
    stopped by the cap, a filled one where a pass changed no permutation."""
    import numpy as np

    keys = list(dict.fromkeys(zip(trace["experiment"], trace["matcher"])))
    fig, axes = panels(len(keys), 4.4, 3.2)
    ns = sorted(trace["n"].unique()) if len(trace) else []
    colours = dict(zip(ns, plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(ns), 1)))))
    for ax, (exp, matcher) in zip(axes, keys):
        t = trace[(trace["experiment"] == exp) & (trace["matcher"] == matcher)]
        for (g, n), h in t.groupby(["group", "n"], sort=False):
            h = h.sort_values("iteration")
            ax.plot(h["iteration"], h["cosine"], color=colours[n], lw=1.0, alpha=0.8,
                    label=f"n = {n}" if g == t["group"].min() else None)
            last = h.iloc[-1]
            ax.plot(last["iteration"], last["cosine"], "o", color=colours[n], ms=5,
                    mfc=colours[n] if bool(last["converged"]) else "white")
        ax.set_xlabel("pass over the models")
        ax.set_title(f"{experiment_label(exp)}, {method_label(matcher)}", fontsize="small")
        ax.legend(fontsize="x-small")
    for ax in first_column(axes):
        ax.set_ylabel("mean pairwise cosine similarity")
    fig.tight_layout()
    return fig
