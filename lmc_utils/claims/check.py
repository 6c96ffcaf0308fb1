"""Compare a regenerated figures folder with the committed one: do the conclusions survive?

Exact bits cannot be expected across machines, thread counts or torch builds; verdicts can.
:func:`compare` reads two folders (``figures/<profile>/`` as committed and a fresh run) and
returns a :class:`Report`:

- **changed verdicts** (a failure): a verdict row, keyed by ``notebook, claim, subject`` in the
  ``NN_verdicts.csv`` tables, whose verdict differs; a row or a whole verdict table present on
  one side only is also a failure (it cannot be confirmed). Each change is diagnosed
  (:func:`diagnose`): a *contradiction* (held <-> did not hold) or a *borderline* flip between a
  definite verdict and ``inconclusive``, with how many standard errors the effect lies from the
  threshold and about how many units would decide it;
- **moved estimates** (flagged, not a failure): a verdict row whose estimate moved by more than
  the width ``ci_high - ci_low`` of its committed interval (a wider move than the interval
  allows for suggests more units are needed, even if the verdict stayed);
- **table drift** (informational): for every other ``.csv`` table in both folders, how many
  numeric cells differ and by how much at most (absolute and relative), and any change of shape,
  columns or text cells; tables on one side only are listed.

Figures and Markdown copies of tables are not compared (they follow from the CSVs).
``python -m lmc_utils.run --profile cpu --check`` regenerates into a temporary folder and calls
:func:`compare`; :func:`render` gives the text a person reads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

VERDICTS_PATTERN = re.compile(r"^(\d\d)_verdicts\.csv$")
KEY = ["notebook", "claim", "subject"]
IGNORED = {"provenance.json", "overrides.json", "claims.md"}


@dataclass
class TableDrift:
    """Numeric drift of one non-verdict table between the two folders."""

    name: str
    cells: int = 0  # numeric cells compared
    changed: int = 0  # numeric cells that differ at all
    max_abs: float = 0.0
    max_rel: float = 0.0
    text_changed: int = 0  # non-numeric cells that differ
    note: str = ""  # shape or column mismatch


@dataclass
class Report:
    """Outcome of :func:`compare`; ``failed`` is true when a verdict changed or could not be compared."""

    committed: Path
    fresh: Path
    rows_compared: int = 0
    changed: list[dict] = field(default_factory=list)  # key, old/new verdict and estimates
    missing_rows: list[dict] = field(default_factory=list)  # key, side ("committed"/"fresh") it is missing from
    missing_tables: list[dict] = field(default_factory=list)  # name, side it is missing from
    moved: list[dict] = field(default_factory=list)  # key, old/new estimate, width, shift
    drift: list[TableDrift] = field(default_factory=list)
    only_committed: list[str] = field(default_factory=list)  # other tables
    only_fresh: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.changed or self.missing_rows or self.missing_tables)


def _notebook_numbers(notebooks: Iterable[str] | None) -> set[str] | None:
    if notebooks is None:
        return None
    return {str(n).split("_", 1)[0] for n in notebooks}


def _csvs(folder: Path, numbers: set[str] | None) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    out = {}
    for p in sorted(folder.glob("*.csv")):
        if p.name in IGNORED:
            continue
        if numbers is not None and p.name.split("_", 1)[0] not in numbers:
            continue
        out[p.name] = p
    return out


def read_verdicts(path: Path) -> pd.DataFrame:
    """A verdict table indexed by ``notebook, claim, subject`` (the last of duplicate keys kept)."""
    frame = pd.read_csv(path, dtype={"notebook": str, "claim": str, "subject": str, "verdict": str})
    missing = [c for c in KEY + ["verdict", "estimate", "ci_low", "ci_high"] if c not in frame]
    if missing:
        raise ValueError(f"{path}: verdict table lacks columns {missing}")
    return frame.drop_duplicates(KEY, keep="last").set_index(KEY)


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _compare_verdicts(report: Report, name: str, old: pd.DataFrame, new: pd.DataFrame) -> None:
    for key in old.index.difference(new.index, sort=False):
        report.missing_rows.append({"table": name, "key": key, "missing_from": "fresh",
                                    "verdict": old.loc[key, "verdict"]})
    for key in new.index.difference(old.index, sort=False):
        report.missing_rows.append({"table": name, "key": key, "missing_from": "committed",
                                    "verdict": new.loc[key, "verdict"]})
    for key in old.index.intersection(new.index, sort=False):
        o, n = old.loc[key], new.loc[key]
        report.rows_compared += 1
        est_old, est_new = _float(o["estimate"]), _float(n["estimate"])
        row = {"table": name, "key": key, "old": o["verdict"], "new": n["verdict"], "estimate_old": est_old,
               "estimate_new": est_new, "ci_old": (_float(o["ci_low"]), _float(o["ci_high"])),
               "ci_new": (_float(n["ci_low"]), _float(n["ci_high"]))}
        if o["verdict"] != n["verdict"]:
            row.update(diagnose(row["old"], row["new"], (est_old, est_new), (row["ci_old"], row["ci_new"]),
                                _float(n.get("threshold")), _float(n.get("n"))))
            report.changed.append(row)
        width = row["ci_old"][1] - row["ci_old"][0]
        shift = abs(est_new - est_old)
        if math.isfinite(width) and math.isfinite(shift) and shift > width:
            report.moved.append({**row, "width": width, "shift": shift})
        elif math.isnan(est_old) != math.isnan(est_new):
            report.moved.append({**row, "width": width, "shift": float("nan")})


POWER = 0.8  # the share of reruns that should reach a definite verdict (units_needed)


def diagnose(old: str, new: str, estimates: tuple[float, float], intervals: tuple[tuple[float, float], ...],
             threshold: float, n: float) -> dict:
    """Why a verdict changed between two runs, from their estimates and 95% intervals.

    ``kind``: ``contradiction`` (held <-> did not hold: the runs disagree beyond their intervals)
    or ``borderline`` (a definite verdict <-> inconclusive: the effect sits near the threshold).
    ``se``: the standard error of the estimate, the mean of the two runs' ``width / (2 t)``
    (t quantile at ``n - 1`` degrees of freedom; for a bootstrap interval an approximation);
    ``z``: the distance of the mean estimate from ``threshold`` in those standard errors;
    ``units_needed``: about how many units (pairs, models) would give a definite verdict in
    ``POWER`` of reruns if the effect were the mean estimate (``n (z_0.975 + z_POWER)^2 / z^2``;
    infinite at ``z = 0``). All are NaN when an input is missing."""
    from scipy import stats

    kind = "contradiction" if {old, new} == {"held", "did not hold"} else "borderline"
    out = {"kind": kind, "se": float("nan"), "z": float("nan"), "units_needed": float("nan")}
    values = [*estimates, *(x for ci in intervals for x in ci), threshold, n]
    if not all(math.isfinite(v) for v in values) or n < 2:
        return out
    t = float(stats.t.ppf(0.975, n - 1))
    se = float(np.mean([(hi - lo) / (2 * t) for lo, hi in intervals]))
    if se <= 0:
        return out
    z = abs(float(np.mean(estimates)) - threshold) / se
    need = (float(stats.norm.ppf(0.975)) + float(stats.norm.ppf(POWER))) ** 2
    out.update(se=se, z=z, units_needed=math.inf if z == 0 else n * need / z ** 2)
    return out


def _diagnosis_text(r: dict) -> str:
    if r.get("kind") == "contradiction":
        head = "contradiction: the two runs' intervals lie on opposite sides of the threshold"
    else:
        head = "borderline: one run's interval straddles the threshold"
    z, need = r.get("z", float("nan")), r.get("units_needed", float("nan"))
    if not math.isfinite(z):
        return head
    if not math.isfinite(need):
        return f"{head}; the mean estimate is on the threshold, so no number of units decides it"
    return (f"{head}; the mean estimate is {z:.1f} standard errors from it, so about {math.ceil(need)} "
            f"units would give a definite verdict in {POWER:.0%} of reruns")


def _drift(name: str, old: pd.DataFrame, new: pd.DataFrame) -> TableDrift:
    d = TableDrift(name)
    if list(old.columns) != list(new.columns) or len(old) != len(new):
        d.note = (f"shape {old.shape} -> {new.shape}" if old.shape != new.shape else "columns differ")
        if list(old.columns) != list(new.columns):
            gone, added = sorted(set(old) - set(new)), sorted(set(new) - set(old))
            d.note += f"; columns removed {gone}, added {added}" if gone or added else "; columns reordered"
        return d
    for col in old.columns:
        a, b = old[col], new[col]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) \
                and not pd.api.types.is_bool_dtype(a):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            both = ~(np.isnan(x) & np.isnan(y))
            d.cells += int(both.sum())
            diff = np.abs(x - y)
            differs = both & ~((x == y) | (np.isnan(x) & np.isnan(y)))
            d.changed += int(differs.sum())
            finite = differs & np.isfinite(diff)
            if finite.any():
                d.max_abs = max(d.max_abs, float(diff[finite].max()))
                scale = np.maximum(np.abs(x), np.abs(y))[finite]
                rel = np.where(scale > 0, diff[finite] / np.where(scale > 0, scale, 1), 0.0)
                d.max_rel = max(d.max_rel, float(rel.max()))
            if (differs & ~np.isfinite(diff)).any():  # NaN or inf on one side only
                d.max_abs = d.max_rel = float("inf")
        else:
            d.text_changed += int((a.astype(str) != b.astype(str)).sum())
    return d


def compare(committed: str | Path, fresh: str | Path, notebooks: Iterable[str] | None = None) -> Report:
    """Compare the tables of two figures folders (see the module docstring). ``notebooks`` (stems
    or numbers ``NN``) restricts the comparison to those notebooks' files."""
    committed, fresh = Path(committed), Path(fresh)
    numbers = _notebook_numbers(notebooks)
    report = Report(committed, fresh)
    old_files, new_files = _csvs(committed, numbers), _csvs(fresh, numbers)
    expected = set(numbers) if numbers is not None else set()
    verdict_names = {n for n in {*old_files, *new_files} if VERDICTS_PATTERN.match(n)}
    verdict_names |= {f"{n}_verdicts.csv" for n in expected}
    for name in sorted(verdict_names):
        if name not in old_files or name not in new_files:
            side = "committed" if name not in old_files else "fresh"
            if name not in old_files and name not in new_files:
                side = "both"
            report.missing_tables.append({"table": name, "missing_from": side})
            continue
        _compare_verdicts(report, name, read_verdicts(old_files[name]), read_verdicts(new_files[name]))
    for name in sorted({*old_files, *new_files} - verdict_names):
        if name not in new_files:
            report.only_committed.append(name)
        elif name not in old_files:
            report.only_fresh.append(name)
        else:
            report.drift.append(_drift(name, pd.read_csv(old_files[name]), pd.read_csv(new_files[name])))
    return report


