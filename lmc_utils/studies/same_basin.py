"""Notebook 07's protocol (Qu & Horvath 2024, §3.2, §4.3, App. E.2, F.5): same basin vs re-basin,
and the implicit bias of the learning rate.

Three kinds of pairs, ``n_pairs`` of each (the units): ``independent`` (seeds ``2i, 2i + 1``),
``spawned`` (two children of one parent trained ``parent_epochs``; :func:`lmc_utils.zoo.spawned_pairs`)
and ``retrained`` (model ``2i`` and a copy of it retrained at a large then a small learning rate;
:func:`lmc_utils.zoo.retrain_config`). For every pair: test barriers after naive / weight / activation
alignment, with and without RESET for BatchNorm; a planted random permutation of one model and
whether matching returns exactly its inverse; L2 distances (BatchNorm statistics included) before
and after weight matching. Learning-rate study: independent pairs at each learning rate, and the
largest one's pairs degraded by one more epoch at that rate (App. F.5's control), and the
lr-study models' global magnitude pruning curves (App. F.4, Fig. 44). The implicit biases of weight
decay and initialisation (Sec. 4.3, App. E.5-E.6) are :mod:`lmc_utils.studies.implicit_bias`'s; their
verdict rows join this module's in :func:`verdicts`. Data only: no plots, no prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import permutation as P
from ..claims import verdicts as V
from .. import zoo
from ..measure.barrier import barrier_rows
from ..measure import pruning
from ..core.data import TensorData
from ..measure.distance import l2_distance
from ..measure.evaluation import evaluate
from ..measure.interpolation import has_batchnorm
from ..matching import activation_correlations, unit_agreement
from ..matching.rebasin import align, compare_methods
from . import quality
from .pruning import renormalize

NOTEBOOK = "07_same_basin"
KINDS = ("independent", "spawned", "retrained")
SAME_BASIN = ("spawned", "retrained")
LR_ONLY_CLAIM = "large_lr_rescues_ln_mnist"  # the claim every learning-rate-only experiment is judged by


@dataclass
class Result:
    barriers: pd.DataFrame  # kind, pair, method, reset, loss_barrier, accuracy_barrier, accuracy_a, accuracy_b
    curves: pd.DataFrame  # kind, method, reset, lam, split, loss, accuracy (pair 0 of each kind)
    recovery: pd.DataFrame  # kind, pair, method, planted, share_recovered, exact, share_recovered_live, live_share
    distances: pd.DataFrame  # kind, pair, alignment (naive | weight), l2, l2_weights_only
    retraining: pd.DataFrame  # pair, epoch, lr, train_loss, train_accuracy, l2_from_start (retrained copies)
    lr_barriers: pd.DataFrame  # lr, variant (trained | degraded), pair, method, reset, barriers, endpoint accuracies
    has_bn: bool
    lr_pruning: pd.DataFrame = field(default_factory=pd.DataFrame)  # lr, model, sparsity, renorm, accuracy


def _copy_with(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """A fresh model of ``model``'s architecture holding ``state`` (``model`` is left alone)."""
    import copy

    other = copy.deepcopy(model)
    other.load_state_dict(state)
    return other.eval()


def pair_barriers(curves: pd.DataFrame) -> list[dict]:
    """Barriers of a pair's curves per method, RESET and split, with the endpoints' accuracies."""
    return barrier_rows(curves, ("method", "reset"), endpoints=("accuracy",)).to_dict("records")


