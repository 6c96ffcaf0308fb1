"""Claims as data: declared criteria, interval estimates and three-outcome verdicts.

Every claim a notebook tests is declared *before* any result, in ``params/criteria.yaml``
(one section per notebook, the same for every profile, so a run at another scale is judged by
the same rule). A criterion names the statistic (one number per independent unit: a pair or a
triple of models), the direction the claim predicts, a threshold and the interval method::

    01_distance_taylor:
      taylor_fails_after_matching:
        claim: the second-order estimate misses the midpoint barrier after weight matching
        statistic: relative error |actual - estimate| / |actual| per independent pair
        direction: greater        # the claim predicts estimate > threshold
        threshold: 0.2
        test: t                   # t | bootstrap (95% interval of the mean over units)

The verdict compares the 95% interval of the mean with the threshold:

- ``held``: the whole interval lies on the side the claim predicts;
- ``did not hold``: the whole interval lies on the other side (or touches the threshold);
- ``inconclusive``: the interval straddles the threshold (more units are needed).

Where matching is involved, each unit may be measured several times (random group orders of
weight matching): pass a ``units x repeats`` array; repeats are averaged per unit before the
interval (the units, not the repeats, are independent), and their spread is reported as
``repeat_sd`` (mean within-unit standard deviation).

One row per claim x subject has the columns :data:`COLUMNS`; :func:`render` turns rows into
prose, so no notebook writes verdict sentences by hand.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from ..core.paths import params_dir
from .quality import APART

OUTCOMES = ("held", "did not hold", "inconclusive")
DIRECTIONS = ("greater", "less")
TESTS = ("t", "bootstrap")
COLUMNS = ["notebook", "claim", "subject", "statistic", "estimate", "ci_low", "ci_high", "n", "threshold",
           "verdict"]
EXTRA_COLUMNS = ["direction", "test", "repeats", "repeat_sd"]
CRITERIA_FILE = "criteria.yaml"


class CriteriaError(ValueError):
    """A malformed or missing criterion in ``params/criteria.yaml``."""


@dataclass(frozen=True)
class PaperValue:
    """Where a claim comes from and what the paper printed: ``work`` (a key of :data:`WORKS`), the
    ``place`` in it (section, figure, table), the paper's number(s) as printed (``value``; ``None``
    where the work prints none, and then ``note`` must say why), the ``setting`` of that number
    (architecture, dataset, training) and a ``note`` for what a reader needs (``derived:`` marks
    arithmetic done by the companion, not printed in the work)."""

    work: str
    place: str
    value: str | None = None
    setting: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.work not in WORKS:
            raise CriteriaError(f"paper.work must be one of {sorted(WORKS)}, got {self.work!r}")
        if not str(self.place).strip():
            raise CriteriaError("paper.place must say where in the work the claim is")
        if self.value is None and not str(self.note).strip():
            raise CriteriaError(f"paper ({self.work}, {self.place}): value is null, so note must say why")

    @property
    def citation(self) -> str:
        """The work and place in words, e.g. ``Qu & Horvath 2024, §4.1, Table 1``."""
        work = WORKS[self.work]
        place = self.place.removeprefix("external: ")
        return f"{work}, {place}" if work else place


# The works a claim may come from (PaperValue.work): the three of the mission, works outside them that a
# claim cites (``external``: the place names them) and the companion's own controls (``companion``).
WORKS = {"ito2025": "Ito et al. 2025", "qu_horvath2024": "Qu & Horvath 2024", "talk": "the talk",
         "external": "", "companion": "the companion's control"}


@dataclass(frozen=True)
class Criterion:
    """One declared claim: the statistic, the predicted direction, the threshold and the test;
    ``paper``: where it comes from and the paper's number (:class:`PaperValue`); ``sanity``: why it
    holds by construction, if it does (a check of the implementation, shown apart and never counted
    as evidence for a paper)."""

    name: str
    claim: str
    statistic: str
    direction: str
    threshold: float
    test: str = "t"
    confidence: float = 0.95
    paper: PaperValue | None = None
    sanity: str = ""

    @property
    def source(self) -> str:
        """The claim's source in words (:attr:`PaperValue.citation`; empty without ``paper``)."""
        return self.paper.citation if self.paper is not None else ""

    def __post_init__(self) -> None:
        if isinstance(self.paper, Mapping):
            unknown = sorted(set(self.paper) - {"work", "place", "value", "setting", "note"})
            if unknown:
                raise CriteriaError(f"criterion {self.name!r}: paper has unknown keys {unknown}")
            try:
                object.__setattr__(self, "paper", PaperValue(**{k: (str(v) if v is not None else None)
                                                                for k, v in self.paper.items()}))
            except (TypeError, CriteriaError) as e:
                raise CriteriaError(f"criterion {self.name!r}: {e}") from None
        if self.direction not in DIRECTIONS:
            raise CriteriaError(f"criterion {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.test not in TESTS:
            raise CriteriaError(f"criterion {self.name!r}: test must be one of {TESTS}, got {self.test!r}")
        if not isinstance(self.threshold, (int, float)) or isinstance(self.threshold, bool) \
                or not math.isfinite(self.threshold):
            raise CriteriaError(f"criterion {self.name!r}: threshold must be a finite number, got {self.threshold!r}")
        if not 0.5 < self.confidence < 1:
            raise CriteriaError(f"criterion {self.name!r}: confidence must be in (0.5, 1), got {self.confidence!r}")

    @property
    def rule(self) -> str:
        """The rule in words, e.g. ``mean > 0.2 (95% t interval)``."""
        sign = ">" if self.direction == "greater" else "<"
        return f"mean {sign} {self.threshold:g} ({100 * self.confidence:.0f}% {self.test} interval)"


def parse_criteria(section: Mapping[str, Any], notebook: str = "") -> dict[str, Criterion]:
    """Criteria from a mapping ``{name: {claim, statistic, direction, threshold, test?, ...}}``."""
    out = {}
    known = {"claim", "statistic", "direction", "threshold", "test", "confidence", "paper", "sanity"}
    for name, spec in (section or {}).items():
        if not isinstance(spec, Mapping):
            raise CriteriaError(f"{notebook}: criterion {name!r} must be a mapping, got {spec!r}")
        unknown = sorted(set(spec) - known)
        missing = sorted({"claim", "statistic", "direction", "threshold"} - set(spec))
        if unknown or missing:
            raise CriteriaError(f"{notebook}: criterion {name!r}: unknown keys {unknown}, missing keys {missing}")
        out[name] = Criterion(name=name, **spec)
    return out


def load_criteria(notebook: str, path: Path | None = None) -> dict[str, Criterion]:
    """The criteria of ``notebook`` (file stem, e.g. ``01_distance_taylor``) in declaration order."""
    path = path or params_dir() / CRITERIA_FILE
    with open(path, encoding="utf-8") as f:
        sections = yaml.safe_load(f) or {}
    if notebook not in sections:
        raise CriteriaError(f"{path} has no section {notebook!r}")
    return parse_criteria(sections[notebook], notebook)


def interval(values: Sequence[float] | np.ndarray, test: str = "t", confidence: float = 0.95,
             seed: int = 0, resamples: int = 10_000) -> dict[str, float]:
    """Estimate and interval of the mean over independent units.

    ``values`` is 1-D (one value per unit) or 2-D ``units x repeats`` (repeats averaged per unit;
    NaN repeats ignored). Returns ``estimate, ci_low, ci_high, n, repeats, repeat_sd`` (the mean
    standard deviation over the repeats of the units that have two or more). With fewer than two
    units the interval is infinite. ``t``: Student t interval; ``bootstrap``: percentile
    interval of ``resamples`` resamples of the units (seeded, so the same values give the same
    interval).
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"values must be 1-D or 2-D (units x repeats), got shape {arr.shape}")
    keep = ~np.all(np.isnan(arr), axis=1)
    arr = arr[keep]
    repeats = arr.shape[1]
    unit_means = np.nanmean(arr, axis=1) if arr.size else np.array([])
    spread = np.sum(~np.isnan(arr), axis=1) > 1  # units with two or more repeats have a spread
    repeat_sd = (float(np.mean(np.nanstd(arr[spread], axis=1, ddof=1))) if repeats > 1 and spread.any()
                 else float("nan"))
    n = len(unit_means)
    if n == 0:
        return {"estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0,
                "repeats": repeats, "repeat_sd": repeat_sd}
    est = float(unit_means.mean())
    if n < 2:
        low, high = -math.inf, math.inf
    elif test == "t":
        sd = float(unit_means.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        low, high = est - half, est + half
    elif test == "bootstrap":
        rng = np.random.default_rng(seed)
        means = unit_means[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
        low, high = (float(q) for q in np.quantile(means, [0.5 - confidence / 2, 0.5 + confidence / 2]))
    else:
        raise ValueError(f"unknown test {test!r}; choose one of {TESTS}")
    return {"estimate": est, "ci_low": float(low), "ci_high": float(high), "n": n, "repeats": repeats,
            "repeat_sd": repeat_sd}


def decide(ci_low: float, ci_high: float, threshold: float, direction: str) -> str:
    """``held`` / ``did not hold`` / ``inconclusive`` from an interval and the claimed side."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if math.isnan(ci_low) or math.isnan(ci_high):
        return "inconclusive"
    if direction == "greater":
        if ci_low > threshold:
            return "held"
        return "did not hold" if ci_high <= threshold else "inconclusive"
    if ci_high < threshold:
        return "held"
    return "did not hold" if ci_low >= threshold else "inconclusive"


def pooled_interval(strata: pd.DataFrame, confidence: float = 0.95) -> dict[str, float]:
    """Estimate and interval of the equal-weight mean over strata, from each stratum's t interval.

    ``strata`` has one row per stratum (e.g. one width of a model family) with the columns
    ``estimate, ci_low, ci_high, n`` of :func:`interval` (test ``t``, at ``confidence``). The
    estimate is the mean of the stratum means (each stratum counts once, however many units it
    has); its variance is ``sum(se_k^2) / K^2`` with ``se_k`` recovered exactly from the stratum's
    interval half-width, and the interval is Student t with Welch–Satterthwaite degrees of
    freedom. The strata must hold independent units (different models). A stratum with fewer than
    two units (an infinite interval) makes the pooled interval infinite. Returns ``estimate,
    ci_low, ci_high, n`` (units over all strata) and ``strata``.
    """
    if strata.empty:
        return {"estimate": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0, "strata": 0}
    est = strata["estimate"].to_numpy(float)
    n = strata["n"].to_numpy(int)
    k = len(strata)
    out = {"estimate": float(est.mean()), "n": int(n.sum()), "strata": k}
    if (n < 2).any() or not np.isfinite(strata[["ci_low", "ci_high"]].to_numpy(float)).all():
        return {**out, "ci_low": -math.inf, "ci_high": math.inf}
    half = (strata["ci_high"].to_numpy(float) - strata["ci_low"].to_numpy(float)) / 2
    t = stats.t.ppf(0.5 + confidence / 2, n - 1)
    var = (half / t) ** 2  # se_k^2 = s_k^2 / n_k
    total = float(var.sum())
    if total == 0.0:
        return {**out, "ci_low": out["estimate"], "ci_high": out["estimate"]}
    df = total ** 2 / float(np.sum(var ** 2 / (n - 1)))
    width = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(total) / k
    return {**out, "ci_low": out["estimate"] - width, "ci_high": out["estimate"] + width}


def pooled_verdict(rows: pd.DataFrame, criterion: Criterion, subject: str) -> dict[str, Any]:
    """One verdict row judging ``criterion`` on the equal-weight mean over the strata in ``rows``
    (verdict rows of that criterion, one per stratum: :func:`pooled_interval`), with ``strata``
    (how many were pooled). Only ``t`` criteria can be pooled from their rows (a bootstrap
    interval does not give back its standard error)."""
    if criterion.test != "t":
        raise CriteriaError(f"criterion {criterion.name!r}: pooling strata needs test 't', got {criterion.test!r}")
    bad = sorted(set(rows["claim"]) - {criterion.name}) if "claim" in rows else []
    if bad:
        raise ValueError(f"pooled_verdict({criterion.name!r}) got rows of other claims {bad}")
    est = pooled_interval(rows, criterion.confidence)
    first = rows.iloc[0] if len(rows) else {}
    return {"notebook": first.get("notebook", ""), "claim": criterion.name, "subject": subject,
            "statistic": criterion.statistic, "estimate": est["estimate"], "ci_low": est["ci_low"],
            "ci_high": est["ci_high"], "n": est["n"], "threshold": criterion.threshold,
            "verdict": decide(est["ci_low"], est["ci_high"], criterion.threshold, criterion.direction),
            "direction": criterion.direction, "test": criterion.test,
            "repeats": int(rows["repeats"].max()) if "repeats" in rows and len(rows) else 1,
            "repeat_sd": float(rows["repeat_sd"].mean()) if "repeat_sd" in rows and len(rows) else float("nan"),
            "strata": est["strata"]}


def verdict(notebook: str, criterion: Criterion, subject: str, values: Sequence[float] | np.ndarray,
            seed: int = 0) -> dict[str, Any]:
    """One verdict row: ``criterion`` judged on ``values`` (per unit, or units x repeats)."""
    est = interval(values, criterion.test, criterion.confidence, seed=seed)
    return {"notebook": notebook, "claim": criterion.name, "subject": subject, "statistic": criterion.statistic,
            "estimate": est["estimate"], "ci_low": est["ci_low"], "ci_high": est["ci_high"], "n": est["n"],
            "threshold": criterion.threshold,
            "verdict": decide(est["ci_low"], est["ci_high"], criterion.threshold, criterion.direction),
            "direction": criterion.direction, "test": criterion.test, "repeats": est["repeats"],
            "repeat_sd": est["repeat_sd"]}


def table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Verdict rows as a DataFrame with the columns :data:`COLUMNS` then :data:`EXTRA_COLUMNS`."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS + EXTRA_COLUMNS)
    missing = [c for c in COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"verdict rows lack columns {missing}")
    bad = sorted(set(frame["verdict"]) - set(OUTCOMES))
    if bad:
        raise ValueError(f"unknown verdicts {bad}; allowed: {OUTCOMES}")
    extra = [c for c in EXTRA_COLUMNS if c in frame]
    rest = [c for c in frame.columns if c not in COLUMNS and c not in extra]
    return frame[COLUMNS + extra + rest].reset_index(drop=True)


def md_cell(text) -> str:
    """``text`` as one cell of a Markdown table: pipes escaped, newlines as spaces (``None``: empty)."""
    return ("" if text is None else str(text)).replace("|", "\\|").replace("\n", " ")


def fmt(x: float, digits: int = 3) -> str:
    """A number for prose: ``digits`` significant digits, ``-inf``/``inf`` as such, tiny values as 0."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if abs(x) < 10 ** -(digits + 6):
        return "0"
    return f"{x:.{digits}g}"


def counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many rows have each outcome (every outcome listed, zeros included)."""
    got = frame["verdict"].value_counts() if len(frame) else {}
    return {o: int(got.get(o, 0)) for o in OUTCOMES}


def criteria_markdown(criteria: Mapping[str, Criterion]) -> str:
    """The declared rules as a Markdown table, shown before any result."""
    lines = ["| claim | what is claimed | statistic (per independent unit) | rule for *held* |", "|---|---|---|---|"]
    for c in criteria.values():
        lines.append(f"| `{c.name}` | {c.claim} | {c.statistic} | {c.rule} |")
    lines.append("")
    lines.append("*Did not hold*: the interval lies on the other side of the threshold; *inconclusive*: it "
                 "straddles the threshold.")
    return "\n".join(lines)


def render(frame: pd.DataFrame, criteria: Mapping[str, Criterion] | None = None) -> str:
    """Markdown prose for verdict rows: one bullet per claim x subject, then the tally."""
    if frame.empty:
        return "No verdicts."
    lines = []
    for claim, rows in frame.groupby("claim", sort=False):
        c = (criteria or {}).get(claim)
        head = f"**{claim}**" + (f" — {c.claim}" if c is not None else "")
        lines.append(f"- {head} ({rows['statistic'].iloc[0]}):")
        for r in rows.itertuples(index=False):
            sign = ">" if getattr(r, "direction", "greater") == "greater" else "<"
            spread = ""
            if getattr(r, "repeats", 1) and int(getattr(r, "repeats", 1)) > 1:
                spread = f"; spread over {int(r.repeats)} group orders ±{fmt(r.repeat_sd, 2)}"
            lines.append(f"  - {r.subject}: **{r.verdict}** — {fmt(r.estimate)} "
                         f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}], n = {int(r.n)}{spread}; needed {sign} "
                         f"{fmt(r.threshold)}.{_quality_text(r)}")
    lines.append("")
    lines.append(tally_sentence(frame))
    return "\n".join(lines)