def _key(key) -> str:
    notebook, claim, subject = key
    return f"{notebook} / {claim} / {subject}"


def _g(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _ci(ci: tuple[float, float]) -> str:
    return f"[{_g(ci[0])}, {_g(ci[1])}]"


def render(report: Report) -> str:
    """The report as text for a person: failures first, then flags, then the informational drift."""
    lines = [f"check: fresh run   {report.fresh}", f"       committed   {report.committed}"]
    if report.changed:
        lines.append(f"\nFAIL  {len(report.changed)} verdict(s) changed:")
        for r in report.changed:
            lines.append(f"  - {_key(r['key'])}: {r['old']} -> {r['new']} "
                         f"(estimate {_g(r['estimate_old'])} {_ci(r['ci_old'])} -> "
                         f"{_g(r['estimate_new'])} {_ci(r['ci_new'])})")
            if "kind" in r:
                lines.append(f"      {_diagnosis_text(r)}")
    if report.missing_tables:
        lines.append(f"\nFAIL  {len(report.missing_tables)} verdict table(s) missing:")
        for r in report.missing_tables:
            where = "in both folders" if r["missing_from"] == "both" else f"from the {r['missing_from']} folder"
            lines.append(f"  - {r['table']} missing {where}")
    if report.missing_rows:
        lines.append(f"\nFAIL  {len(report.missing_rows)} verdict row(s) on one side only:")
        for r in report.missing_rows:
            lines.append(f"  - {_key(r['key'])} ({r['verdict']}) missing from the {r['missing_from']} folder")
    if report.moved:
        lines.append(f"\nFLAG  {len(report.moved)} estimate(s) moved by more than their committed interval width:")
        for r in report.moved:
            lines.append(f"  - {_key(r['key'])}: {_g(r['estimate_old'])} -> {_g(r['estimate_new'])} "
                         f"(moved {_g(r['shift'])}, interval width {_g(r['width'])}; verdict {r['new']})")
    same = report.rows_compared - len(report.changed)
    lines.append(f"\n{same} of {report.rows_compared} verdict(s) unchanged.")
    drifted = [d for d in report.drift if d.changed or d.text_changed or d.note]
    lines.append(f"Other tables (informational): {len(report.drift)} compared, "
                 f"{len(report.drift) - len(drifted)} identical.")
    for d in drifted:
        if d.note:
            lines.append(f"  - {d.name}: {d.note}")
            continue
        bits = []
        if d.changed:
            bits.append(f"{d.changed}/{d.cells} numbers differ, max |diff| {_g(d.max_abs)}, max rel {_g(d.max_rel)}")
        if d.text_changed:
            bits.append(f"{d.text_changed} text cell(s) differ")
        lines.append(f"  - {d.name}: " + "; ".join(bits))
    for name in report.only_committed:
        lines.append(f"  - {name}: only in the committed folder")
    for name in report.only_fresh:
        lines.append(f"  - {name}: only in the fresh folder")
    lines.append("\nresult: " + ("FAILED (a verdict changed or could not be compared)" if report.failed
                                 else "passed" + (" (with flagged estimates)" if report.moved else "")))
    return "\n".join(lines)