def planted_recovery(model_a: nn.Module, model_b: nn.Module, methods: Sequence[str], inputs: torch.Tensor,
                     planted_seeds: Sequence[int]) -> pd.DataFrame:
    """Plant a random permutation ``pi`` (one per seed) in A, match ``pi(A)`` to B, and compare the
    returned permutation with ``pi^-1`` (Qu & Horvath 2024, §3.2).

    Returns one row per method and seed: ``method, planted, share_recovered`` (share of all hidden
    units on which the two agree, :func:`lmc_utils.matching.unit_agreement`), ``exact``
    (``share_recovered == 1``) and ``share_recovered_live``: the same share over the units of B that
    vary on ``inputs`` (``live_share`` of all units). A unit constant on every input (a dead ReLU)
    has no activation statistics, so activation matching cannot place it; this is a diagnostic, the
    declared statistic is ``share_recovered``. For a same-basin pair matching should undo ``pi``.
    """
    spec = P.spec_for(model_a)
    self_corr = activation_correlations(model_b, model_b, inputs, spec)  # diagonal 0 where a unit is constant
    live = {g: c.diagonal() > 0 for g, c in self_corr.items()}
    n_live = sum(int(m.sum()) for m in live.values())
    n_units = sum(m.numel() for m in live.values())
    rows = []
    for s in planted_seeds:
        pi = P.random_permutation(spec, s)
        shuffled = _copy_with(model_a, P.apply_permutation(spec, pi, model_a.state_dict()))
        target = P.inverse(pi)
        for method in methods:
            found = align(method, model_b, shuffled, inputs)  # applied to pi(A) to match B
            share = unit_agreement(found, target)
            agree_live = sum(int((found[g].cpu() == target[g].cpu())[live[g]].sum()) for g in live)
            rows.append({"method": method, "planted": int(s), "share_recovered": share, "exact": share == 1.0,
                         "share_recovered_live": agree_live / n_live if n_live else float("nan"),
                         "live_share": n_live / n_units})
    return pd.DataFrame(rows)


def pair_distances(model_a: nn.Module, model_b: nn.Module) -> list[dict]:
    """L2 distance between A and B before (``naive``) and after weight matching B to A (``weight``):
    ``l2`` over weights and BatchNorm running statistics, ``l2_weights_only`` over the weights."""
    spec = P.spec_for(model_a)
    buffers = [k for k, _ in model_a.named_buffers()]
    state_a = model_a.state_dict()
    rows = []
    for method in ("naive", "weight"):
        state_b = P.apply_permutation(spec, align(method, model_a, model_b), model_b.state_dict())
        rows.append({"alignment": method, "l2": l2_distance(state_a, state_b, include_buffers=True),
                     "l2_weights_only": l2_distance(state_a, state_b, buffers=buffers)})
    return rows


def _pairs(base: zoo.TrainConfig, n_pairs: int, parent_epochs: int, retrain_phases, seed: int,
           device, progress: bool) -> dict[str, list[tuple[zoo.Trained, zoo.Trained]]]:
    """The three kinds of pairs; model A of retrained pair i is model A of independent pair i."""
    independent = zoo.independent_pairs(base, n_pairs, seed=seed, device=device)
    spawned = zoo.spawned_pairs(base, n_pairs, parent_epochs, seed=seed, device=device)
    copies = zoo.get_many([zoo.retrain_config(a.config, retrain_phases, data_seed=a.config.seed + 500)
                           for a, _ in independent], device=device, progress=progress)
    return {"independent": independent, "spawned": spawned,
            "retrained": [(a, c) for (a, _), c in zip(independent, copies)]}


