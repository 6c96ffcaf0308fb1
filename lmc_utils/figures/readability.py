"""What can be checked of a figure's readability before it is saved (house style: figures a person can read).

:func:`problems` lists, for a drawn matplotlib figure: a figure more than :data:`MAX_ASPECT` times
wider than tall (or taller than wide), a visible panel with nothing drawn in it, a title or axis
label holding a code identifier (``snake_case``) instead of words, a panel with data but no axis
label, and a legend drawn over data points (a panel's own legend inside its axes, or a figure
legend over any panel). :func:`lmc_utils.figures.save_figure` runs it on every figure: it warns
(:class:`FigureWarning`), and raises (:class:`FigureProblem`) where ``LMC_STRICT_FIGURES`` is set,
as the test suite sets it for every notebook run at the smoke profile.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

MAX_ASPECT = 3.0
MAPS = ("QuadMesh", "QuadContourSet", "ContourSet", "TriContourSet")  # drawn over a plane: axes are its coordinates
CODE_NAME = re.compile(r"(?<![\w$\\{])[a-z][a-z0-9]+(?:_[a-z0-9]{2,})+(?![\w}^])")  # snake_case; not u_i^a, not LaTeX


class FigureWarning(UserWarning):
    """A figure fails a readability check."""


class FigureProblem(ValueError):
    """A figure fails a readability check in strict mode (``LMC_STRICT_FIGURES``)."""


def _points(ax) -> np.ndarray:
    """The data points of a panel in display coordinates: line vertices, scatter offsets, bar tops."""
    pts = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = np.asarray(line.get_xydata(), dtype=float)
        if xy.size and line.get_transform() is not None:
            xy = xy[np.isfinite(xy).all(axis=1)]
            if len(xy):
                pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        offsets = np.asarray(coll.get_offsets(), dtype=float)
        if offsets.ndim == 2 and len(offsets) > 1:
            offsets = offsets[np.isfinite(offsets).all(axis=1)]
            if len(offsets):
                pts.append(coll.get_offset_transform().transform(offsets))
    for patch in ax.patches:
        if patch.get_visible() and hasattr(patch, "get_x") and hasattr(patch, "get_height"):
            x, w, y, h = patch.get_x(), patch.get_width(), patch.get_y(), patch.get_height()
            if all(np.isfinite(v) for v in (x, w, y, h)):
                pts.append(patch.get_transform().transform([(x + w / 2, y + h)]))
    return np.concatenate(pts) if pts else np.empty((0, 2))


def _name(ax) -> str:
    return repr(ax.get_title() or ax.get_ylabel() or "untitled panel")


def _covers(box, pts: np.ndarray) -> int:
    if not len(pts):
        return 0
    inside = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
    return int(inside.sum())


def _span(ax) -> tuple[range, range]:
    """The grid rows and columns a panel spans (one cell for an axes outside a grid)."""
    spec = ax.get_subplotspec()
    if spec is None:
        return range(0, 1), range(0, 1)
    return spec.rowspan, spec.colspan


def _labelled_lines(fig, panels) -> dict[str, set]:
    """Grid columns with an x label and rows with a y label somewhere (a label shared by the panels
    of a column or row), all of them where the figure has a ``supxlabel`` / ``supylabel``."""
    out = {"x": set(), "y": set()}
    for ax in panels:
        rows, cols = _span(ax)
        if ax.get_xlabel():
            out["x"].update(cols)
        if ax.get_ylabel():
            out["y"].update(rows)
    if getattr(fig, "_supxlabel", None) is not None and fig._supxlabel.get_text():
        out["x"].update(range(64))
    if getattr(fig, "_supylabel", None) is not None and fig._supylabel.get_text():
        out["y"].update(range(64))
    return out


def problems(fig) -> list[str]:
    """What fails the checks on ``fig`` (drawn here), one line each; empty when nothing does."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    out = []
    box = fig.get_tightbbox(renderer)
    if box.height > 0 and box.width > 0:
        ratio = max(box.width / box.height, box.height / box.width)
        if ratio > MAX_ASPECT + 0.05:
            out.append(f"the figure is {ratio:.1f}:1 (at most {MAX_ASPECT:g}:1; wrap its panels)")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]
    texts = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    labelled = _labelled_lines(fig, panels)
    for ax in panels:
        pts = _points(ax)
        has_data = len(pts) > 0 or bool(ax.images) or bool(ax.collections)
        if not has_data:
            out.append(f"panel {_name(ax)} is empty")
        elif not (ax.images or any(type(c).__name__ in MAPS for c in ax.collections)):  # a map needs no axis names
            rows, cols = _span(ax)
            named_ticks = any(re.search(r"[A-Za-z]", t.get_text()) for t in ax.get_xticklabels())  # categories
            if not (ax.get_xlabel() or named_ticks or any(c in labelled["x"] for c in cols)):
                out.append(f"panel {_name(ax)} has no x-axis label (nor has any panel of its column)")
            if not (ax.get_ylabel() or any(r in labelled["y"] for r in rows)):
                out.append(f"panel {_name(ax)} has no y-axis label (nor has any panel of its row)")
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            n = _covers(legend.get_window_extent(renderer), pts)
            if n:
                out.append(f"the legend of panel {_name(ax)} is drawn over {n} data point(s)")
    for legend in fig.legends:
        lb = legend.get_window_extent(renderer)
        n = sum(_covers(lb, _points(ax)) for ax in panels)
        if n:
            out.append(f"a figure legend is drawn over {n} data point(s)")
    for text in texts:
        clean = re.sub(r"\$[^$]*\$", "", text or "")
        found = CODE_NAME.findall(clean)
        if found:
            out.append(f"code name(s) {sorted(set(found))} in {text!r}: say it in words")
    return out


def check(fig, name: str, strict: bool = False) -> list[str]:
    """:func:`problems` of ``fig`` saved as ``name``: a :class:`FigureWarning` each, or one
    :class:`FigureProblem` with all of them when ``strict``."""
    found = problems(fig)
    if found and strict:
        raise FigureProblem(f"figure {name}: " + "; ".join(found))
    for p in found:
        warnings.warn(f"figure {name}: {p}", FigureWarning, stacklevel=3)
    return found
