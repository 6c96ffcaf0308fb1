"""Every verdict of a profile in one place: ``figures/<profile>/claims.md``, the paper index and the README's table.

:func:`gather` reads every ``NN_verdicts.csv`` of ``figures/<profile>/``; :func:`claims_markdown`
renders the papers' claims at a glance (:mod:`lmc_utils.claims.glance`, one row per claim of the
works), the overall tally, then per notebook a table (claim, subject, estimate [95% interval], n,
threshold, verdict) and its tally; :func:`write` also writes the paper index
(:mod:`lmc_utils.claims.paper_index`) and, with a README, puts the at-a-glance table between its
markers ``<!-- glance:start -->`` and ``<!-- glance:end -->`` (:func:`update_readme`). The
README's findings are thus generated from the verdict tables, never edited by hand::

    python -m lmc_utils.claims --profile cpu                    # figures/cpu/claims.md, paper_index.md
    python -m lmc_utils.claims --profile cpu --readme README.md # and the README's table
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd
import yaml

from ..core.atomic import write_text
from ..core.paths import figures_dir, params_dir, project_root
from . import glance, paper_index
from .verdicts import (COLUMNS, CRITERIA_FILE, OUTCOMES, CriteriaError, apart_counts, below_floor, fmt, load_criteria,
                       md_cell as _cell)

GLANCE_START, GLANCE_END = "<!-- glance:start -->", "<!-- glance:end -->"
FILE = "claims.md"


class ClaimsError(ValueError):
    """No verdict tables, or a README without the claims markers."""


def gather(folder: str | os.PathLike) -> pd.DataFrame:
    """Every ``NN_verdicts.csv`` in ``folder``, concatenated in notebook order (columns
    :data:`lmc_utils.verdicts.COLUMNS` first)."""
    paths = sorted(Path(folder).glob("[0-9][0-9]_verdicts.csv"))
    frames = []
    for p in paths:
        f = pd.read_csv(p, dtype={"notebook": str, "claim": str, "subject": str, "verdict": str})
        missing = [c for c in COLUMNS if c not in f]
        if missing:
            raise ClaimsError(f"{p}: verdict table lacks columns {missing}")
        frames.append(f[COLUMNS + [c for c in f.columns if c not in COLUMNS]])
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


def tally(frame: pd.DataFrame) -> dict[str, int]:
    got = frame["verdict"].value_counts() if len(frame) else {}
    return {o: int(got.get(o, 0)) for o in OUTCOMES}


def tally_text(frame: pd.DataFrame) -> str:
    """``3 held, 1 did not hold, 0 inconclusive``."""
    return ", ".join(f"{v} {k}" for k, v in tally(frame).items())


def split_tally(frame: pd.DataFrame) -> str:
    """The tally of the rows on models at floor (or with no floor to reach), then the rows on models
    below their accuracy floor counted apart: ``3 held, ... (and 2 below floor, counted apart: ...)``."""
    low = below_floor(frame)
    text = tally_text(frame[~low])
    if low.any():
        floor, bound = apart_counts(frame)
        what = " and ".join(x for x in (f"{floor} on models below their accuracy floor" if floor else "",
                                        f"{bound} on a method stopped by its budget" if bound else "") if x)
        text += f"; counted apart, {what} ({tally_text(frame[low])})"
    return text


def _models_cell(row) -> str:
    """The models' quality of a row: test accuracy vs floor, or why there is none."""
    regime = getattr(row, "regime", None)
    if not isinstance(regime, str):
        return ""
    acc = getattr(row, "endpoint_accuracy", float("nan"))
    if regime == "not measured":
        return "not measured"
    if regime == "poor by design":
        return f"{100 * acc:.1f}% (poor by design)"
    if regime == "no floor declared":
        return f"{100 * acc:.1f}% (**no floor declared**)"
    mark = {"below floor": " **below floor**", "budget-bound": " **budget-bound**"}.get(regime, "")
    return f"{100 * acc:.1f}% (floor {100 * float(row.floor):.1f}%){mark}"