def run(base: zoo.TrainConfig, n_pairs: int, parent_epochs: int, retrain_phases: Sequence[tuple[float, int]],
        eval_data: TensorData, reset_data: TensorData, match_inputs: torch.Tensor,
        methods: Sequence[str] = ("naive", "weight", "activation"), n_planted: int = 3, n_points: int = 11,
        lrs: Sequence[float] = (), degrade_epochs: int = 1, prune_sparsities: Sequence[float] = (), seed: int = 0,
        device="auto", progress: bool = True, name: str = "") -> Result:
    """The whole protocol (see the module docstring). ``retrain_phases``: ``[(large_lr, epochs),
    (small_lr, epochs)]`` of the retrained copies; ``lrs``: learning rates of the learning-rate study
    (empty: skipped), each with ``n_pairs`` independent pairs of ``base`` at that rate; the pairs at
    the largest rate are also retrained ``degrade_epochs`` more at it (the ``degraded`` variant), and
    every model of the study is pruned at each of ``prune_sparsities`` (:func:`lr_pruning`; empty:
    skipped). Barriers are on ``eval_data``; RESET statistics from ``reset_data``; activation matching on
    ``match_inputs``. ``name``: the experiment's name, under which its models' test accuracies are recorded
    (:func:`lmc_utils.studies.quality.record`; ``""``: not recorded)."""
    if n_pairs < 1 or n_planted < 1:
        raise ValueError(f"n_pairs and n_planted must be at least 1, got {n_pairs} and {n_planted}")
    methods = list(methods)
    pairs = _pairs(base, n_pairs, parent_epochs, retrain_phases, seed, device, progress)
    if name:
        for kind, ps in pairs.items():
            quality.record(name, [m for p in ps for m in p] if kind != "retrained" else [c for _, c in ps],
                           arm=kind, device=device)
    has_bn = has_batchnorm(pairs["independent"][0][0].model)
    b_rows, curves, r_rows, d_rows, h_rows = [], [], [], [], []
    jobs = [(kind, i) for kind in KINDS for i in range(n_pairs)]
    for kind, i in tqdm(jobs, desc="pairs", disable=not progress, leave=False):
        a, b = (t.model for t in pairs[kind][i])
        c = compare_methods(a, b, {"test": eval_data}, methods, match_inputs=match_inputs, reset_data=reset_data,
                            n_points=n_points, progress=False)
        if i == 0:
            curves.append(c.assign(kind=kind))
        for r in pair_barriers(c):
            b_rows.append({"kind": kind, "pair": i, **r})
        planted = planted_recovery(a, b, [m for m in methods if m != "naive"], match_inputs,
                                   [seed + 100 * i + k for k in range(n_planted)])
        r_rows += [{"kind": kind, "pair": i, **r} for r in planted.to_dict("records")]
        d_rows += [{"kind": kind, "pair": i, **r} for r in pair_distances(a, b)]
    for i, (_, copy) in enumerate(pairs["retrained"]):
        h_rows += [{"pair": i, **{k: h[k] for k in ("epoch", "lr", "train_loss", "train_accuracy", "l2_from_start")}}
                   for h in copy.history]
    lr_rows = lr_study(base, lrs, n_pairs, eval_data, reset_data, match_inputs, methods, degrade_epochs, n_points,
                       seed, device, progress, name=name) if lrs else pd.DataFrame()
    prune_rows = (lr_pruning(base, lrs, n_pairs, prune_sparsities, eval_data, reset_data, seed, device, progress)
                  if lrs and len(prune_sparsities) else pd.DataFrame())
    return Result(pd.DataFrame(b_rows), pd.concat(curves, ignore_index=True), pd.DataFrame(r_rows),
                  pd.DataFrame(d_rows), pd.DataFrame(h_rows), lr_rows, has_bn, prune_rows)


def lr_pruning(base: zoo.TrainConfig, lrs: Sequence[float], n_pairs: int, sparsities: Sequence[float],
               eval_data: TensorData, reset_data: TensorData, seed: int = 0, device="auto",
               progress: bool = True) -> pd.DataFrame:
    """Global magnitude pruning curves of the learning-rate study's models (the ``trained`` models of
    :func:`lr_study`, taken from the cache; Qu & Horvath 2024, App. F.4, Fig. 44): each model pruned
    at every sparsity (:func:`lmc_utils.pruning.prune_model`), its test accuracy as pruned
    (``renorm=False``) and after re-normalisation on ``reset_data`` (``renorm=True``: RESET for
    BatchNorm, REPAIR otherwise; :func:`lmc_utils.studies.pruning.renormalize`); sparsity 0 is the
    unpruned model. Rows: ``lr, model, seed, sparsity, renorm, accuracy``; ``model`` ``2i`` and
    ``2i + 1`` are pair ``i``'s, so model ``k`` has seed ``seed + k`` at every rate (the unit)."""
    grid = sorted({0.0, *(float(s) for s in sparsities)})
    rows = []
    for lr in tqdm(sorted(lrs), desc="pruning by learning rate", disable=not progress, leave=False):
        models = [t for p in zoo.independent_pairs(base.replace(lr=float(lr)), n_pairs, seed=seed, device=device)
                  for t in p]
        for k, t in enumerate(models):
            dense = t.model.eval()
            for sp in grid:
                pruned = pruning.prune_model(dense, sp, "global_magnitude") if sp > 0 else dense
                as_pruned = evaluate(pruned, eval_data, 1000)[1]
                for flag in (False, True):  # the unpruned model is its own re-normalisation: evaluated once
                    acc = evaluate(renormalize(dense, pruned, reset_data), eval_data, 1000)[1] if flag and sp > 0 \
                        else as_pruned
                    rows.append({"lr": float(lr), "model": k, "seed": t.config.seed, "sparsity": sp, "renorm": flag,
                                 "accuracy": acc})
    return pd.DataFrame(rows)


