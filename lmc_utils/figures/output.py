"""The writers of figures (PNG + PDF) and tables (CSV + Markdown, verdict tables too).

Output goes to ``figures/<profile>/`` (see :func:`lmc_utils.core.paths.figures_dir`) for the profile
:func:`lmc_utils.figures.style.setup` chose. Files are written atomically and without
timestamps, so re-running a notebook with the same results rewrites identical files.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd

from ..core import settings
from ..core.atomic import atomic_path, write_text
from ..core.paths import figures_dir

from . import readability
from .style import _profile_labels, _state


def output_dir(profile: str | None = None) -> Path:
    profile = profile or _state["profile"]
    if profile is None:
        raise RuntimeError("call lmc_utils.figures.setup(profile) first (or pass profile=...)")
    return figures_dir(profile)


def _output_stem(name: str, profile: str | None) -> Path:
    """``<output folder>/<name>``, the stem of a figure's or table's files: ``name`` is a file name, so a
    path separator in it (an experiment named ``rung / width w``) is an error, not a sub-folder."""
    if "/" in name or "\\" in name:
        raise ValueError(f"a figure or table name is a file name, without path separators: {name!r}")
    return output_dir(profile) / name


def save_figure(fig: "matplotlib.figure.Figure", name: str, profile: str | None = None) -> list[Path]:
    """Write ``<name>.png`` and ``<name>.pdf``; returns the paths. The figure is checked first
    (:func:`lmc_utils.figures.readability.check`: a warning per problem, an error with
    ``LMC_STRICT_FIGURES``). A plan run (:mod:`lmc_utils.run.plan`), whose numbers mean nothing,
    renders no files (none: it only records the models asked for)."""
    if settings.planning() is not None:
        return []
    if not settings.dry_run():  # a dry run's figures have a point or two: nothing to read
        readability.check(fig, name, strict=settings.text("LMC_STRICT_FIGURES") not in ("", "0"))
    stem = _output_stem(name, profile)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = stem.with_name(f"{stem.name}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, metadata=meta)
        paths.append(path)
    return paths


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency). Values that are zero up to
    floating-point rounding (below ``1e-12`` times the column's largest magnitude, or 1) print as
    ``0`` instead of e.g. ``5.551e-17``; the CSV beside it keeps full precision."""
    frame = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
    scales = {}
    for col in frame.columns:
        numeric = pd.to_numeric(frame[col], errors="coerce") if frame[col].dtype == object else frame[col]
        if pd.api.types.is_float_dtype(numeric):
            finite = numeric[numeric.abs() < float("inf")].abs()
            scales[col] = max(1.0, float(finite.max())) if len(finite.dropna()) else 1.0

    def cell(col, v) -> str:
        if isinstance(v, float):
            if v == v and abs(v) < 1e-12 * scales.get(col, 1.0):
                return "0"
            return format(v, floatfmt)
        return str(v).replace("|", "\\|")  # a literal | would end the cell

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    sep = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(c, v) for c, v in zip(frame.columns, row)) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, sep, *rows]) + "\n"


def save_table(df: pd.DataFrame, name: str, profile: str | None = None) -> list[Path]:
    """Write ``<name>.csv`` and ``<name>.md``; returns the paths."""
    stem = _output_stem(name, profile)
    frame = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
    csv = stem.with_name(f"{stem.name}.csv")
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    md = write_text(stem.with_name(f"{stem.name}.md"), to_markdown(frame))
    return [csv, md]


def save_verdicts(frame: pd.DataFrame, notebook: str, profile: str | None = None) -> list[Path]:
    """Write a notebook's verdict rows (:func:`lmc_utils.verdicts.table`) as
    ``<NN>_verdicts.csv`` (every column, full precision) and ``<NN>_verdicts.md`` (the
    :data:`lmc_utils.verdicts.COLUMNS`, then the models' quality where present, 3 significant digits).
    ``notebook`` is the file stem or its number ``NN``."""
    from ..claims.quality import QUALITY_COLUMNS
    from ..claims.verdicts import COLUMNS

    number = notebook.split("_", 1)[0]
    out = output_dir(profile)
    csv = out / f"{number}_verdicts.csv"
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    shown = COLUMNS + [c for c in QUALITY_COLUMNS[:3] if c in frame]
    md = write_text(out / f"{number}_verdicts.md", to_markdown(frame[shown], floatfmt=".3g"))
    return [csv, md]


def publish_verdicts(frame: pd.DataFrame, criteria, notebook: str, profile: str | None = None) -> str:
    """The verdict cell of every notebook: check that ``frame`` judges exactly the declared
    ``criteria``, give each row its models' quality (:func:`lmc_utils.claims.quality.attach`: the
    test accuracies the notebook's studies recorded against their declared floors), save it
    (:func:`save_verdicts`) with the models' quality table ``<NN>_models`` and return its prose
    (:func:`lmc_utils.verdicts.render`)."""
    from ..claims import quality
    from ..claims.verdicts import check_declared, conclusion, render

    check_declared(frame, criteria)
    frame = quality.attach(frame)
    save_verdicts(frame, notebook, profile)
    number = notebook.split("_", 1)[0]
    models = quality.summary()
    save_table(models, f"{number}_models", profile)
    closing = conclusion(frame, criteria, _profile_labels(profile or _state["profile"]))
    return models_markdown(models) + render(frame, criteria) + (f"\n\n{closing}" if closing else "")


def models_markdown(models: pd.DataFrame) -> str:
    """The models behind a notebook's verdicts against their declared floors, as a short Markdown table
    (nothing when no model was recorded)."""
    from ..claims.quality import APART

    if models.empty:
        return ""
    pct = lambda x: "" if x != x else f"{100 * x:.1f}%"  # noqa: E731
    rows = ["| models | test accuracy (lowest) | floor | status |", "|---|---|---|---|"]
    for r in models.itertuples(index=False):
        name = f"{r.experiment} / {r.arm}" if r.arm else r.experiment
        rows.append(f"| {name} ({r.models}) | {pct(r.test_accuracy)} ({pct(r.lowest)}) | {pct(r.floor)} | {r.status} |")
    below = int(models["status"].isin(APART).sum())
    lead = ("**The models behind these verdicts**, against the test accuracy declared for them before any result "
            "(`quality` in `params/<profile>.yaml`): "
            + (f"{below} of {len(models)} below their floor; the verdicts on them are counted apart."
               if below else "every one at its floor."))
    return lead + "\n\n" + "\n".join(rows) + "\n\n"
