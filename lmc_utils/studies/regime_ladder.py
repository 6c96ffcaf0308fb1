"""The regime ladder (notebook 10): notebooks 01–05's claims, judged by their own declared
criteria, on rungs where the differences they describe have room to show.

A *rung* is an architecture family at one or more widths (``zoo.with_width``: hidden units for
MLPs, a channel multiplier for conv nets). Its experiments are named ``"<rung> / width <w>"``, so
every verdict's subject starts with the rung and width and a claim's statistic can be drawn
against width (:func:`claim_vs_width`). Each study is the one its notebook runs
(:mod:`~lmc_utils.studies.distance_taylor`, :mod:`~lmc_utils.studies.singular_vectors`,
:mod:`~lmc_utils.studies.three_models`, :mod:`~lmc_utils.studies.renormalisation`,
:mod:`~lmc_utils.studies.pruning`), on the models of the rung (shared through the zoo cache with
any notebook training the same configs); only the parts whose claims the ladder judges are run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from ..core import data as data_mod
from ..claims import verdicts as V
from .. import zoo
from ..core.device import get_device
from ..measure.evaluation import evaluate
from . import distance_taylor, pruning, renormalisation, singular_vectors, three_models
from . import quality

NOTEBOOK = "10_regime_ladder"
STUDIES = ("distance_taylor", "singular_vectors", "three_models", "renormalisation", "pruning")
# the variants the ladder's claims read (renorm_beats_none, rescale_beats_repair, matching_needed)
LADDER_VARIANTS = ("none", "REPAIR", "RESCALE", "indep. RESCALE", "RESET")
_MODULES = {"distance_taylor": distance_taylor, "singular_vectors": singular_vectors,
            "three_models": three_models, "renormalisation": renormalisation, "pruning": pruning}
_SUBJECT = re.compile(r"^(?P<rung>[^/]+?) / width (?P<width>[0-9.e+-]+)(?: / (?P<detail>.*))?$")
_POOLED = re.compile(r"^(?P<rung>[^/]+?) / mean over (?P<widths>\d+) widths(?: / (?P<detail>.*))?$")
# what a verdict judges: the mean over a rung's widths (one verdict per claim, rung and subject detail;
# the widths' own intervals are the claim-vs-width figure's readings), or each width on its own
VERDICT_UNITS = ("rung", "width")


@dataclass(frozen=True)
class Rung:
    """One rung: a base config, its widths and the studies run on it (in :data:`STUDIES`)."""

    name: str
    config: zoo.TrainConfig
    widths: tuple[float, ...]
    studies: tuple[str, ...]

    def experiment(self, width: float) -> str:
        return f"{self.name} / width {width}"


def rungs(spec: Mapping[str, Mapping[str, Any]]) -> list[Rung]:
    """Rungs from the params' ``rungs`` mapping ``name -> {config, widths, studies}``; unknown
    studies, empty width lists or a name containing ``/`` are errors (the subject grammar)."""
    out = []
    for name, entry in spec.items():
        unknown = sorted(set(entry) - {"config", "widths", "studies"})
        if unknown or "config" not in entry:
            raise ValueError(f"rung {name!r}: needs 'config' (and 'widths', 'studies'); unknown keys {unknown}")
        if "/" in name:
            raise ValueError(f"rung name {name!r} must not contain '/'")
        widths = tuple(entry.get("widths") or ())
        if not widths:
            raise ValueError(f"rung {name!r}: give at least one width")
        studies = tuple(entry.get("studies") or ())
        bad = sorted(set(studies) - set(STUDIES))
        if bad:
            raise ValueError(f"rung {name!r}: unknown studies {bad}; choose from {', '.join(STUDIES)}")
        cfg = entry["config"]
        out.append(Rung(name, cfg if isinstance(cfg, zoo.TrainConfig) else zoo.TrainConfig(**cfg), widths, studies))
    return out


def select(ladder: Sequence[Rung], n_triples: Mapping[str, int] | None = None,
           studies: Sequence[str] | None = None) -> list[Rung]:
    """The rungs and studies a run measures: each rung's studies restricted to ``studies`` (all when
    ``None``), ``three_models`` dropped where ``n_triples`` gives the rung none, and rungs left with
    no study dropped."""
    if studies is not None:
        bad = sorted(set(studies) - set(STUDIES))
        if bad:
            raise ValueError(f"unknown studies {bad}; choose from {', '.join(STUDIES)}")
    triples = dict(n_triples or {})
    out = []
    for r in ladder:
        kept = tuple(s for s in r.studies if (studies is None or s in studies)
                     and (s != "three_models" or int(triples.get(r.name, 0)) > 0))
        if kept:
            out.append(Rung(r.name, r.config, r.widths, kept))
    return out


@dataclass
class Result:
    """Per study, the result objects of its notebook's study (one per rung and width; one per rung
    for ``singular_vectors``, which sweeps the widths itself), the endpoints' test loss and
    accuracy per experiment and model, and each experiment's rung and width."""

    results: dict[str, list] = field(default_factory=dict)  # study -> [its Result, ...]
    endpoints: pd.DataFrame = field(default_factory=pd.DataFrame)
    widths: dict[str, tuple[str, float]] = field(default_factory=dict)  # experiment -> (rung, width)