def lr_study(base: zoo.TrainConfig, lrs: Sequence[float], n_pairs: int, eval_data: TensorData,
             reset_data: TensorData, match_inputs: torch.Tensor, methods: Sequence[str], degrade_epochs: int = 1,
             n_points: int = 11, seed: int = 0, device="auto", progress: bool = True, name: str = "") -> pd.DataFrame:
    """Barriers of independent pairs (seeds ``seed + 2i, + 1``) of ``base`` trained at each learning
    rate in ``lrs``; the pairs at the largest rate also after ``degrade_epochs`` more epochs at that
    constant rate (both models; App. F.5; ``0``: no such control). Only the matching methods of ``methods`` and the judged
    RESET setting (on with BatchNorm, off without) are measured. Rows: ``lr, variant, pair, method, reset, split,
    loss_barrier, accuracy_barrier, accuracy_a, accuracy_b``."""
    rows = []
    top = max(lrs)
    matchers = [m for m in methods if m != "naive"] or list(methods)
    probe = zoo.build_model(base)
    judged = [has_batchnorm(probe)]  # only the setting the claims are judged with: RESET for BatchNorm
    for lr in tqdm(sorted(lrs), desc="learning rates", disable=not progress, leave=False):
        pairs = zoo.independent_pairs(base.replace(lr=float(lr)), n_pairs, seed=seed, device=device)
        variants = {"trained": pairs}
        if lr == top and degrade_epochs > 0:
            flat = zoo.get_many([zoo.retrain_config(t.config, [(float(lr), degrade_epochs)], data_seed=t.config.seed + 700)
                                 for p in pairs for t in p], device=device, progress=progress)
            variants["degraded"] = [(flat[2 * i], flat[2 * i + 1]) for i in range(n_pairs)]
        if name:  # arms as the verdict subjects name them: "lr 0.1", "lr 0.1 degraded"
            for variant, ps in variants.items():
                quality.record(name, [m for p in ps for m in p], device=device,
                               arm=f"lr {lr:g}" + (" degraded" if variant == "degraded" else ""))
        for variant, ps in variants.items():
            for i, (a, b) in enumerate(ps):
                c = compare_methods(a.model, b.model, {"test": eval_data}, matchers, match_inputs=match_inputs,
                                    reset_bn=judged, reset_data=reset_data, n_points=n_points, progress=False)
                rows += [{"lr": float(lr), "variant": variant, "pair": i, **r} for r in pair_barriers(c)]
    return pd.DataFrame(rows)


@dataclass
class LrResult:
    """The learning-rate study alone of one base config (:func:`run_lr_experiments`; Qu & Horvath 2024,
    §4.3, Fig. 5 (D), App. F.5, Fig. 59): no same-basin pairs, no degrade control."""

    lr_barriers: pd.DataFrame  # lr, variant (trained), pair, method, reset, split, barriers, endpoint accuracies
    has_bn: bool


