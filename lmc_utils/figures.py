"""One plotting style and one writer for figures (PNG + PDF) and tables (CSV + Markdown).

Output goes to ``figures/<profile>/`` (see :func:`lmc_utils.paths.figures_dir`); call
:func:`setup` once with the notebook's profile, which also chooses the experiment labels of
figure titles (:func:`experiment_label`). Files are written atomically and without
timestamps, so re-running a notebook with the same results rewrites identical files.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import matplotlib
import pandas as pd

from .atomic import atomic_path, write_text
from .paths import figures_dir

_state = {"profile": None}

# One name and one look per method, for every figure: the Okabe-Ito colour-blind-safe palette, and
# a line style and marker each, so that no two methods differ by colour alone.
METHOD_LABELS = {
    "naive": "no permutation", "weight": "weight matching", "activation": "activation matching",
    "ste": "straight-through estimator", "random": "random permutation", "sinkhorn": "Sinkhorn matching",
    "none": "no re-normalisation", "reset": "RESET", "repair": "REPAIR", "rescale": "RESCALE",
    "reshift": "RESHIFT", "seq_repair": "sequential REPAIR",
    "global_magnitude": "global magnitude", "layer_magnitude": "layer-wise magnitude", "fisher": "diagonal Fisher",
}
_OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
METHOD_STYLES = {
    "naive": {"color": "#7f7f7f", "linestyle": ":", "marker": "x"},
    "weight": {"color": _OKABE_ITO[0], "linestyle": "-", "marker": "o"},
    "activation": {"color": _OKABE_ITO[1], "linestyle": "--", "marker": "s"},
    "ste": {"color": _OKABE_ITO[3], "linestyle": "-.", "marker": "^"},
    "random": {"color": _OKABE_ITO[7], "linestyle": (0, (1, 3)), "marker": "d"},
    "sinkhorn": {"color": _OKABE_ITO[4], "linestyle": (0, (5, 2, 1, 2)), "marker": "v"},
    "none": {"color": "#7f7f7f", "linestyle": ":", "marker": "x"},
    "reset": {"color": _OKABE_ITO[2], "linestyle": "-", "marker": "o"},
    "repair": {"color": _OKABE_ITO[0], "linestyle": "-", "marker": "o"},
    "rescale": {"color": _OKABE_ITO[1], "linestyle": "--", "marker": "s"},
    "reshift": {"color": _OKABE_ITO[3], "linestyle": "-.", "marker": "^"},
    "seq_repair": {"color": _OKABE_ITO[5], "linestyle": (0, (3, 1, 1, 1)), "marker": "D"},
    "global_magnitude": {"color": _OKABE_ITO[0], "linestyle": "-", "marker": "o"},
    "layer_magnitude": {"color": _OKABE_ITO[1], "linestyle": "--", "marker": "s"},
    "fisher": {"color": _OKABE_ITO[3], "linestyle": "-.", "marker": "^"},
}


def method_label(method: str) -> str:
    """The display name of a method (the key itself when it has none)."""
    return METHOD_LABELS.get(method, method)


@lru_cache(maxsize=None)
def _profile_labels(profile: str) -> dict[str, str]:
    """The ``labels`` section of a profile, read once per profile (empty for a name that is not a profile)."""
    from . import profiles

    return profiles.labels(profile) if profile in profiles.PROFILES else {}


def experiment_label(name: str) -> str:
    """The display label of experiment ``name`` for figure titles, e.g. ``"plain MLP 6×128,
    FashionMNIST"`` for ``mlp_plain``: from the ``labels`` section of the profile chosen by
    :func:`setup` (``params/<profile>.yaml``, read once per profile). The name itself when that
    profile has no label for it, or when :func:`setup` has not been called. File names of saved
    figures keep the code names."""
    profile = _state["profile"]
    return _profile_labels(profile).get(name, name) if profile is not None else name


def method_style(method: str) -> dict:
    """Matplotlib keyword arguments (colour, line style, marker) for a method's line."""
    return dict(METHOD_STYLES.get(method, {"color": _OKABE_ITO[6], "linestyle": "-", "marker": "."}))

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
    out = output_dir(profile)
    frame = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
    csv = out / f"{name}.csv"
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    md = write_text(out / f"{name}.md", to_markdown(frame))
    return [csv, md]


def save_verdicts(frame: pd.DataFrame, notebook: str, profile: str | None = None) -> list[Path]:
    """Write a notebook's verdict rows (:func:`lmc_utils.verdicts.table`) as
    ``<NN>_verdicts.csv`` (every column, full precision) and ``<NN>_verdicts.md`` (the
    :data:`lmc_utils.verdicts.COLUMNS`, 3 significant digits). ``notebook`` is the file stem or
    its number ``NN``."""
    from .verdicts import COLUMNS

    number = notebook.split("_", 1)[0]
    out = output_dir(profile)
    csv = out / f"{number}_verdicts.csv"
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    md = write_text(out / f"{number}_verdicts.md", to_markdown(frame[COLUMNS], floatfmt=".3g"))
    return [csv, md]


def publish_verdicts(frame: pd.DataFrame, criteria, notebook: str, profile: str | None = None) -> str:
    """The verdict cell of every notebook: check that ``frame`` judges exactly the declared
    ``criteria``, save it (:func:`save_verdicts`) and return its prose (:func:`lmc_utils.verdicts.render`)."""
    from .verdicts import check_declared, render

    check_declared(frame, criteria)
    save_verdicts(frame, notebook, profile)
    return render(frame, criteria)