def _quality_text(row: Any) -> str:
    """The models' quality of a rendered verdict row (nothing when the row has none)."""
    regime = getattr(row, "regime", None)
    acc = getattr(row, "endpoint_accuracy", float("nan"))
    if not isinstance(regime, str) or regime == "not measured":
        return ""
    if regime in APART:
        return (f" *{regime.capitalize()}* (models at {100 * acc:.1f}%; {getattr(row, 'quality_note', '')}): "
                "this row does not test the paper's claim.")
    if regime == "poor by design":
        return f" Models poor by design ({100 * acc:.1f}% test accuracy)."
    return f" Models at floor ({100 * acc:.1f}% test accuracy, floor {100 * float(row.floor):.1f}%)."


WORDS = {"kaiming_normal": "Kaiming-normal init", "kaiming_uniform": "Kaiming-uniform init", "adamw": "AdamW",
         "rmsprop": "RMSprop", "sgd": "SGD", "adam": "Adam"}  # the 09 grid's arms, named by init and optimiser


def subject_in_words(subject: str, labels: Mapping[str, str]) -> str:
    """A verdict row's subject in words: its experiment (the part before the first slash, colon or
    comma) by its label, and the init and optimiser names of notebook 09's arms in words."""
    text = str(subject)
    cut = min((i for i in (text.find(" / "), text.find(": "), text.find(", ")) if i > 0), default=len(text))
    head, rest = text[:cut], text[cut:]
    head = labels.get(head, WORDS.get(head, head))
    return head + re.sub(r"\b[a-z_]+\b", lambda m: WORDS.get(m.group(0), m.group(0)), rest)