def experiment_data(fields: Mapping | zoo.TrainConfig, eval_subset: int | None, match_samples: int,
                    device="auto") -> tuple[zoo.TrainConfig, TensorData, TensorData]:
    """An experiment's config (from its :class:`lmc_utils.zoo.TrainConfig` fields) and the data every
    07 study measures it on: ``eval_subset`` test examples (barriers) and ``match_samples`` training
    examples (RESET statistics and activation matching)."""
    from ..core.data import load

    cfg = fields if isinstance(fields, zoo.TrainConfig) else zoo.TrainConfig(**fields)
    return (cfg, load(cfg.dataset, "test", subset=eval_subset, device=device),
            load(cfg.dataset, "train", subset=match_samples, device=device))


def run_lr_experiments(lr_experiments: Mapping[str, Mapping] | None, lrs: Mapping[str, Sequence[float]] | None,
                       n_pairs: int | Mapping[str, int], eval_subset: int | None = None, match_samples: int = 2000,
                       methods: Sequence[str] = ("weight", "activation"), n_points: int = 11, seed: int = 0,
                       device="auto", progress: bool = True) -> dict[str, LrResult]:
    """:func:`lr_study` alone (no degrade control) for each experiment (name -> :class:`lmc_utils.zoo.TrainConfig`
    fields) of ``lr_experiments``, at its rates ``lrs[name]`` with ``n_pairs`` (one count, or one per
    experiment) independent pairs per rate; data as :func:`run_experiments` loads it. Its models'
    test accuracies are recorded per rate (arms ``lr 0.01``)."""
    lr_experiments = dict(lr_experiments or {})
    missing = sorted(n for n in lr_experiments if len((lrs or {}).get(n, ())) < 2)
    if missing:
        raise ValueError(f"lrs needs at least two learning rates for lr experiment(s) {missing}")
    out = {}
    for name, fields in lr_experiments.items():
        cfg, test, train = experiment_data(fields, eval_subset, match_samples, device)
        pairs = n_pairs[name] if isinstance(n_pairs, Mapping) else n_pairs
        rows = lr_study(cfg, lrs[name], pairs, test, train, train.x, methods, degrade_epochs=0, n_points=n_points,
                        seed=seed, device=device, progress=progress, name=name)
        out[name] = LrResult(rows, has_batchnorm(zoo.build_model(cfg)))
    return out


def lr_table(results: Mapping[str, LrResult]) -> pd.DataFrame:
    """Per experiment, learning rate and matching method (the judged RESET setting): the mean test
    accuracy barrier, loss barrier (nats) and endpoint accuracy over pairs, each with its 95% t
    interval (``*_low``, ``*_high``), the number of pairs ``n``, and the experiment's declared
    accuracy ``floor`` (NaN where none is declared)."""
    from ..claims.quality import declared

    frames = []
    for name, r in results.items():
        b = r.lr_barriers[r.lr_barriers["reset"] == r.has_bn]
        b = b.assign(endpoint_accuracy=(b["accuracy_a"] + b["accuracy_b"]) / 2)
        by = ["lr", "method"]
        parts = [with_interval(b, by, c).rename(columns={"ci_low": f"{c}_low", "ci_high": f"{c}_high"})
                 for c in ("accuracy_barrier", "loss_barrier", "endpoint_accuracy")]
        t = parts[0].drop(columns="n").merge(parts[1].drop(columns="n"), on=by).merge(parts[2], on=by)
        q = declared(name)
        floor = q.floor_of() if q is not None else None
        frames.append(t.assign(experiment=name, floor=float("nan") if floor is None else float(floor)))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    return out[["experiment", *[c for c in out if c != "experiment"]]]


