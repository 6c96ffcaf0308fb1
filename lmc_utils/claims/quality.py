"""Models worth judging: declared accuracy floors, and every verdict row tagged with its models' quality.

A verdict is about a paper only when its models are as good as the paper's (or a standard baseline's
for that data and architecture). Every experiment config in ``params/<profile>.yaml`` therefore
declares, next to its training fields, the test accuracy its models must reach and where that number
comes from::

    mlp_mnist:
      dataset: mnist
      ...
      quality: {floor: 0.98, reference: "Ainsworth et al. 2023, MNIST MLP: ~98.5% test accuracy"}

``shortfall`` says, where a profile's budget cannot reach the floor, why (it is repeated with every row
below it). ``floor`` is one number, or one per arm of a sweep (``{"width 16": 0.956, ...}``: the arms a study
names, see :func:`record`); ``poor`` marks what is meant to be poor (a claim's degraded arm, a width
too narrow to learn) with the reason, for the whole config (a string) or per arm (``{"wd 0.5": why}``).
The ``quality`` key is not a training field: :func:`strip` takes every declaration out of a notebook's
parameters when they are resolved (:func:`lmc_utils.run.profiles.resolve`) and declares it under its
experiment's name, so it never enters a model's cache key.

Studies record the test accuracy of the models they judge (:func:`record`, one entry per experiment
and arm); :func:`attach` then gives every verdict row the columns :data:`QUALITY_COLUMNS`:

- ``endpoint_accuracy``: mean test accuracy of the models behind the row;
- ``floor``: the floor those models had to reach (the tightest one when several configs are behind it);
- ``regime``: ``at floor``; ``below floor`` or ``no floor declared`` (the row keeps its statistic, but
  does not test the paper's claim: it is counted apart, :data:`APART`); ``poor by design`` (every model
  behind it is meant to be poor); or ``not measured`` (no models: a claim not run);
- ``quality_note``: which arms were below their floor, or why they are poor by design.

A method can be short of its regime too: a row whose statistic rests on a search that stopped at its
step cap instead of converging (STE with a fixed budget) is ``budget-bound`` (:func:`record_budget_bound`:
the study names the claims and why), counted apart like a row below its floor.

Which models are behind a row is read from its subject: the experiment whose name starts the subject
(or the only one the notebook recorded), narrowed to the arms the subject names (``width 8``,
``wd 0.05``); a subject naming none of them is about the experiment's main arm (recorded as ``""``)
where it has one, otherwise about every arm.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

QUALITY_KEY = "quality"
QUALITY_COLUMNS = ["endpoint_accuracy", "floor", "regime", "quality_note"]
REGIMES = ("at floor", "below floor", "no floor declared", "budget-bound", "poor by design", "not measured")
APART = ("below floor", "no floor declared", "budget-bound")  # regimes counted apart: not tests of the papers' claims


class QualityError(ValueError):
    """A malformed ``quality`` declaration of an experiment config."""


@dataclass(frozen=True)
class Quality:
    """The declared quality of one experiment config: a floor (one, or per arm), its reference, and
    what is poor by design (the whole config, or per arm)."""

    floor: float | Mapping[str, float] | None = None
    reference: str = ""
    poor: str | Mapping[str, str] | None = None
    shortfall: str = ""  # why this profile's models may not reach the floor (said with every row below it)

    def __post_init__(self) -> None:
        floors = self.floor.values() if isinstance(self.floor, Mapping) else [self.floor]
        for f in floors:
            if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1):
                raise QualityError(f"quality: a floor is a test accuracy in (0, 1], got {f!r}")
        if self.floor is None and self.poor is None:
            raise QualityError("quality: declare a floor (test accuracy its models must reach) or say why the "
                               "config is poor by design (poor: <reason>)")
        if not isinstance(self.reference, str) or not self.reference.strip():
            raise QualityError("quality: name the reference the floor comes from (reference: <paper, table / "
                               "standard baseline>)")
        if isinstance(self.poor, Mapping) and not all(isinstance(v, str) and v for v in self.poor.values()):
            raise QualityError(f"quality: poor must map each arm to its reason, got {dict(self.poor)!r}")

    @classmethod
    def parse(cls, spec: Any, where: str = "") -> "Quality":
        """A :class:`Quality` from the ``quality`` mapping of a config (``where`` names it in errors)."""
        if isinstance(spec, Quality):
            return spec
        if not isinstance(spec, Mapping):
            raise QualityError(f"{where}: quality must be a mapping with floor, reference (and poor), got {spec!r}")
        unknown = sorted(set(spec) - {"floor", "reference", "poor", "shortfall"})
        if unknown:
            raise QualityError(f"{where}: quality has unknown keys {unknown} (known: floor, reference, poor, shortfall)")
        floor = spec.get("floor")
        if isinstance(floor, Mapping):
            floor = {str(k): v for k, v in floor.items()}
        poor = spec.get("poor")
        if isinstance(poor, Mapping):
            poor = {str(k): v for k, v in poor.items()}
        try:
            return cls(floor=floor, reference=spec.get("reference", ""), poor=poor,
                       shortfall=str(spec.get("shortfall") or ""))
        except QualityError as err:
            raise QualityError(f"{where}: {err}") from None

    def floor_of(self, arm: str = "") -> float | None:
        """The floor of ``arm`` (``None``: poor by design, or no floor declared for it). A nested arm
        (``width 128 / spawned``) has the floor of its first part where it has none of its own."""
        if self.poor_reason(arm) is not None:
            return None
        if isinstance(self.floor, Mapping):
            return self.floor.get(arm, self.floor.get(arm.split(" / ", 1)[0]))
        return self.floor

    def poor_reason(self, arm: str = "") -> str | None:
        """Why ``arm`` (or the first part of a nested arm) is poor by design, or ``None``."""
        if isinstance(self.poor, str):
            return self.poor
        if isinstance(self.poor, Mapping):
            return self.poor.get(arm, self.poor.get(arm.split(" / ", 1)[0]))
        return None


_declared: dict[str, Quality] = {}


def strip(values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """A notebook's parameters without their ``quality`` declarations, each declared (:func:`declare`)
    under the name of the experiment it belongs to: the key of the mapping holding it (the rung's name
    for a ``config`` mapping). Nothing else changes, so the training fields build a ``TrainConfig`` as
    before and the declaration never enters a model's cache key."""

    def walk(value: Any, name: str, parent: str) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if k == QUALITY_KEY:
                    owner = parent if name == "config" and parent else name
                    declare(owner, Quality.parse(v, f"{where}{'.' if where else ''}{owner}"))
                    continue
                out[k] = walk(v, str(k), name)
            return out
        return value

    return {k: walk(v, str(k), "") for k, v in values.items()}


