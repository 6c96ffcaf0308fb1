"""One plotting style and one writer for figures (PNG + PDF) and tables (CSV + Markdown).

Output goes to ``figures/<profile>/`` (see :func:`lmc_utils.paths.figures_dir`); call
:func:`setup` once with the notebook's profile. Files are written atomically and without
timestamps, so re-running a notebook with the same results rewrites identical files.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd

from .atomic import atomic_path, write_text
from .paths import figures_dir

_state = {"profile": None}

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
}


def setup(profile: str | None = None) -> None:
    """Apply the house matplotlib style; figures and tables then go to ``figures/<profile>/``."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    _state["profile"] = profile


def output_dir(profile: str | None = None) -> Path:
    profile = profile or _state["profile"]
    if profile is None:
        raise RuntimeError("call lmc_utils.figures.setup(profile) first (or pass profile=...)")
    return figures_dir(profile)


def save_figure(fig: "matplotlib.figure.Figure", name: str, profile: str | None = None) -> list[Path]:
    """Write ``<name>.png`` and ``<name>.pdf``; returns the paths."""
    out = output_dir(profile)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = out / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, metadata=meta)
        paths.append(path)
    return paths


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    def cell(v) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    frame = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    sep = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, sep, *rows]) + "\n"


def save_table(df: pd.DataFrame, name: str, profile: str | None = None) -> list[Path]:
    """Write ``<name>.csv`` and ``<name>.md``; returns the paths."""
    out = output_dir(profile)
    frame = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
    csv = out / f"{name}.csv"
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    md = write_text(out / f"{name}.md", to_markdown(frame))
    return [csv, md]