def run_experiments(experiments: Mapping[str, Mapping], n_pairs: int | Mapping[str, int], parent_epochs: int,
                    retrain_phases: Mapping[str, Sequence], lrs: Mapping[str, Sequence[float]] | None = None,
                    eval_subset: int | None = None, match_samples: int = 2000, seed: int = 0, device="auto",
                    progress: bool = True, **kwargs) -> dict[str, Result]:
    """:func:`run` for each experiment (name -> :class:`lmc_utils.zoo.TrainConfig` fields) on its
    dataset (``n_pairs``: one count, or one per experiment): barriers on ``eval_subset`` test examples, RESET statistics and activation matching on
    ``match_samples`` training examples; ``retrain_phases`` and ``lrs`` per experiment (an
    experiment missing from ``lrs`` skips the learning-rate study). ``kwargs`` go to :func:`run`."""
    missing = sorted(set(experiments) - set(retrain_phases))
    if missing:
        raise ValueError(f"retrain_phases has no entry for experiment(s) {missing}")
    out = {}
    for name, fields in experiments.items():
        cfg, test, train = experiment_data(fields, eval_subset, match_samples, device)
        pairs = n_pairs[name] if isinstance(n_pairs, Mapping) else n_pairs
        out[name] = run(cfg, pairs, parent_epochs, retrain_phases[name], test, train, train.x,
                        lrs=(lrs or {}).get(name, ()), seed=seed, device=device, progress=progress, name=name, **kwargs)
    return out


def _judged_reset(result: Result) -> bool:
    """The RESET setting the learning-rate claims are judged with: on for BatchNorm models."""
    return result.has_bn


def tables(results: Mapping[str, Result]) -> dict[str, pd.DataFrame]:
    """:func:`experiment_tables` of every experiment, stacked with an ``experiment`` column."""
    per = {name: experiment_tables(r) for name, r in results.items()}
    names = list(dict.fromkeys(k for t in per.values() for k in t))
    return {k: pd.concat([t[k].assign(experiment=n)[["experiment", *t[k].columns]] for n, t in per.items() if k in t],
                         ignore_index=True) for k in names}


def experiment_tables(result: Result) -> dict[str, pd.DataFrame]:
    """``07_barriers``: mean test barriers and endpoint accuracies per kind, method and RESET;
    ``07_recovery``: per kind and method the share of planted units recovered and the rate of exact
    recoveries; ``07_distances``: mean L2 distances per kind and alignment; ``07_retraining``: the
    retrained copies' distance to the original per epoch; ``07_lr``: barriers per learning rate and
    variant (when run)."""
    b = result.barriers.groupby(["kind", "method", "reset"], sort=False)[
        ["loss_barrier", "accuracy_barrier", "accuracy_a", "accuracy_b"]].mean().reset_index()
    rec = result.recovery.groupby(["kind", "method"], sort=False).agg(
        share_recovered=("share_recovered", "mean"), exact_rate=("exact", "mean"),
        share_recovered_live=("share_recovered_live", "mean"), live_share=("live_share", "mean"),
        n=("exact", "size")).reset_index()
    dist = result.distances.groupby(["kind", "alignment"], sort=False)[["l2", "l2_weights_only"]].mean().reset_index()
    out = {"07_barriers": b, "07_recovery": rec, "07_distances": dist, "07_retraining": result.retraining}
    if not result.lr_barriers.empty:
        out["07_lr"] = result.lr_barriers.groupby(["lr", "variant", "method", "reset"], sort=False)[
            ["loss_barrier", "accuracy_barrier", "accuracy_a", "accuracy_b"]].mean().reset_index()
    if not result.lr_pruning.empty:
        out["07_lr_pruning"] = with_interval(result.lr_pruning, ["lr", "renorm", "sparsity"], "accuracy")
    return out


def with_interval(frame: pd.DataFrame, by: list[str], column: str) -> pd.DataFrame:
    """Per group of ``by``: the mean of ``column`` over its rows (the units) with a 95% t interval
    (:func:`lmc_utils.verdicts.interval`) and the number of units: columns ``by, column, ci_low,
    ci_high, n``."""
    rows = []
    for key, g in frame.groupby(by, sort=False):
        est = V.interval(g[column].to_numpy(dtype=float))
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), column: est["estimate"],
                     "ci_low": est["ci_low"], "ci_high": est["ci_high"], "n": est["n"]})
    return pd.DataFrame(rows)


