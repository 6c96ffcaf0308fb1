"""The figures of notebook 10 (regime ladder)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .layout import _errorbar
from .style import _OKABE_ITO, experiment_label, VERDICT_MARKERS


def short_statistic(statistic: str, width: int = 34, lines: int = 2) -> str:
    """A declared statistic cut to an axis label: the part before ``, per`` (the unit), at most
    ``lines`` lines of ``width`` characters (an ellipsis where cut)."""
    import textwrap

    text = statistic.split(", per")[0]
    wrapped = textwrap.wrap(text, width)
    return "\n".join(wrapped[:lines]) + ("…" if len(wrapped) > lines else "")


def plot_claim_vs_width(frame: pd.DataFrame, columns: int = 3, xlabel: str = "width",
                        verdict_of: dict | None = None, criteria: dict | None = None):
    """One panel per claim (``claim`` of :func:`lmc_utils.studies.regime_ladder.claim_vs_width`):
    the estimate and its 95% interval against width (log scale), one line per rung and subject
    detail (e.g. the method), the claim's threshold dashed; filled circle: the interval lies on the
    claimed side, cross: on the other side, hollow circle: it straddles the threshold.
    ``verdict_of``: ``(claim, rung, detail) -> verdict`` over all widths, added to the line's label.
    ``criteria`` (name -> :class:`lmc_utils.verdicts.Criterion`): each panel titled by its claim's
    sentence and its y axis labelled by its statistic (:func:`short_statistic`); without, the claim's
    name in words. Each panel's legend sits under it, off the data."""
    import textwrap

    criteria = criteria or {}
    verdict_of = verdict_of or {}
    claims = list(dict.fromkeys(frame["claim"]))
    rows = max(1, -(-len(claims) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.3 * columns, 4.6 * rows), squeeze=False)
    lines = list(dict.fromkeys(zip(frame["rung"], frame["detail"])))
    palette = [c for c in _OKABE_ITO if c != "#F0E442"]  # yellow is unreadable on white
    colours = dict(zip(lines, [palette[k % len(palette)] for k in range(len(lines))]))
    for ax, claim in zip(axes.flat, claims):
        t = frame[frame["claim"] == claim]
        for (rung, detail), g in t.groupby(["rung", "detail"], sort=False):
            g = g.sort_values("width")
            colour = colours[(rung, detail)]
            x = g["width"].to_numpy(dtype=float)
            y = g["estimate"].to_numpy(dtype=float)
            _errorbar(ax, x, g, "estimate", "ci_low", "ci_high", color=colour, lw=1.0,
                      label=experiment_label(rung) + (f" / {detail}" if detail else "")
                      + (f" — all widths: {verdict_of[(claim, rung, detail)]}" if (claim, rung, detail) in verdict_of
                         else ""))
            for xi, yi, v in zip(x, y, g["verdict"]):
                style = VERDICT_MARKERS.get(v, {"marker": "o"})
                ax.plot([xi], [yi], linestyle="none", color=colour, ms=6, mfc=style.get("mfc", colour),
                        marker=style["marker"])
        ax.axhline(float(t["threshold"].iloc[0]), color="0.4", ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
        c = criteria.get(claim)
        title = c.claim if c is not None else claim.replace("_", " ")
        ax.set_title("\n".join(textwrap.wrap(title, 46)[:3]), fontsize="x-small")
        ax.set_ylabel(short_statistic(c.statistic) if c is not None else "estimate, 95% interval", fontsize="x-small")
        ax.set_xlabel(xlabel)
        ax.legend(fontsize="xx-small", loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    for ax in list(axes.flat)[len(claims):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
