"""The paper index: every numbered figure and table of the three works, and where it is reproduced.

``params/papers.yaml``'s ``index`` lists each figure and table the extracts mention (and each
experiment slide of the talk): what it shows, its setting, and either where the companion
reproduces it (notebook, section, files under ``figures/cpu/``, criteria, scale) or why not (one of
:data:`REASONS`). :func:`load_index` checks it against the notebooks, the criteria and the files;
:func:`index_markdown` renders ``figures/<profile>/paper_index.md`` (``make claims``), linked from
the README and rendered on the site.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..core.atomic import write_text
from ..core.paths import notebooks_dir, params_dir, project_root
from .glance import PAPERS_FILE, all_criteria
from .verdicts import CriteriaError, md_cell as _cell

FILE = "paper_index.md"
# Why an item is not reproduced: only data or hardware the cpu profile lacks (every item a CPU can
# reproduce has a stand-in since issue #40), or an extract that does not say what the figure shows.
REASONS = ("needs CIFAR-10", "needs CIFAR-100", "needs ImageNet", "needs a GPU", "content not in the extract")
ENTRY_KEYS = {"id", "work", "number", "shows", "numbers", "setting", "extract", "coverage", "reproduced_by",
              "not_reproduced", "see", "paper_profile", "note", "uncertain", "mapping"}
PLACE_KEYS = {"notebook", "section", "files", "claims", "scale", "bench"}
WORK_TITLES = {"ito2025": "Ito et al., ICLR 2025", "qu_horvath2024": "Qu & Horvath, ICML 2024",
               "talk": "The talk: LMC up to permutation of hidden neurons"}
COMPANION_FILES = "figures/cpu/"  # the index names the committed cpu profile's files


def reason_of(entry: Mapping[str, Any]) -> str | None:
    """The entry's reason for not being reproduced, reduced to one of :data:`REASONS` (``None`` when
    it is reproduced)."""
    text = entry.get("not_reproduced")
    if not text:
        return "content not in the extract" if entry.get("mapping") == "unknown" else None
    return next((r for r in sorted(REASONS, key=len, reverse=True) if str(text).startswith(r)), str(text))


def load_index(path: Path | None = None, criteria: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The ``index`` of ``params/papers.yaml``, checked: ids unique, works known, each entry either
    reproduced (places naming existing notebooks and declared criteria) or not, with a reason of
    :data:`REASONS`. Files are checked by :func:`missing_files`."""
    path = path or params_dir() / PAPERS_FILE
    with open(path, encoding="utf-8") as f:
        entries = (yaml.safe_load(f) or {}).get("index") or []
    notebooks = {p.stem for p in notebooks_dir().glob("[0-9][0-9]_*.py")}
    seen = set()
    for e in entries:
        where = f"{path}: index entry {e.get('id')!r}"
        unknown = sorted(set(e) - ENTRY_KEYS)
        if unknown:
            raise CriteriaError(f"{where}: unknown keys {unknown}")
        if e.get("id") in seen:
            raise CriteriaError(f"{where}: id appears twice")
        seen.add(e.get("id"))
        if e.get("work") not in WORK_TITLES:
            raise CriteriaError(f"{where}: work must be one of {sorted(WORK_TITLES)}")
        places = e.get("reproduced_by") or []
        reason = reason_of(e)
        if bool(places) == bool(reason):
            raise CriteriaError(f"{where}: give either reproduced_by or not_reproduced (with a reason), not both or neither")
        if reason is not None and reason not in REASONS:
            raise CriteriaError(f"{where}: not_reproduced must start with one of {list(REASONS)}, got {reason!r}")
        for p in places:
            bad = sorted(set(p) - PLACE_KEYS)
            if bad:
                raise CriteriaError(f"{where}: reproduced_by has unknown keys {bad}")
            if "bench" in p:
                if not (project_root() / p["bench"]).is_file():
                    raise CriteriaError(f"{where}: bench {p['bench']!r} is not a file of this checkout")
            elif p.get("notebook") not in notebooks:
                raise CriteriaError(f"{where}: notebook {p.get('notebook')!r} is not one of notebooks/")
            if criteria is not None:
                missing = sorted(set(p.get("claims") or ()) - set(criteria))
                if missing:
                    raise CriteriaError(f"{where}: criteria {missing} are not declared in params/criteria.yaml")
    return entries


def missing_files(entries: Sequence[Mapping[str, Any]], root: Path | None = None) -> list[str]:
    """``entry id: path`` for every file an entry names that the checkout lacks."""
    root = root or project_root()
    return [f"{e['id']}: {f}" for e in entries for p in e.get("reproduced_by") or ()
            for f in p.get("files") or () if not (root / f).is_file()]