def _acc(frame: pd.DataFrame, kind: str, method: str, reset: bool) -> pd.Series:
    """Test accuracy barrier per pair of one kind, method and RESET setting (indexed by pair)."""
    sub = frame[(frame["kind"] == kind) & (frame["method"] == method) & (frame["reset"] == reset)]
    return sub.set_index("pair")["accuracy_barrier"].sort_index()


def verdicts(results: Mapping[str, Result], criteria: Mapping[str, V.Criterion],
             bias_rows: Mapping[str, pd.DataFrame] | None = None,
             lr_only: Mapping[str, LrResult] | None = None) -> pd.DataFrame:
    """:func:`experiment_verdicts` of every experiment, the verdict rows of every implicit-bias
    experiment (``bias_rows``: name -> its :func:`lmc_utils.studies.implicit_bias.bias_verdicts`) and
    :func:`lr_verdicts` of every learning-rate-only experiment, subjects prefixed by the experiment's
    name; a declared claim no experiment could judge gets one inconclusive row naming the regime it
    needs (:data:`NOT_JUDGED`, the implicit-bias claims included)."""
    rows = []
    frames = [(name, experiment_verdicts(r, criteria)) for name, r in results.items()]
    frames += list((bias_rows or {}).items())
    frames += [(name, lr_verdicts(r, criteria)) for name, r in (lr_only or {}).items()]
    for name, frame in frames:
        rows += [{**row, "subject": f"{name}: {row['subject']}"} for row in frame.to_dict("records")]
    judged = {row["claim"] for row in rows}
    for claim, why in NOT_JUDGED.items():  # a claim no experiment can test here: inconclusive by regime
        if claim in criteria and claim not in judged:
            rows.append(V.verdict(NOTEBOOK, criteria[claim], f"not judged: {why}", []))
    return V.table(rows)


NOT_JUDGED = {  # claim -> the regime it needs, for profiles without one
    "reset_needed_by_rebasin": "no BatchNorm model in this profile",
    "larger_lr_lower_barrier": "no learning-rate study in this profile (lrs)",
    "larger_lr_lower_barrier_degraded": "no learning-rate study in this profile (lrs)",
    "larger_lr_prunes_better": "no learning-rate study with pruning in this profile (lrs, prune_sparsities)",
    "weight_decay_lowers_barrier": "no weight-decay sweep of at least three values in this profile (weight_decays)",
    "too_much_weight_decay_degrades": "no weight-decay sweep of at least three values in this profile (weight_decays)",
    "weight_decay_compresses": "no weight-decay sweep with a judged weight decay in this profile (weight_decays)",
    "rescale_robust_to_weight_decay": "no weight-decay sweep of models without BatchNorm (two or more pairs) in this profile",
    "weight_decay_lowers_barrier_degraded": "no weight-decay sweep with a degrade control in this profile (degrade_epochs)",
    "init_changes_barrier": "no initialisation study in this profile (bias_experiments)",
    "init_distance_persists": "no initialisation study in this profile (bias_experiments)",
    LR_ONLY_CLAIM: "no learning-rate-only experiment in this profile (lr_experiments)",
}