def declare(experiment: str, quality: Quality) -> None:
    """Declare the quality of ``experiment``'s models in this process (:func:`strip` does it)."""
    _declared[experiment] = quality


def declared(experiment: str) -> Quality | None:
    """The quality declared for ``experiment`` in this process, or ``None``."""
    return _declared.get(experiment)


def is_train_config(value: Any) -> bool:
    """Whether a params value is an experiment's training config (a mapping with ``dataset`` and ``arch``)."""
    return isinstance(value, Mapping) and "dataset" in value and "arch" in value


def train_configs(section: Any, path: str = "") -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Every training config in a params section, with its path (``experiments.mlp_mnist``)."""
    if is_train_config(section):
        yield path, section
        return
    if isinstance(section, Mapping):
        for k, v in section.items():
            yield from train_configs(v, f"{path}.{k}" if path else str(k))


# --------------------------------------------------------------------------- the models behind verdicts


@dataclass
class Entry:
    """The models of one experiment arm: their test accuracies and the declared quality."""

    experiment: str
    arm: str
    accuracies: dict[str, float] = field(default_factory=dict)  # model key -> test accuracy
    declared_as: str = ""  # the name its quality is declared under ("": the experiment's)

    def _nested(self) -> tuple[str, str] | None:
        """``(declared experiment, arm)`` when this experiment is named ``<name> / <arm>`` (notebook 10's
        ``vgg11_ln / width 0.125``) and only ``<name>`` is declared: then it is that arm of ``<name>``."""
        name = self.declared_as or self.experiment
        if declared(name) is None and " / " in name:
            head, tail = name.split(" / ", 1)
            if declared(head) is not None:
                return head, f"{tail} / {self.arm}" if self.arm else tail
        return None

    def _declaration(self) -> tuple[Quality | None, str]:
        """The declared quality and the arm within it."""
        nested = self._nested()
        if nested is not None:
            return declared(nested[0]), nested[1]
        return declared(self.declared_as or self.experiment), self.arm

    @property
    def quality(self) -> Quality | None:
        return self._declaration()[0]

    @property
    def declared_arm(self) -> tuple[str, str]:
        """``(experiment, arm)`` as declared: ``vgg11_ln / width 0.125`` at arm ``spawned`` is
        ``(vgg11_ln, width 0.125 / spawned)`` where only ``vgg11_ln`` is declared."""
        return self._nested() or (self.experiment, self.arm)

    @property
    def accuracy(self) -> float:
        return sum(self.accuracies.values()) / len(self.accuracies) if self.accuracies else math.nan

    @property
    def floor(self) -> float | None:
        quality, arm = self._declaration()
        return quality.floor_of(arm) if quality is not None else None

    @property
    def poor_reason(self) -> str | None:
        quality, arm = self._declaration()
        return quality.poor_reason(arm) if quality is not None else None

    @property
    def below(self) -> bool:
        return self.floor is not None and self.accuracy < self.floor

    @property
    def label(self) -> str:
        return f"{self.experiment} / {self.arm}" if self.arm else self.experiment


_ledger: dict[tuple[str, str], Entry] = {}


def record(experiment: str, arm: str, accuracies: Mapping[str, float], declared_as: str = "") -> Entry:
    """Note the test accuracies (model key -> accuracy) of models of ``experiment`` / ``arm`` (``""``: the
    experiment has one arm; otherwise the label the verdict subjects use, e.g. ``width 8``); their floor
    is the one declared for the experiment. Recording a model twice keeps one value; a later call adds
    models. ``declared_as``: the params name the quality is declared under, where the verdicts name the
    experiment otherwise (notebook 05's ``redundancy_moons`` is ``moons`` in its verdicts)."""
    entry = _ledger.setdefault((experiment, arm), Entry(experiment, arm, declared_as=declared_as))
    entry.accuracies.update({str(k): float(v) for k, v in accuracies.items()})
    return entry


_budget_bound: dict[str, str] = {}  # claim -> why the method behind it did not run to convergence


def record_budget_bound(claims: Iterable[str], why: str) -> None:
    """Note that the rows of ``claims`` rest on a method stopped by its budget, not by convergence
    (e.g. STE runs that hit their step cap), with the reason; :func:`attach` tags them ``budget-bound``."""
    for claim in claims:
        _budget_bound[str(claim)] = why


def recorded() -> list[Entry]:
    """The entries recorded in this process, in recording order."""
    return list(_ledger.values())


def clear() -> None:
    """Forget every recorded entry and declaration (a new notebook run in the same process)."""
    _ledger.clear()
    _declared.clear()
    _budget_bound.clear()


def _names(subject: str, name: str) -> bool:
    """Whether ``subject`` names ``name`` as a whole token (``width 8`` not in ``width 80``)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", subject) is not None


def behind(subject: str, entries: Iterable[Entry] | None = None) -> list[Entry]:
    """The entries whose models are behind a verdict row about ``subject``."""
    entries = list(recorded() if entries is None else entries)
    experiments = list(dict.fromkeys(e.experiment for e in entries))
    starting = [x for x in experiments if re.match(rf"{re.escape(x)}(?![\w.])", subject)]
    # or every word of the name in the subject ("kaiming_normal: rmsprop vs adamw" is about two of them)
    worded = [x for x in experiments if all(_names(subject, w) for w in re.split(r"[\s,/:]+", x) if w)]
    if starting:
        chosen = max(starting, key=len)
        pool = [e for e in entries if e.experiment == chosen]
        subject = subject[len(chosen):]
    elif worded:
        pool = [e for e in entries if e.experiment in worded]
    elif len(experiments) == 1:
        pool = entries
    else:
        named = [e for e in entries if e.arm and _names(subject, e.arm)]
        pool = named or entries
    named = [e for e in pool if e.arm and _names(subject, e.arm)]
    return named or [e for e in pool if not e.arm] or pool


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def assess(subject: str, entries: Iterable[Entry] | None = None) -> dict[str, Any]:
    """The quality columns (:data:`QUALITY_COLUMNS`) of a verdict row about ``subject``."""
    found = [e for e in behind(subject, entries) if e.accuracies]
    if not found:
        return {"endpoint_accuracy": math.nan, "floor": math.nan, "regime": "not measured", "quality_note": ""}
    judged = [e for e in found if e.poor_reason is None]
    if not judged:
        return {"endpoint_accuracy": _mean(found), "floor": math.nan, "regime": "poor by design",
                "quality_note": "; ".join(dict.fromkeys(f"{e.label}: {e.poor_reason}" for e in found))}
    floored = [e for e in judged if e.floor is not None]
    worst = min(floored, key=lambda e: e.accuracy - e.floor) if floored else None
    below = [e for e in floored if e.below]
    notes = [f"{e.label}: {_pct(e.accuracy)} < floor {_pct(e.floor)}" for e in below]
    notes += list(dict.fromkeys(e.quality.shortfall for e in below if e.quality.shortfall))
    notes += [f"{e.label}: no floor declared" for e in judged if e.floor is None]
    return {"endpoint_accuracy": _mean(judged), "floor": worst.floor if worst is not None else math.nan,
            "regime": "below floor" if below else "no floor declared" if len(floored) < len(judged) else "at floor",
            "quality_note": "; ".join(notes)}


def _mean(entries: list[Entry]) -> float:
    values = [a for e in entries for a in e.accuracies.values()]
    return sum(values) / len(values)


def attach(frame: pd.DataFrame, entries: Iterable[Entry] | None = None,
           budget_bound: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``frame`` (verdict rows) with the quality columns of each row; rows judged on no units are
    ``not measured``; rows of a claim in ``budget_bound`` (default: :func:`record_budget_bound`'s) whose
    models are at their floor are ``budget-bound``, the reason added to their note."""
    entries = list(recorded() if entries is None else entries)
    bound = dict(_budget_bound if budget_bound is None else budget_bound)
    frame = frame.copy()
    rows = []
    for r in frame.itertuples(index=False):
        q = assess(str(r.subject), entries)
        if int(getattr(r, "n", 0) or 0) == 0:
            q = {**q, "regime": "not measured"}
        elif str(getattr(r, "claim", "")) in bound and q["regime"] in ("at floor", "no floor declared", "below floor"):
            why = bound[str(r.claim)]
            q = {**q, "regime": "budget-bound" if q["regime"] == "at floor" else q["regime"],
                 "quality_note": "; ".join(x for x in (q["quality_note"], why) if x)}
        rows.append(q)
    for col in QUALITY_COLUMNS:
        frame[col] = [q[col] for q in rows]
    return frame


def below_floor_lines(folder: str | Path) -> list[str]:
    """One line per experiment arm below its floor (or without one) in a figures folder's
    ``NN_models.csv`` tables (the runner's summary lists them)."""
    lines = []
    for path in sorted(Path(folder).glob("[0-9][0-9]_models.csv")):
        try:
            table = pd.read_csv(path, dtype={"experiment": str, "arm": str, "status": str})
        except (OSError, pd.errors.EmptyDataError):
            continue
        for r in table.itertuples(index=False):
            if r.status not in APART:
                continue
            arm = f" / {r.arm}" if isinstance(r.arm, str) and r.arm else ""
            floor = f" < floor {100 * r.floor:.1f}%" if r.floor == r.floor else " (no floor declared)"
            lines.append(f"{path.name[:2]} {r.experiment}{arm}: {100 * r.test_accuracy:.1f}% test accuracy"
                         f"{floor} ({int(r.models)} models)")
    return lines


def summary(entries: Iterable[Entry] | None = None) -> pd.DataFrame:
    """One row per recorded experiment arm (arms recorded under a nested name, such as notebook 10's
    ``vgg11_ln / width 0.125``, merged into their declared experiment's): models, mean / lowest test
    accuracy, floor, status (one of :data:`REGIMES`)."""
    merged: dict[tuple[str, str], Entry] = {}
    for e in (recorded() if entries is None else entries):
        if not e.accuracies:
            continue
        experiment, arm = e.declared_arm
        if (experiment, arm) not in merged:
            merged[(experiment, arm)] = Entry(experiment, arm, declared_as=e.declared_as)
        merged[(experiment, arm)].accuracies.update(e.accuracies)
    out = []
    for e in merged.values():
        status = "poor by design" if e.poor_reason is not None else (
            "no floor declared" if e.floor is None else "below floor" if e.below else "at floor")
        out.append({"experiment": e.experiment, "arm": e.arm, "models": len(e.accuracies),
                    "test_accuracy": e.accuracy, "lowest": min(e.accuracies.values()),
                    "floor": e.floor if e.floor is not None else math.nan, "status": status,
                    "reference": e.poor_reason or (e.quality.reference if e.quality else "")})
    return pd.DataFrame(out, columns=["experiment", "arm", "models", "test_accuracy", "lowest", "floor", "status",
                                      "reference"])
