"""The papers' claims at a glance: one row per distinct claim of the three works, from the verdicts.

``params/papers.yaml`` lists the works' claims (``headlines``): each in plain words, where the work
makes it, the work's number and setting, and the declared criteria (``params/criteria.yaml``) that
test it, one of them ``primary``. :func:`glance_markdown` renders one row per claim from a profile's
verdict tables (:func:`lmc_utils.claims.report.gather`): ours on each setting of the primary
criterion (estimate [95% interval] and a symbol), and a caveat column that counts the rows on models
below their accuracy floor or on a method stopped by its budget (counted apart, never as evidence).
Sanity checks (criteria that hold by construction) are not claims of a paper; they are listed apart.

A claim's status on models at their floor (:func:`lmc_utils.claims.verdicts.claim_status`) is the tally's unit, so a claim judged on
eighteen widths counts once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import yaml

from ..core import params as profiles
from ..core.paths import params_dir
from .verdicts import (CLAIM_STATUSES, CRITERIA_FILE, WORKS, CriteriaError, Criterion, apart_counts, claim_status,
                       fmt, judged_rows, md_cell as _cell, parse_criteria, subject_in_words)

PAPERS_FILE = "papers.yaml"
SYMBOLS = {"held": "✓", "did not hold": "✗", "inconclusive": "?"}
WORK_SHORT = {"ito2025": "Ito et al.", "qu_horvath2024": "Qu & Horvath", "talk": "talk",
              "external": "earlier work", "companion": "companion"}
MAX_SETTINGS = 4  # settings shown per claim; the rest are counted (claims.md has them all)


@dataclass(frozen=True)
class Headline:
    """One claim of a work, tested by ``criteria`` (names in ``params/criteria.yaml``)."""

    id: str
    work: str
    claim: str
    place: str
    criteria: tuple[str, ...]
    primary: str
    paper_value: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.work not in WORKS:
            raise CriteriaError(f"headline {self.id!r}: work must be one of {sorted(WORKS)}, got {self.work!r}")
        if not self.criteria or self.primary not in self.criteria:
            raise CriteriaError(f"headline {self.id!r}: primary {self.primary!r} must be one of its criteria")


def all_criteria(path: Path | None = None) -> dict[str, Criterion]:
    """Every declared criterion by name, across the sections of ``criteria.yaml`` (a name reused by a
    YAML alias is the same criterion)."""
    path = path or params_dir() / CRITERIA_FILE
    with open(path, encoding="utf-8") as f:
        sections = yaml.safe_load(f) or {}
    out: dict[str, Criterion] = {}
    for section, spec in sections.items():
        for name, c in parse_criteria(spec, section).items():
            out.setdefault(name, c)
    return out


def load_headlines(path: Path | None = None, criteria: Mapping[str, Criterion] | None = None) -> list[Headline]:
    """The ``headlines`` of ``params/papers.yaml``, checked against the criteria: ids unique, every
    named criterion declared, and every criterion that is not a sanity check behind exactly one
    headline (a sanity check behind none)."""
    path = path or params_dir() / PAPERS_FILE
    with open(path, encoding="utf-8") as f:
        raw = (yaml.safe_load(f) or {}).get("headlines") or []
    criteria = all_criteria() if criteria is None else criteria
    known = {"id", "work", "claim", "place", "criteria", "primary", "paper_value", "note"}
    out, seen, owner = [], set(), {}
    for entry in raw:
        unknown = sorted(set(entry) - known)
        if unknown:
            raise CriteriaError(f"{path}: headline {entry.get('id')!r} has unknown keys {unknown}")
        h = Headline(**{**entry, "criteria": tuple(entry.get("criteria") or ()), "note": entry.get("note") or ""})
        if h.id in seen:
            raise CriteriaError(f"{path}: headline id {h.id!r} appears twice")
        seen.add(h.id)
        for name in h.criteria:
            if name not in criteria:
                raise CriteriaError(f"{path}: headline {h.id!r} names {name!r}, which params/criteria.yaml does not declare")
            if criteria[name].sanity:
                raise CriteriaError(f"{path}: headline {h.id!r} names the sanity check {name!r}, which is no paper's claim")
            if name in owner:
                raise CriteriaError(f"{path}: {name!r} is behind two headlines ({owner[name]!r} and {h.id!r})")
            owner[name] = h.id
        out.append(h)
    orphans = sorted(n for n, c in criteria.items() if not c.sanity and n not in owner)
    if orphans:
        raise CriteriaError(f"{path}: no headline for the criteria {orphans}")
    return out


def _ours(rows: pd.DataFrame, status: str, labels: Mapping[str, str]) -> str:
    if status == "not run at this profile":
        return status
    if status == "only with a method stopped by its budget":
        return "only with STE stopped by its step budget (see the STE run)"
    if status == "only on models below floor":
        return "only on models below their floor"
    judged = judged_rows(rows)
    cells = [f"{SYMBOLS[r.verdict]} {subject_in_words(r.subject, labels)}: {fmt(float(r.estimate))} "
             f"[{fmt(float(r.ci_low))}, {fmt(float(r.ci_high))}]" for r in judged.itertuples(index=False)]
    more = len(cells) - MAX_SETTINGS
    return "<br>".join(cells[:MAX_SETTINGS]) + (f"<br>… {more} more" if more > 0 else "")


def _caveats(h: Headline, frame: pd.DataFrame, primary: pd.DataFrame) -> str:
    rows = frame[frame["claim"].isin(h.criteria)]
    out = []
    n_floor, n_bound = apart_counts(rows) if "regime" in rows else (0, 0)
    if n_floor:
        out.append(f"{n_floor} of {len(rows)} rows on models below their accuracy floor (counted apart)")
    if n_bound:
        out.append(f"{n_bound} rows on STE stopped by its step budget (counted apart)")
    judged = judged_rows(primary)
    if len(judged) and "n" in judged and int(judged["n"].min()) < 3:
        out.append(f"a setting rests on n = {int(judged['n'].min())} units")
    if len(h.criteria) > 1:
        out.append(f"{len(h.criteria) - 1} more criteria in claims.md")
    if h.note:
        out.append(h.note)
    return "; ".join(out)


def glance_table(frame: pd.DataFrame, headlines: Sequence[Headline], profile: str) -> pd.DataFrame:
    """One row per headline: work, place, claim, the paper's number, ours (primary criterion's rows on
    models at their floor), status and caveats."""
    labels = profiles.labels(profile) if profile in profiles.PROFILES else {}
    rows = []
    for h in headlines:
        primary = frame[frame["claim"] == h.primary] if len(frame) else frame
        rule = ""
        if len(primary) and "threshold" in primary and "direction" in primary:
            sign = "<" if primary["direction"].iloc[0] == "less" else ">"
            rule = f"{sign} {fmt(float(primary['threshold'].iloc[0]))}"
        status = claim_status(primary)
        rows.append({"id": h.id, "work": h.work, "place": h.place, "claim": h.claim, "rule": rule,
                     "paper_value": h.paper_value or "", "primary": h.primary, "ours": _ours(primary, status, labels),
                     "status": status, "caveats": _caveats(h, frame, primary) if len(frame) else ""})
    return pd.DataFrame(rows)


def tally(table: pd.DataFrame) -> dict[str, int]:
    """Distinct claims per status (:data:`lmc_utils.claims.verdicts.CLAIM_STATUSES`)."""
    got = table["status"].value_counts()
    return {s: int(got.get(s, 0)) for s in CLAIM_STATUSES}


def glance_markdown(frame: pd.DataFrame, table: pd.DataFrame, profile: str, sanity: Sequence[Criterion] = ()) -> str:
    """The at-a-glance table (:func:`glance_table` of ``frame``) in Markdown, its tally over distinct
    claims, and the sanity checks apart (their outcomes read from ``frame``)."""
    counts = tally(table)
    lines = [f"**{len(table)} claims of the three works** at the `{profile}` profile, each judged on models at "
             "their declared accuracy floor: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + ". "
             "A claim counts once however many settings test it. ✓ held (the 95% interval lies on the claimed "
             "side of the declared threshold), ✗ did not hold (on the other side), ? inconclusive (it straddles "
             "the threshold); *depends on the setting*: held on some models and not on others; *where conclusive*: "
             "the other settings were inconclusive.", "",
             "| claim | paper: where, and its number | ours: setting, estimate [95% interval] | status (claimed side of the threshold) | caveats |",
             "|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        paper = f"{WORK_SHORT[r.work]}, {r.place}" + (f": {r.paper_value}" if r.paper_value else "")
        status = r.status + (f" (claimed: {r.rule})" if r.rule else "")
        lines.append(f"| {_cell(r.claim)} | {_cell(paper)} | {_cell(r.ours)} | {status} | {_cell(r.caveats)} |")
    if sanity:
        lines += ["", "Sanity checks (true by construction: they test the code, not a paper; not counted): "
                  + "; ".join(f"`{c.name}` — {c.claim}: "
                              + _sanity_outcome(frame, c.name) for c in sanity) + "."]
    return "\n".join(lines)


def _sanity_outcome(frame: pd.DataFrame, name: str) -> str:
    rows = frame[frame["claim"] == name] if len(frame) else frame
    if rows.empty:
        return "not run"
    got = rows["verdict"].value_counts()
    return ", ".join(f"{int(v)} {k}" for k, v in got.items())


RUNS_FILE = "runs.yaml"


def side_runs(folder: str | os.PathLike) -> list[dict]:
    """The side runs that complete a profile's batch (``runs.yaml`` in its figures folder): each a
    ``folder`` (relative to this one), the ``claims`` it judges where the batch cannot (e.g. STE run
    to convergence, where the batch stops STE after 50 steps) and ``what`` it is. Empty without one."""
    path = Path(folder) / RUNS_FILE
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        runs = (yaml.safe_load(f) or {}).get("runs") or []
    for run in runs:
        missing = {"folder", "claims", "what"} - set(run)
        if missing:
            raise CriteriaError(f"{path}: a run lacks {sorted(missing)}")
        if not (Path(folder) / run["folder"]).is_dir():
            raise CriteriaError(f"{path}: {run['folder']} is not a folder next to {folder}")
    return runs


def with_side_runs(frame: pd.DataFrame, folder: str | os.PathLike, read) -> pd.DataFrame:
    """``frame`` with the verdict rows of :func:`side_runs` for the claims each judges (``read``: a
    folder's verdict rows, :func:`lmc_utils.claims.report.gather`): their subjects marked with the run
    (``... [STE run to convergence]``), and the batch's rows of those claims kept."""
    extra = []
    for run in side_runs(folder):
        rows = read(Path(folder) / run["folder"])
        rows = rows[rows["claim"].isin(run["claims"])]
        extra.append(rows.assign(subject=rows["subject"].astype(str) + f" [{run['what']}]"))
    return pd.concat([frame, *extra], ignore_index=True) if extra else frame


def write(frame: pd.DataFrame, profile: str, folder: str | os.PathLike) -> tuple[Path, str]:
    """The table as ``glance.csv`` in ``folder`` and its Markdown (returned for the README); ``frame``
    holds the batch's verdicts and its side runs' (:func:`with_side_runs`)."""
    from ..core.atomic import write_text

    criteria = all_criteria()
    headlines = load_headlines(criteria=criteria)
    table = glance_table(frame, headlines, profile)
    text = glance_markdown(frame, table, profile, [c for c in criteria.values() if c.sanity])
    path = Path(folder) / "glance.csv"
    write_text(path, table.to_csv(index=False))
    return path, text


__all__ = ["Headline", "PAPERS_FILE", "all_criteria", "glance_markdown", "glance_table", "load_headlines",
           "side_runs", "tally", "with_side_runs", "write"]