def experiment_verdicts(result: Result, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One row per claim and subject (``params/criteria.yaml``, section ``07_same_basin``); the
    units are pairs (kinds paired by index ``i``: the retrained copy of pair ``i`` is a copy of
    independent pair ``i``'s model A)."""
    rows = []
    bar, rec, dist = result.barriers, result.recovery, result.distances
    matchers = [m for m in dict.fromkeys(bar["method"]) if m != "naive"]

    def add(claim: str, subject: str, values) -> None:
        if claim in criteria:
            rows.append(V.verdict(NOTEBOOK, criteria[claim], subject, values))

    for kind in SAME_BASIN:
        add("same_basin_connected_without_reset", f"{kind}, naive, no RESET", _acc(bar, kind, "naive", False))
        for m in matchers:
            diff = _acc(bar, "independent", m, False) - _acc(bar, kind, "naive", False)
            add("same_basin_below_rebasin_without_reset", f"{kind} vs independent + {m}", diff)
    for m in matchers:
        add("rebasin_barrier_without_reset", f"independent + {m}, no RESET", _acc(bar, "independent", m, False))
        if result.has_bn:
            gain = _acc(bar, "independent", m, False) - _acc(bar, "independent", m, True)
            add("reset_needed_by_rebasin", f"independent + {m}", gain)
    for kind in KINDS:
        for m in matchers:
            sub = rec[(rec["kind"] == kind) & (rec["method"] == m)]
            values = sub.pivot_table(index="pair", columns="planted", values="share_recovered").to_numpy(dtype=float)
            claim = "planted_recovered_same_basin" if kind in SAME_BASIN else "planted_not_recovered_independent"
            add(claim, f"{kind}, {m}", values)
    d = dist.pivot_table(index=["kind", "pair"], columns="alignment", values="l2")
    for kind in SAME_BASIN:
        ratio = d.loc[kind, "naive"] / d.loc["independent", "weight"]
        add("same_basin_closer", f"{kind} (naive) / independent (WM)", ratio)
    lrb = result.lr_barriers
    if not lrb.empty:
        reset = _judged_reset(result)
        lo, hi = min(lrb["lr"]), max(lrb["lr"])
        for m in matchers:
            def acc(lr, variant):
                return _lr_per_pair(lrb, lr, variant, m, reset)
            add("larger_lr_lower_barrier", f"lr {lo:g} - lr {hi:g}, {m}", acc(lo, "trained") - acc(hi, "trained"))
            add("larger_lr_lower_barrier_degraded", f"lr {lo:g} - lr {hi:g} degraded, {m}",
                acc(lo, "trained") - acc(hi, "degraded"))
    pr = result.lr_pruning
    if not pr.empty:
        lo, hi = min(pr["lr"]), max(pr["lr"])
        curve = pr[pr["sparsity"] > 0].groupby(["lr", "renorm", "model"])["accuracy"].mean()  # mean over sparsities
        for flag, label in ((False, "as pruned"), (True, "RESET" if result.has_bn else "REPAIR")):
            add("larger_lr_prunes_better", f"lr {hi:g} - lr {lo:g}, global magnitude, {label}",
                curve.loc[(hi, flag)] - curve.loc[(lo, flag)])
    return V.table(rows)


def _lr_per_pair(lrb: pd.DataFrame, lr: float, variant: str, method: str, reset: bool) -> pd.Series:
    """Test accuracy barrier per pair of a learning-rate study at one rate, variant, method and RESET setting."""
    s = lrb[(lrb["lr"] == lr) & (lrb["variant"] == variant) & (lrb["method"] == method) & (lrb["reset"] == reset)]
    return s.set_index("pair")["accuracy_barrier"].sort_index()


def lr_verdicts(result: LrResult, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """Rows of :data:`LR_ONLY_CLAIM` for one learning-rate-only experiment, per matching method: test
    accuracy barrier of pair ``i`` at the smallest rate minus that of pair ``i`` (the same seeds) at the
    largest, with RESET for BatchNorm."""
    rows, lrb = [], result.lr_barriers
    if LR_ONLY_CLAIM in criteria and not lrb.empty:
        lo, hi = min(lrb["lr"]), max(lrb["lr"])
        for m in [m for m in dict.fromkeys(lrb["method"]) if m != "naive"]:
            values = (_lr_per_pair(lrb, lo, "trained", m, result.has_bn)
                      - _lr_per_pair(lrb, hi, "trained", m, result.has_bn))
            rows.append(V.verdict(NOTEBOOK, criteria[LR_ONLY_CLAIM], f"lr {lo:g} - lr {hi:g}, {m}", values))
    return V.table(rows)


from .same_basin_paper import PAPER_INIT_RATIO, PAPER_REFERENCE, init_comparison, paper_comparison  # noqa: E402,F401