def run(ladder: Sequence[Rung], n_pairs: Mapping[str, int], *, n_triples: Mapping[str, int] | None = None,
        spawned_pairs: Mapping[str, int] | None = None, n_orders: int = 3, parent_epochs: int = 2,
        loss_subset: int | None = 5000, match_samples: int | None = 2000, eval_subset: int | None = 2000,
        ste: Mapping | None = None, judge_sparsity: float = 0.8, seed: int = 0, device="auto",
        progress: bool = True, matcher: str = "iterative", sinkhorn: Mapping | None = None,
        studies: Sequence[str] | None = None, pairs_by_study: Mapping[str, Mapping[str, int]] | None = None) -> Result:
    """Every rung's studies, at every width of the rung.

    Units per width (the seeds of notebooks 01–05, so models are shared through the cache):
    ``n_pairs[rung]`` independent pairs (seeds ``seed .. seed + 2 n_pairs - 1``; the pruning study
    judges each of these models), ``n_triples[rung]`` triples for the three-model study (seeds
    ``seed + 3i ..``; 0 skips it) and ``spawned_pairs[rung]`` spawned pairs for the Taylor
    estimate's same-basin control (parents trained ``parent_epochs``; default ``n_pairs``, 0: none).
    ``ste``: keyword arguments of :func:`~lmc_utils.matching.ste_matching`. ``matcher`` and
    ``sinkhorn``: weight matching's solver in the ``distance_taylor`` and ``three_models`` studies
    (:func:`lmc_utils.rebasin.align`); the other studies match with the iterative solver.
    ``studies``: run only these of each rung's studies (default: all of them); a rung left with
    nothing to run (:func:`select`) is skipped, endpoints included. ``pairs_by_study``: at most this
    many pairs for some studies of a rung (``rung -> {study: pairs}``, at least 2; the first pairs,
    so the same models), e.g. where a study's verdicts are decided with fewer units.
    """
    dev = get_device(device)
    ladder = list(ladder)
    missing = sorted({r.name for r in ladder} - set(n_pairs))
    if missing:
        raise ValueError(f"n_pairs has no entry for rungs {missing}")
    triples, spawned = dict(n_triples or {}), dict(spawned_pairs or {})
    study_pairs = _pairs_by_study(ladder, n_pairs, pairs_by_study or {})
    ladder = select(ladder, triples, studies)
    out = Result(widths={r.experiment(w): (r.name, float(w)) for r in ladder for w in r.widths})
    rows = []
    for r in ladder:
        pairs = int(n_pairs[r.name])
        units = lambda study: study_pairs.get(r.name, {}).get(study, pairs)  # noqa: E731
        for w in r.widths:
            name, cfg = r.experiment(w), zoo.with_width(r.config, w)
            test = data_mod.load(cfg.dataset, "test", subset=eval_subset, device=dev)
            models = zoo.get_many([cfg.replace(seed=seed + j) for j in range(2 * pairs)], device=dev)
            quality.record(r.name, models, arm=f"width {w}", device=dev)
            for k, t in enumerate(models):
                loss, acc = evaluate(t.model, test)
                rows.append({"experiment": name, "rung": r.name, "width": float(w), "model": k, "loss": loss,
                             "accuracy": acc})
            add = lambda study, res: out.results.setdefault(study, []).append(res)  # noqa: E731
            if "distance_taylor" in r.studies:
                add("distance_taylor", distance_taylor.run(
                    {name: cfg}, units("distance_taylor"), parent_epochs, loss_subset, match_samples,
                    n_orders=n_orders, seed=seed, device=dev, progress=progress,
                    n_spawned=int(spawned.get(r.name, units("distance_taylor"))), matcher=matcher,
                    sinkhorn=sinkhorn))
            if "three_models" in r.studies:  # select kept it: the rung has triples
                add("three_models", three_models.run({name: cfg}, int(triples[r.name]), n_orders, dict(ste or {}),
                                                     match_samples=match_samples, eval_subset=eval_subset,
                                                     seed=seed, device=dev, planes=False, matcher=matcher,
                                                     sinkhorn=sinkhorn))
            if "renormalisation" in r.studies:
                add("renormalisation", _renormalisation(name, cfg, units("renormalisation"), n_orders, eval_subset,
                                                        match_samples, seed, dev, progress))
            if "pruning" in r.studies:
                add("pruning", _pruning(name, cfg, 2 * units("pruning"), judge_sparsity, eval_subset, match_samples,
                                        seed, dev))
        if "singular_vectors" in r.studies:  # one call over the widths: its slope claims need them all
            out.results.setdefault("singular_vectors", []).append(singular_vectors.run(
                {r.name: r.config}, {r.name: list(r.widths)}, units("singular_vectors"), n_orders=n_orders,
                match_samples=match_samples, eval_subset=eval_subset, seed=seed, device=dev))
    out.endpoints = pd.DataFrame(rows)
    return out