def counts(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Entries reproduced and not reproduced, by reason."""
    out = {"reproduced": sum(reason_of(e) is None for e in entries)}
    for r in REASONS:
        out[r] = sum(reason_of(e) == r for e in entries)
    return out


def _file_link(path: str, folder: Path, profile: str, root: Path) -> str:
    """A link from the page (in ``folder``) to ``path`` (a ``figures/cpu/`` path), in the profile's
    folder when it has that file; the bare file name when it has not."""
    name = path.removeprefix(COMPANION_FILES)
    target = folder / name if path.startswith(COMPANION_FILES) else root / path
    if not target.is_file():
        return f"`{Path(name).name}`"
    return f"[{Path(name).name}]({Path(os.path.relpath(target, folder)).as_posix()})"


def index_markdown(entries: Sequence[Mapping[str, Any]], profile: str, folder: Path,
                   root: Path | None = None) -> str:
    """The index page: per work, one row per figure or table, with links relative to ``folder``."""
    root = root or project_root()
    c = counts(entries)
    lines = ["# The papers' figures and tables, and where they are reproduced", "",
             "Generated by `python -m lmc_utils.claims` from `params/papers.yaml`; do not edit by hand. Every "
             "numbered figure and table of the three works that the extracts in `../shared/papers/` mention, and "
             "each experiment slide of the talk. *stand-in*: the same quantity measured on a smaller CPU model "
             "(every cpu-profile result is one: MNIST and FashionMNIST networks, not the papers' CIFAR-10 and "
             "ImageNet ones); *partial*: part of it; *prose-only*: a schematic the notebook explains.", "",
             f"**{len(entries)} items**: {c['reproduced']} reproduced at the `{profile}`-profile scale; not reproduced: "
             + ", ".join(f"{v} {k}" for k, v in c.items() if k != "reproduced" and v) + ".", ""]
    notebook_pages = {p.stem: p for p in notebooks_dir().glob("[0-9][0-9]_*.py")}
    for work, title in WORK_TITLES.items():
        rows = [e for e in entries if e["work"] == work]
        if not rows:
            continue
        lines += [f"## {title}", "", "| item | what it shows (setting) | reproduced by | scale, or why not |",
                  "|---|---|---|---|"]
        for e in rows:
            shows = _cell(e.get("shows")) + (f" ({_cell(e.get('setting'))})" if e.get("setting") else "")
            if e.get("numbers"):
                shows += f"; printed: {_cell(e['numbers'])}"
            reason = reason_of(e)
            if reason is None:
                where, scale = [], []
                for p in e["reproduced_by"]:
                    if "bench" in p:
                        bench = root / p["bench"]
                        where.append(f"[{p['bench']}]({Path(os.path.relpath(bench, folder)).as_posix()}) (a benchmark)")
                        scale.append(_cell(p.get("scale")))
                        continue
                    nb = p["notebook"]
                    run_copy = folder / "notebooks" / f"{nb}.ipynb"
                    src = run_copy if run_copy.is_file() else notebook_pages[nb]
                    link = f"[{nb}]({Path(os.path.relpath(src, folder)).as_posix()})"
                    files = ", ".join(_file_link(f, folder, profile, root) for f in p.get("files") or ())
                    where.append(f"{link}, {_cell(p.get('section'))}" + (f": {files}" if files else ""))
                    scale.append(_cell(p.get("scale")))
                cov = e.get("coverage") or "stand-in"
                lines.append(f"| {_cell(e['number'])} | {shows} | {'<br>'.join(where)} | "
                             f"{cov}: {'; '.join(s for s in scale if s)} |")
            else:
                why = _cell(e.get("not_reproduced") or reason)
                if e.get("see"):
                    see = e["see"] if isinstance(e["see"], str) else ", ".join(e["see"])
                    why += f" (the same quantity at CPU scale: {_cell(see)})"
                lines.append(f"| {_cell(e['number'])} | {shows} | not reproduced | {why} |")
        lines.append("")
    return "\n".join(lines)


def write(profile: str, folder: Path) -> Path:
    """``paper_index.md`` of ``profile`` in ``folder``."""
    entries = load_index(criteria=list(all_criteria()))
    return write_text(Path(folder) / FILE, index_markdown(entries, profile, Path(folder)))


__all__ = ["FILE", "REASONS", "counts", "index_markdown", "load_index", "missing_files", "reason_of", "write"]