def _claim_texts(notebook: str) -> dict[str, str]:
    """Declared claim sentences of a notebook: its own section of criteria.yaml, then the sections
    of its optional parts that share its number (``02_imagenet`` for ``02_singular_vectors``); empty
    when there are none."""
    try:
        with open(params_dir() / CRITERIA_FILE, encoding="utf-8") as f:
            names = list(yaml.safe_load(f) or {})
    except (OSError, yaml.YAMLError):
        return {}
    number = notebook.split("_", 1)[0] + "_"
    sections = [notebook] + [n for n in names if n != notebook and n.startswith(number)]
    texts: dict[str, str] = {}
    for section in sections:
        try:
            texts.update({k: c.claim for k, c in load_criteria(section).items() if k not in texts})
        except (CriteriaError, OSError):
            continue
    return texts


def claims_markdown(frame: pd.DataFrame, profile: str, glance_text: str | None = None) -> str:
    """``claims.md``: the papers' claims at a glance (``glance_text``, when given), the overall tally,
    then one table and tally per notebook."""
    lines = [f"# Claims and verdicts ({profile} profile)", "",
             "Generated by `python -m lmc_utils.claims` from the `NN_verdicts.csv` tables in this folder; "
             "do not edit by hand. *held*: the 95% interval lies on the side the claim predicts; "
             "*did not hold*: on the other side; *inconclusive*: it straddles the threshold.", ""]
    if frame.empty:
        lines.append("No verdict tables yet.")
        return "\n".join(lines) + "\n"
    if glance_text:
        lines += ["## The papers' claims at a glance", "", glance_text, "", "## Every verdict", ""]
    low = below_floor(frame)
    lines += [f"**Overall: {len(frame)} verdicts — {split_tally(frame)}.**", "",
              "Each row's models are judged against the test accuracy declared for them before any result "
              "(`quality` in `params/<profile>.yaml`: the paper's own accuracy or a standard baseline). A row on "
              "models *below* that floor keeps its statistic but does not test the paper's claim: it is counted "
              "apart, as is a row resting on a method stopped by its step budget instead of by convergence "
              "(*budget-bound*).", "",
              "| notebook | held | did not hold | inconclusive | below floor or budget-bound (counted apart) |", "|---|---|---|---|---|"]
    for notebook, rows in frame.groupby("notebook", sort=False):
        t = tally(rows[~low.loc[rows.index]])
        lines.append(f"| {notebook} | {t['held']} | {t['did not hold']} | {t['inconclusive']} | "
                     f"{int(low.loc[rows.index].sum())} |")
    for notebook, rows in frame.groupby("notebook", sort=False):
        texts = _claim_texts(notebook)
        lines += ["", f"## {notebook}", "",
                  "| claim | subject | estimate [95% CI] | n | threshold | verdict | models' test accuracy |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows.itertuples(index=False):
            claim = f"`{r.claim}`" + (f" — {_cell(texts[r.claim])}" if r.claim in texts else "")
            lines.append(f"| {claim} | {_cell(r.subject)} | {fmt(float(r.estimate))} "
                         f"[{fmt(float(r.ci_low))}, {fmt(float(r.ci_high))}] | {int(r.n)} | "
                         f"{fmt(float(r.threshold))} | {r.verdict} | {_models_cell(r)} |")
        lines += ["", f"Tally: {split_tally(rows)}."]
    return "\n".join(lines) + "\n"


def gather_models(folder: str | os.PathLike) -> pd.DataFrame:
    """Every ``NN_models.csv`` in ``folder`` (the models behind each notebook's verdicts against their
    floors), one row per notebook, experiment and arm (column ``notebook``: ``NN``)."""
    frames = []
    for p in sorted(Path(folder).glob("[0-9][0-9]_models.csv")):
        f = pd.read_csv(p, dtype={"experiment": str, "arm": str, "status": str, "reference": str})
        frames.append(f.assign(notebook=p.name[:2], arm=f["arm"].fillna("")))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["notebook", "experiment", "arm", "models", "test_accuracy", "lowest", "floor", "status"])