def _pairs_by_study(ladder: Sequence[Rung], n_pairs: Mapping[str, int],
                    given: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """``pairs_by_study`` checked against the ladder (known rungs, pair-based studies, at least 2
    pairs; ``three_models`` counts triples: set ``n_triples`` instead), capped at ``n_pairs[rung]``."""
    names = {r.name for r in ladder}
    out: dict[str, dict[str, int]] = {}
    for rung, by_study in given.items():
        if rung not in n_pairs:
            raise ValueError(f"pairs_by_study: unknown rung {rung!r}; the rungs are {', '.join(sorted(n_pairs))}")
        if rung not in names:
            continue  # not run this time (select dropped it)
        for study, k in dict(by_study or {}).items():
            if study not in STUDIES or study == "three_models":
                raise ValueError(f"pairs_by_study[{rung!r}]: {study!r} is not a pair-based study; choose from "
                                 f"{', '.join(s for s in STUDIES if s != 'three_models')} (triples: n_triples)")
            if int(k) < 2:
                raise ValueError(f"pairs_by_study[{rung!r}][{study!r}] = {k}: an interval needs at least 2 pairs")
            out.setdefault(rung, {})[study] = min(int(k), int(n_pairs[rung]))
    return out


def _renormalisation(name: str, cfg: zoo.TrainConfig, n_pairs: int, n_orders: int, eval_subset, stats_samples,
                     seed: int, dev, progress: bool) -> renormalisation.Result:
    """Notebook 04's midpoint ablation only (no curves, bias or re-training study), with the
    variants of :data:`LADDER_VARIANTS`."""
    pairs = zoo.independent_pairs(cfg, n_pairs, seed=seed, device=dev)
    stats = data_mod.load(cfg.dataset, "train", subset=stats_samples, seed=seed + 1, device=dev)
    test = data_mod.load(cfg.dataset, "test", subset=eval_subset, device=dev)
    abl, col = renormalisation.midpoint_ablation(pairs, test, stats.x, stats, methods=("weight", "naive"),
                                                 n_orders=n_orders, progress=progress, variants=LADDER_VARIANTS)
    empty = pd.DataFrame()
    return renormalisation.Result(ablation=abl.assign(experiment=name), collapse=col.assign(experiment=name),
                                  curves=empty, activations=empty, bias_curves=empty, retraining=empty,
                                  target_accuracy=float("nan"), bias_experiment="", retrain_experiment="",
                                  experiments={name: renormalisation.norm_kind(cfg)})


def _pruning(name: str, cfg: zoo.TrainConfig, n_models: int, sparsity: float, eval_subset, renorm_samples,
             seed: int, dev) -> pruning.Result:
    """Notebook 05's global magnitude pruning at the judged sparsity, as pruned and re-normalised."""
    ev = {name: data_mod.load(cfg.dataset, "test", subset=eval_subset, device=dev)}
    rd = {name: data_mod.load(cfg.dataset, "train", subset=renorm_samples, seed=seed + 7, device=dev)}
    swept = pruning.pruning_sweep({name: cfg}, [sparsity], ["global_magnitude"], ev, rd, rd, [None], [], sparsity,
                                  n_models=n_models, curve_models=0, seed=seed, device=dev)
    empty = pd.DataFrame()
    return pruning.Result(**swept, units=empty, barriers=empty, judge_sparsity=sparsity, judge_width=0,
                          merge_tol=0.0)


def check_unit(unit: str) -> str:
    """``unit`` if it is one of :data:`VERDICT_UNITS` (call it before any work), else a ValueError."""
    if unit not in VERDICT_UNITS:
        raise ValueError(f"verdict_unit must be one of {', '.join(VERDICT_UNITS)}, got {unit!r}")
    return unit


def verdicts(result: Result, criteria: Mapping[str, V.Criterion], unit: str = "rung") -> pd.DataFrame:
    """The ladder's verdict table. ``unit="rung"`` (the declared default): one verdict per claim,
    rung and subject detail, on the mean over the rung's widths (:func:`pool_widths` of
    :func:`per_width`); ``"width"``: :func:`per_width`, a verdict at every width."""
    table = per_width(result, criteria)
    return table if check_unit(unit) == "width" else pool_widths(table, criteria)


def per_width(result: Result, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """Every study's own verdicts (judged with its notebook's criteria,
    as declared for notebook 10 in ``params/criteria.yaml``), restricted to the claims the ladder
    declares, with ``notebook`` = :data:`NOTEBOOK` and the columns ``source`` (the notebook whose
    study and claim it is), ``rung`` and ``width`` (NaN for a claim over all widths). A declared
    claim no rung judged has one inconclusive row with ``n`` = 0, an empty ``rung`` and a subject
    saying why (:func:`_not_judged`), so a run of some of the rungs is still a complete table."""
    frames = []
    for study, results in result.results.items():
        module = _MODULES[study]
        own = V.load_criteria(_MODULES[study].NOTEBOOK)
        for res in results:
            t = module.verdicts(res, own)
            # a claim a rung cannot measure (a slope over one width) has no units: left out
            frames.append(t[t["claim"].isin(list(criteria)) & (t["n"] > 0)].assign(source=_MODULES[study].NOTEBOOK))
    table = pd.concat(frames, ignore_index=True) if frames else V.table([])
    parsed = table["subject"].map(_parse_subject)
    table["rung"] = [p[0] for p in parsed]
    table["width"] = [p[1] for p in parsed]
    unjudged = [claim for claim in criteria if claim not in set(table["claim"])]
    if unjudged:  # the study whose notebook declares each (the first in STUDIES; criteria.yaml read once each)
        owner = {c: s for s in reversed(STUDIES) for c in V.load_criteria(_MODULES[s].NOTEBOOK)}
        unjudged = [_not_judged(claim, criteria[claim], owner.get(claim, ""), result) for claim in unjudged]
        table = pd.concat([table, pd.DataFrame(unjudged)], ignore_index=True)
    table = table.assign(notebook=NOTEBOOK)
    order = {c: k for k, c in enumerate(criteria)}
    table = table.assign(_o=table["claim"].map(order)).sort_values(["_o", "rung", "width"], kind="stable")
    return V.table(table.drop(columns="_o").to_dict("records"))


def pool_widths(table: pd.DataFrame, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One verdict per claim, rung and subject detail judged at two or more widths, on the
    equal-weight mean over those widths (:func:`lmc_utils.verdicts.pooled_verdict`: each width's
    t interval gives its standard error; the widths' models are independent), with the subject
    ``"<rung> / mean over <k> widths[ / <detail>]"``, ``width`` NaN, ``widths`` (the widths pooled)
    and ``strata`` = k. Rows at one width only (a one-width rung), over all widths already (a
    slope) or not judged are kept as they are.

    Why: per width, the cpu VGG rung has 4-6 pairs; two reruns moved 11-12 of its per-width
    verdicts, all cells within ~3 standard errors of their thresholds. Pooling the widths' units
    halves the standard error and judges the claim on the family at these widths; the trend with
    width stays visible in the per-width intervals and :func:`trends`."""
    t = table.copy()
    t["_detail"] = t["subject"].map(_detail)
    at_width = t["width"].notna() & (t["rung"] != "")
    counts = t[at_width].groupby(["claim", "rung", "_detail"])["width"].transform("nunique")
    pool = at_width.copy()
    pool[at_width] = counts > 1
    rows = []
    for (claim, rung, detail), g in t[pool].groupby(["claim", "rung", "_detail"], sort=False):
        g = g.sort_values("width")
        subject = f"{rung} / mean over {len(g)} widths" + (f" / {detail}" if detail else "")
        row = V.pooled_verdict(g, criteria[claim], subject)
        rows.append({**row, "notebook": g["notebook"].iloc[0], "source": g["source"].iloc[0], "rung": rung,
                     "width": float("nan"), "widths": ", ".join(f"{w:g}" for w in g["width"])})
    out = pd.concat([t[~pool].drop(columns="_detail"), pd.DataFrame(rows)], ignore_index=True)
    order = {c: k for k, c in enumerate(criteria)}
    first = {k: i for i, k in enumerate(dict.fromkeys(zip(table["claim"], table["rung"])))}
    out = out.assign(_o=out["claim"].map(order), _r=[first.get(k, len(first)) for k in zip(out["claim"], out["rung"])])
    out = out.sort_values(["_o", "_r"], kind="stable").drop(columns=["_o", "_r"])
    return V.table(out.to_dict("records"))


def _not_judged(claim: str, criterion: V.Criterion, study: str, result: Result) -> dict:
    """The row of a declared claim no rung judged (a run of a subset of the rungs or studies, a
    profile without triples or spawned pairs, a slope on one width): inconclusive, ``n`` = 0, and
    a subject naming ``study`` (the one whose notebook declares it; empty: none) and why it gave
    no units."""
    why = (f"no rung ran the {study} study" if study not in result.results
           else f"the {study} study had no units for it (no spawned pairs or triples, or one width for a slope)")
    row = V.verdict(NOTEBOOK, criterion, f"not judged: {why}", [])
    return {**row, "source": _MODULES[study].NOTEBOOK if study else "", "rung": "", "width": float("nan")}


def _parse_subject(subject: str) -> tuple[str, float]:
    """``"vgg11_ln / width 0.25 / weight"`` -> ``("vgg11_ln", 0.25)``; a subject without a width
    (a claim over all widths, e.g. a slope) -> ``(rung, nan)``."""
    m = _SUBJECT.match(subject)
    if m:
        return m["rung"], float(m["width"])
    return subject.split(" / ")[0], float("nan")


def _detail(subject: str) -> str:
    """The subject after its rung and width, or after ``mean over <k> widths`` (e.g. ``"weight /
    REPAIR"``); empty when there is none."""
    m = _SUBJECT.match(subject) or _POOLED.match(subject)
    return (m["detail"] or "") if m else ""


def claim_vs_width(table: pd.DataFrame, claims: Sequence[str]) -> pd.DataFrame:
    """The rows of ``claims`` on rungs judged at two or more widths (a :func:`per_width` table), with
    ``detail`` (the subject after the width, e.g. the method), sorted by claim, rung, detail and
    width: the data of the claim-vs-width figure. Where verdicts are judged per rung, a width's
    ``verdict`` is a *reading* of its own interval against the threshold, not a verdict."""
    widths = table[table["width"].notna()].groupby("rung")["width"].nunique()
    families = set(widths[widths > 1].index)  # one width (the MLP rung) has no trend to draw
    t = table[table["claim"].isin(list(claims)) & table["width"].notna() & table["rung"].isin(families)].copy()
    t["detail"] = t["subject"].map(_detail)
    order = {c: k for k, c in enumerate(claims)}
    t["_o"] = t["claim"].map(order)
    return t.sort_values(["_o", "rung", "detail", "width"]).drop(columns="_o").reset_index(drop=True)


def rung_summary(table: pd.DataFrame) -> str:
    """Markdown, one bullet per rung and width (widest last, then its claims over all widths):
    which claims held, did not hold and were inconclusive there (a claim judged on several
    subjects, e.g. methods, is listed under each of its outcomes with their count), then the
    claims no rung judged. Computed from the verdict table, never written by hand."""
    lines = []
    judged = table[table["rung"] != ""]
    for (rung, width), g in judged.groupby(["rung", "width"], dropna=False):  # by rung, widest last
        where = f"{rung}, width {width:g}" if width == width else f"{rung}, over all its widths"
        parts = []
        for outcome in V.OUTCOMES:
            claims = g.loc[g["verdict"] == outcome, "claim"].value_counts(sort=False)
            if len(claims):
                parts.append(f"{outcome}: " + ", ".join(f"{c}" + (f" (x{k})" if k > 1 else "") for c, k in claims.items()))
        lines.append(f"- **{where}** — " + "; ".join(parts) + ".")
    missing = sorted(set(table.loc[table["rung"] == "", "claim"]))
    if missing:
        lines.append(f"- **not judged on any rung**: {', '.join(missing)}.")
    return "\n".join(lines)


def endpoint_summary(result: Result) -> pd.DataFrame:
    """Mean and range of the endpoints' test accuracy per rung and width."""
    e = result.endpoints
    if e.empty:
        return pd.DataFrame(columns=["rung", "width", "models", "accuracy_mean", "accuracy_min", "accuracy_max"])
    g = e.groupby(["rung", "width"], sort=False)["accuracy"]
    return pd.DataFrame({"models": g.size(), "accuracy_mean": g.mean(), "accuracy_min": g.min(),
                         "accuracy_max": g.max()}).reset_index()


def ste_budget_summary(result: Result) -> pd.DataFrame:
    """STE against its training length on every rung and width its three-model study ran
    (:func:`lmc_utils.studies.three_models.ste_budget_summary`; empty without STE budgets)."""
    runs = _ste_ladders(result)
    return three_models.ste_budget_summary(pd.concat([r.ste_budgets for r in runs], ignore_index=True)) \
        if runs else pd.DataFrame()


def _ste_ladders(result: Result) -> list:
    """The three-model results (one per rung and width) that have an STE ladder."""
    return [r for r in result.results.get("three_models", []) if r.ste_budgets is not None and not r.ste_budgets.empty]


def describe_ste_budgets(result: Result, label=lambda name: name) -> str:
    """:func:`lmc_utils.studies.three_models.describe_budgets` on every rung and width with an STE
    ladder (empty without one)."""
    runs = _ste_ladders(result)
    if not runs:
        return ""
    return three_models.describe_budgets(
        ste_budget_summary(result),
        three_models.barrier_summary(pd.concat([r.barriers for r in runs], ignore_index=True)),
        three_models.merged_summary(pd.concat([r.merged for r in runs], ignore_index=True)), label)


def matrix(table: pd.DataFrame, criteria: Mapping[str, V.Criterion] | None = None,
           widths: pd.DataFrame | None = None) -> pd.DataFrame:
    """Claim x rung/width: ``estimate [low, high] verdict`` per cell (the closing table), with the
    claim's declared ``source`` (the paper's section and number) when ``criteria`` are given. A
    claim no rung judged has its reason in the column ``not judged``; a rung's verdict over all its
    widths is in the column ``<rung> / all widths``. ``widths``: per-width rows of the rungs whose
    verdicts were pooled (:func:`claim_vs_width`), added as ``estimate [low, high]`` cells without a
    verdict (they are readings of the trend, not verdicts)."""
    t = table.copy()
    if widths is not None and len(widths):
        extra = widths.drop(columns=[c for c in ("detail",) if c in widths]).assign(verdict="")
        t = pd.concat([t, extra], ignore_index=True)
    base = list(t["claim"])
    t["where"] = [("not judged" if not r else f"{r} / width {w:g}" if w == w else f"{r} / all widths")
                  for r, w in zip(t["rung"], t["width"])]
    t["detail"] = t["subject"].map(_detail)
    t["cell"] = [f"{V.fmt(e)} [{V.fmt(lo)}, {V.fmt(hi)}] {v}".rstrip() if r else s.removeprefix("not judged: ")
                 for e, lo, hi, v, r, s in zip(t["estimate"], t["ci_low"], t["ci_high"], t["verdict"], t["rung"],
                                               t["subject"])]  # a claim no rung judged: why
    t["claim"] = [f"{c} ({d})" if d else c for c, d in zip(t["claim"], t["detail"])]
    out = t.pivot_table(index="claim", columns="where", values="cell", aggfunc="first", sort=False)
    out = out[sorted(out.columns, key=_column_order(t))]
    out.columns.name = None
    out = out.fillna("—").reset_index()  # —: a claim not judged there
    if criteria is not None:
        of = dict(zip(t["claim"], base))
        out["paper"] = [criteria[of[c]].source if of[c] in criteria else "" for c in out["claim"]]
    return out


def pooled_verdicts(table: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    """``(claim, rung, detail) -> verdict`` of the rows of ``table`` judged on the mean over a
    rung's widths (:func:`pool_widths`)."""
    p = table[table["subject"].str.match(_POOLED)]
    return {(c, r, _detail(s)): v for c, r, s, v in zip(p["claim"], p["rung"], p["subject"], p["verdict"])}


def _column_order(t: pd.DataFrame):
    """Sort key of the matrix's columns: rungs in order of appearance, each rung's widths narrowest
    first, then its ``all widths`` column; ``not judged`` last."""
    rungs = list(dict.fromkeys(r for r in t["rung"] if r))
    widths = dict(zip(t["where"], t["width"]))

    def key(where: str):
        if where == "not judged":
            return (len(rungs), 0.0)
        rung = where.split(" / ")[0]
        w = widths.get(where, float("nan"))
        return (rungs.index(rung) if rung in rungs else len(rungs), w if w == w else float("inf"))
    return key


def trends(scale: pd.DataFrame, pooled: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim, rung and detail drawn at two or more widths: the reading at each width
    (narrowest first: where its interval lies against the threshold), the estimate at the
    narrowest and the widest, and ``change``: ``rises`` / ``falls`` when neither end's estimate
    lies in the other end's interval, else ``no clear change``. Only what was measured: nothing
    beyond the widest width. ``pooled``: the verdict table judged per rung (:func:`pool_widths`),
    whose verdict on the mean over the widths is added as ``verdict (all widths)``."""
    verdict_of = pooled_verdicts(pooled) if pooled is not None and len(pooled) else {}
    rows = []
    for (claim, rung, detail), g in scale.groupby(["claim", "rung", "detail"], sort=False):
        g = g.sort_values("width")
        if len(g) < 2:
            continue
        first, last = g.iloc[0], g.iloc[-1]
        overlap = (last["ci_low"] <= first["estimate"] <= last["ci_high"]
                   or first["ci_low"] <= last["estimate"] <= first["ci_high"])
        change = "no clear change" if overlap else ("rises" if last["estimate"] > first["estimate"] else "falls")
        rows.append({"claim": claim, "rung": rung, "detail": detail, "threshold": float(first["threshold"]),
                     "readings by width": ", ".join(f"{w:g}: {v}" for w, v in zip(g["width"], g["verdict"])),
                     "narrowest": float(first["estimate"]), "widest": float(last["estimate"]), "change": change,
                     "verdict (all widths)": verdict_of.get((claim, rung, detail), "")})
    return pd.DataFrame(rows, columns=["claim", "rung", "detail", "threshold", "readings by width", "narrowest",
                                       "widest", "change", "verdict (all widths)"])
