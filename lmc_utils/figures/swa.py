"""The figures of notebook 06 (swa)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def plot_swa_barriers(samples: pd.DataFrame, independent: pd.DataFrame, threshold: float | None = None,
                      floor: float = 1e-6):
    """Naive test loss barriers against hidden width on one log scale: every pair of SWA samples
    (small dots, jittered, one colour) and every independent pair of runs (large squares), with each
    group's median as a line. Barriers below ``floor`` (zero up to rounding) are drawn at ``floor``
    and counted in the legend; ``threshold``: a dashed reference line (the declared criterion)."""
    import numpy as np

    colors = {"samples": "#0072B2", "independent": "#D55E00"}  # Okabe-Ito blue / vermillion
    widths = sorted(set(samples["width"]) | set(independent["width"]))
    pos = {w: k for k, w in enumerate(widths)}
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for kind, frame, marker, size in (("samples", samples, "o", 6), ("independent", independent, "s", 36)):
        if frame.empty:
            continue
        x = frame["width"].map(pos).to_numpy(float)
        y = frame["loss_barrier"].to_numpy(float)
        below = int((y < floor).sum())
        jitter = rng.uniform(-0.15, 0.15, len(x)) if kind == "samples" else rng.uniform(-0.05, 0.05, len(x))
        label = ("pairs of SWA samples within a run" if kind == "samples" else "independent runs (final iterates)")
        label += f"; {below} of {len(y)} below {floor:g}" if below else ""
        ax.scatter(x + jitter + (0.25 if kind == "independent" else 0), np.maximum(y, floor), s=size, marker=marker,
                   color=colors[kind], alpha=0.35 if kind == "samples" else 0.9, edgecolors="none", label=label)
        med = frame.groupby("width")["loss_barrier"].median()
        ax.plot([pos[w] + (0.25 if kind == "independent" else 0) for w in med.index], np.maximum(med.to_numpy(), floor),
                color=colors[kind], linestyle="-" if kind == "samples" else "--", linewidth=1.2)
    if threshold is not None:
        ax.axhline(threshold, color="#000000", linestyle=":", linewidth=1, label=f"criterion: {threshold:g} nats")
    ax.set_yscale("log")
    ax.set_xticks(range(len(widths)), [str(w) for w in widths])
    ax.set_xlabel("hidden width")
    ax.set_ylabel("naive test loss barrier (nats, log)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, fontsize=8)
    return fig


def plot_identity_share(summary: pd.DataFrame):
    """Share of units weight matching leaves in place, between SWA samples and between
    independent runs, against hidden width."""
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    ax.plot(summary["width"], summary["swa_pairs_identity_share"], "o-", color="#0072B2", label="between SWA samples")
    ax.plot(summary["width"], summary["independent_identity_share"], "s--", color="#D55E00",
            label="between independent runs")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("hidden width")
    ax.set_ylabel("units left in place by WM")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    return fig