def models_markdown(models: pd.DataFrame) -> str:
    """The models table: per notebook, experiment and arm (a name means one config within a notebook;
    notebooks share configs through the cache, but 05's ``mnist`` is not 09's), the models, their mean
    and lowest test accuracy, the floor and the status."""
    if models.empty:
        return "No model tables yet."
    rows = []
    for r in models.itertuples(index=False):
        floor = "" if r.floor != r.floor else f"{100 * r.floor:.1f}%"
        name = f"{r.experiment} / {r.arm}" if r.arm else r.experiment
        rows.append(f"| {r.notebook} | {_cell(name)} | {int(r.models)} | "
                    f"{100 * r.test_accuracy:.1f}% ({100 * r.lowest:.1f}%) | {floor} | {r.status} |")
    head = ["| notebook | models (experiment / arm) | models | test accuracy (lowest) | floor | status |",
            "|---|---|---|---|---|---|"]
    return "\n".join(head + rows)


def _link(target: Path, base: Path) -> str:
    return Path(os.path.relpath(target, base)).as_posix()


def glance_block(text: str, profile: str, folder: Path, readme_dir: Path | None = None) -> str:
    """The README's at-a-glance block: the generated table and a link to every verdict."""
    base = readme_dir or project_root()
    return (f"<!-- generated by `python -m lmc_utils.claims --profile {profile} --readme`; do not edit -->\n"
            + text + f"\n\nEvery verdict, setting by setting, with its statistic: [claims.md]({_link(folder / FILE, base)}); "
            f"every figure and table of the three works: [{paper_index.FILE}]({_link(folder / paper_index.FILE, base)}).")


def replace_block(text: str, block: str, start: str = GLANCE_START, end: str = GLANCE_END) -> str:
    """``text`` with everything between the markers ``start`` and ``end`` (the glance table's by default)
    replaced by ``block``. Raises :class:`ClaimsError` when the markers are absent, duplicated or out
    of order."""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ClaimsError(f"the README needs exactly one {start} line followed by one {end} line "
                          "around a generated table; they are absent (or duplicated): nothing was changed")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}"


def update_readme(readme: str | os.PathLike, glance_text: str) -> bool:
    """Write ``glance_text`` (the papers' claims at a glance) between the glance markers of ``readme``;
    returns whether the file changed."""
    path = Path(readme)
    old = path.read_text(encoding="utf-8")
    new = replace_block(old, glance_text)
    if new != old:
        write_text(path, new)
    return new != old


def write(profile: str, readme: str | os.PathLike | None = None, folder: Path | None = None) -> Path:
    """Write ``claims.md`` for ``profile`` (and the README block when ``readme`` is given)."""
    folder = folder or figures_dir(profile)
    if not folder.is_dir():
        raise ClaimsError(f"{folder} does not exist: run the notebooks first (python -m lmc_utils.run --profile {profile})")
    frame = gather(folder)
    _, glance_text = glance.write(glance.with_side_runs(frame, folder, gather), profile, folder)
    index = paper_index.write(profile, folder)
    text = claims_markdown(frame, profile, glance_text + (
        "\n\nEvery figure and table of the three works, and where it is reproduced (or why not): "
        f"[{index.name}]({index.name})."))
    models = gather_models(folder)
    if not models.empty:
        text += ("\n## The models behind the verdicts\n\nPer experiment and arm, against the test accuracy declared "
                 "for its models before any result (`quality` in `params/<profile>.yaml`, with its reference; "
                 "`NN_models.md` per notebook).\n\n" + models_markdown(models) + "\n")
    out = write_text(folder / FILE, text)
    if readme is not None:
        readme = Path(readme)
        try:
            update_readme(readme, glance_block(glance_text, profile, folder, readme.resolve().parent))
        except ClaimsError as err:
            raise ClaimsError(f"{readme}: {err} ({out} was written)") from None
        except OSError as err:
            raise ClaimsError(f"{readme}: cannot read or write it ({err.strerror})") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmc_utils.claims", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", help="the profile whose figures folder to gather (default: cpu)")
    parser.add_argument("--readme", type=Path, help="also regenerate this README's table of the papers' claims between "
                        "its markers")
    args = parser.parse_args(argv)
    try:
        out = write(args.profile, args.readme)
    except (ClaimsError, CriteriaError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    frame = gather(out.parent)
    print(f"{out}: {len(frame)} verdicts ({split_tally(frame) if len(frame) else 'none'})")
    if args.readme:
        print(f"{args.readme}: the papers' claims at a glance regenerated between {GLANCE_START} and {GLANCE_END}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