def judged_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The verdict rows that judge a paper: on models at their floor (or with none to reach), measured,
    with at least two units."""
    keep = ~below_floor(rows)
    if "regime" in rows:
        keep &= ~rows["regime"].eq("not measured")
    if "n" in rows:
        keep &= rows["n"].fillna(0).astype(int) >= 2
    return rows[keep]


CLAIM_STATUSES = ("held", "held where conclusive", "did not hold", "did not hold where conclusive",
                  "depends on the setting", "inconclusive", "only on models below floor",
                  "only with a method stopped by its budget", "not run at this profile")


def claim_status(rows: pd.DataFrame) -> str:
    """One claim's status over its verdict rows (its settings), one of :data:`CLAIM_STATUSES`, from the
    rows on models at their floor only (:func:`judged_rows`): *held* / *did not hold* where every such
    row agrees, *... where conclusive* where the others are inconclusive, *depends on the setting*
    where some held and some did not."""
    if rows.empty:
        return "not run at this profile"
    judged = judged_rows(rows)
    if judged.empty:
        if "regime" in rows and rows["regime"].eq("budget-bound").all():
            return "only with a method stopped by its budget"
        return "only on models below floor"
    got = set(judged["verdict"])
    if len(got) == 1:
        return next(iter(got))
    if {"held", "did not hold"} <= got:
        return "depends on the setting"
    return "held where conclusive" if "held" in got else "did not hold where conclusive"


def conclusion(frame: pd.DataFrame, criteria: Mapping[str, Criterion] | None = None,
               labels: Mapping[str, str] | None = None) -> str:
    """A notebook's conclusion from its verdicts, in plain words: each claim once (the claim sentence of
    ``criteria``, else its name), grouped by :func:`claim_status` on models at their floor, with the
    settings and estimates where it did not hold or depends on the setting, then what is counted apart.
    Sanity checks (``criteria``' ``sanity``) are named apart; ``labels`` put the subjects in words
    (:func:`subject_in_words`). Empty without quality columns."""
    if "regime" not in frame or frame.empty:
        return ""
    criteria = criteria or {}

    def words(name: str) -> str:
        c = criteria.get(name)
        return c.claim if c is not None else f"`{name}`"

    def rows_of(rows: pd.DataFrame, verdict: str | None = None) -> str:
        rows = judged_rows(rows)
        if verdict is not None:
            rows = rows[rows["verdict"] == verdict]
        return "; ".join(f"{subject_in_words(r.subject, labels or {})}: {fmt(r.estimate)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]"
                         for r in rows.itertuples(index=False))

    groups: dict[str, list[str]] = {}
    sanity = []
    for name, rows in frame.groupby("claim", sort=False):
        if name in criteria and criteria[name].sanity:
            sanity.append(f"{words(name)} ({claim_status(rows)})")
            continue
        status = claim_status(rows)
        if status in ("did not hold", "did not hold where conclusive"):
            text = f"{words(name)} ({rows_of(rows, 'did not hold')})"
        elif status == "depends on the setting":
            text = (f"{words(name)} (held: {rows_of(rows, 'held')}; did not hold: {rows_of(rows, 'did not hold')})")
        elif status == "inconclusive":
            text = f"{words(name)} ({rows_of(rows)})"
        else:
            text = words(name)
        groups.setdefault(status, []).append(text)
    lead = {"held": "Held", "held where conclusive": "Held where conclusive (inconclusive elsewhere)",
            "did not hold": "Did not hold", "did not hold where conclusive":
            "Did not hold where conclusive (inconclusive elsewhere)", "depends on the setting":
            "Depends on the setting", "inconclusive": "Inconclusive (more units would decide)",
            "only on models below floor": "Judged only on models below their floor (no verdict on the paper)",
            "only with a method stopped by its budget": "Judged only with a method stopped by its step budget "
            "(no verdict on the paper)", "not run at this profile": "Not run at this profile"}
    lines = ["**Conclusion**, each claim once over its settings, judged on the models at their accuracy floor:", ""]
    for status in CLAIM_STATUSES:
        if status in groups:
            lines.append(f"- **{lead[status]}**: " + "; ".join(groups[status]) + ".")
    missed = any(s in groups for s in ("did not hold", "did not hold where conclusive", "depends on the setting"))
    if missed:
        lines += ["", "Where a claim did not hold, its models are as accurate as the declared baselines: these are "
                  "findings about them, not artefacts of undertrained models (the papers' own models are larger)."]
    low = below_floor(frame)
    if low.any():
        floor, bound = apart_counts(frame)
        what = " and ".join(x for x in (f"{floor} on models below their floor" if floor else "",
                                        f"{bound} on a method stopped by its budget" if bound else "") if x)
        lines += ["", f"Counted apart: {what} (row(s) that keep their statistic but do not test the papers' claims)."]
    if sanity:
        lines += ["", "Sanity checks (true by construction, not counted): " + "; ".join(sanity) + "."]
    return "\n".join(lines)


def apart_counts(frame: pd.DataFrame) -> tuple[int, int]:
    """The rows counted apart (:func:`below_floor`), split: ``(on models below their floor or with none
    declared, on a method stopped by its budget)``."""
    low = below_floor(frame)
    bound = int(frame.loc[low, "regime"].eq("budget-bound").sum())
    return int(low.sum()) - bound, bound


def below_floor(frame: pd.DataFrame) -> pd.Series:
    """Which rows are counted apart: on models below their accuracy floor or with none declared (all False
    without a ``regime`` column)."""
    if "regime" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["regime"].isin(APART)


def tally_sentence(frame: pd.DataFrame) -> str:
    """``Tally: 3 held, ...``; rows on models below their floor are counted apart."""
    low = below_floor(frame)
    text = "Tally: " + ", ".join(f"{v} {k}" for k, v in counts(frame[~low]).items()) + "."
    if low.any():
        floor, bound = apart_counts(frame)
        what = " or ".join(x for x in ("on models below their accuracy floor" if floor else "",
                                       "on a method stopped by its budget" if bound else "") if x)
        text += (f" Counted apart, {what} (not tests of the papers' claims): "
                 + ", ".join(f"{v} {k}" for k, v in counts(frame[low]).items()) + ".")
    return text


def check_declared(frame: pd.DataFrame, criteria: Mapping[str, Criterion]) -> None:
    """Raise if a verdict row names a claim that was not declared, or a declared claim has no row."""
    used, declared = set(frame["claim"]), set(criteria)
    if used - declared or declared - used:
        raise CriteriaError(f"verdict rows and declared criteria differ: undeclared {sorted(used - declared)}, "
                            f"never judged {sorted(declared - used)}")
