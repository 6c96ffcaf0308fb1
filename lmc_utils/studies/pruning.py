"""Notebook 05's protocols: pruning with and without re-normalisation, the number of examples
re-normalisation needs, and the talk's redundancy-removal study; their tables and verdict rows.

* Pruning (Qu & Horvath 2024, §5 and App. G): one-shot pruning of trained models by several
  criteria (:mod:`lmc_utils.pruning`), each evaluated as pruned and after re-normalisation
  (:func:`renormalize`: RESET for BatchNorm models, REPAIR towards the unpruned model's statistics
  otherwise) on the same few training examples; the activation scale of each hidden layer
  relative to the unpruned model; and re-normalisation from only 64, 128, ... examples. The first
  ``curve_models`` models of each experiment are swept over every sparsity (the curves of the
  figures); every model is measured at the one declared ``judge_sparsity`` (the verdicts' unit is
  one trained model).
* Redundancy (the talk, "what if we prune the networks?"): merge redundant and drop dead hidden
  units of one-hidden-layer MLPs across widths; accuracy, and naive and weight-matched
  interpolation barriers between pairs of full and of reduced networks.

:func:`run` returns a :class:`Result` of tidy DataFrames, :func:`tables` the summary tables the
notebook saves, :func:`unit_statistics` one value per claim, subject and independent unit, and
:func:`verdicts` the verdict rows (:func:`lmc_utils.verdicts.verdict`). No plots, no prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core import data as data_mod
from .. import permutation as P
from ..measure import pruning, renorm
from ..claims import verdicts as verdicts_mod
from .. import zoo
from ..measure.activations import layer_statistics
from ..core.data import TensorData
from ..core.device import get_device
from ..measure.evaluation import evaluate
from ..claims.tables import mean_sd_text
from ..measure.interpolation import barrier, has_batchnorm, interpolation_curve
from ..matching import weight_matching
from . import quality

NOTEBOOK = "05_pruning"
# The talk's table "So, what if we prune the networks?" (Moons, one hidden layer; mean over runs):
# width -> (reduced width, full test accuracy, reduced test accuracy).
TALK_MOONS_REDUCTION = {2: (2.0, 0.859, 0.859), 4: (3.72, 0.903, 0.897), 8: (7.18, 0.941, 0.934),
                        16: (13.04, 0.991, 0.979), 32: (23.28, 0.996, 0.986), 64: (39.26, 0.997, 0.985),
                        128: (73.62, 0.998, 0.987), 256: (141.02, 0.999, 0.987), 512: (271.94, 0.998, 0.990)}
RENORM_LABEL = {True: "BatchNorm: RESET", False: "REPAIR"}
MAGNITUDE_METHODS = ("global_magnitude", "layer_magnitude")
# A recovered share is a ratio; a model whose pruning (or whose full re-normalisation) moved the
# test accuracy by less than this has nothing to recover and is left out of that statistic.
MIN_EFFECT = 0.05
# The talk's barrier claim is about its Moons networks.
BARRIER_DATASETS = ("moons",)


def renormalize(dense: nn.Module, pruned: nn.Module, inputs: TensorData, goal: renorm.Goal | None = None) -> nn.Module:
    """The re-normalised copy of ``pruned``: RESET (BatchNorm statistics recomputed on ``inputs``)
    for BatchNorm models; otherwise REPAIR (:func:`lmc_utils.renorm.repair`, sequential) towards the
    per-channel statistics of the unpruned ``dense`` model on the same inputs (``goal``: those
    statistics, if already measured by ``renorm.goal_statistics([dense], [1.0], inputs.x)``)."""
    if has_batchnorm(pruned):
        return renorm.reset(pruned, inputs, batch_size=max(1, min(256, len(inputs))))
    if goal is None:
        goal = renorm.goal_statistics([dense], [1.0], inputs.x)
    return renorm.repair(pruned, goal, inputs.x, sequential=True)


def _scale_rows(dense_stats, model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Per hidden layer: the pre-activation std averaged over channels, relative to the dense
    model's (a ratio of means: channels the dense model barely uses cannot dominate it)."""
    rows = []
    for name, s in layer_statistics(model, x).items():
        d = dense_stats[name]
        ratio = float(s.pre_std.mean() / d.pre_std.mean()) if float(d.pre_std.mean()) > 0 else float("nan")
        rows.append({"layer": d.index, "module": name, "std_ratio": ratio,
                     "zero_share": float(s.zero_share.mean())})
    return rows


@dataclass
class Result:
    """Everything notebook 05 measures, as tidy tables (``model``: index of the trained model,
    seed ``seed + model``; ``curve``: whether the model is one of the swept ones)."""

    dense: pd.DataFrame  # experiment, norm, model, loss, accuracy
    accuracy: pd.DataFrame  # experiment, norm, model, curve, method, sparsity, achieved, renorm, loss, accuracy
    samples: pd.DataFrame  # experiment, norm, model, curve, method, sparsity, n_samples, label, accuracy
    scale: pd.DataFrame  # experiment, model, curve, method, sparsity, renorm, layer, module, std_ratio, zero_share
    units: pd.DataFrame  # dataset, width, model, tol, reduced_width, dead, merged, loss/accuracy full and reduced
    barriers: pd.DataFrame  # dataset, width, pair, tol, network (full | reduced), method, loss_barrier, accuracy_barrier
    judge_sparsity: float
    judge_width: int
    merge_tol: float


def _count(n: int | Mapping, key) -> int:
    return int(n[key]) if isinstance(n, Mapping) else int(n)


def pruning_sweep(experiments: dict[str, zoo.TrainConfig], sparsities: list[float], methods: list[str],
                  eval_data: dict[str, TensorData], renorm_data: dict[str, TensorData],
                  fisher_data: dict[str, TensorData], sample_sizes: list[int | None],
                  sample_sparsities: list[float], judge_sparsity: float, n_models: int | Mapping[str, int] = 1,
                  curve_models: int = 1, fisher_batches: int = 32, fisher_batch_size: int = 16,
                  scale_samples: int = 500, seed: int = 0, device="auto") -> dict[str, pd.DataFrame]:
    """Qu & Horvath's post-pruning re-normalisation on each experiment's trained models.

    ``n_models`` (per experiment, or one number) models per experiment, seeds ``seed, seed + 1, ...``.
    The first ``curve_models`` are pruned at every sparsity of ``sparsities`` (and
    ``judge_sparsity``), the others at ``judge_sparsity`` only. For every method and sparsity: test
    loss/accuracy as pruned (``renorm=False``) and after :func:`renormalize` on
    ``renorm_data[experiment]`` (``renorm=True``); for ``global_magnitude`` the pre-activation scale
    of every hidden layer relative to the unpruned model, before and after (first ``scale_samples``
    examples of ``renorm_data``); for the magnitude methods at ``sample_sparsities`` (swept models)
    or ``judge_sparsity`` (all): the accuracy after re-normalising from only the first ``n``
    examples, for each ``n`` in ``sample_sizes`` (``None``: all of them). Dicts are keyed by
    experiment. Returns frames ``dense, accuracy, samples, scale`` (see :class:`Result`).
    """
    acc_rows, sample_rows, scale_rows, dense_rows = [], [], [], []
    for name, cfg in experiments.items():
        norm = cfg.model.get("norm", "none")
        trained = zoo.get_many([cfg.replace(seed=seed + k) for k in range(_count(n_models, name))], device=device)
        quality.record(name, trained, device=device)
        ev, rd = eval_data[name], renorm_data[name]
        subsets = {n: rd if n is None else TensorData(rd.x[:n], rd.y[:n], rd.num_classes, rd.name, rd.split)
                   for n in sample_sizes}
        scale_x = rd.x[:scale_samples]
        for k, t in enumerate(trained):
            curve = k < curve_models
            grid = sorted(set(sparsities) | {judge_sparsity}) if curve else [judge_sparsity]
            sample_grid = set(sample_sparsities) | {judge_sparsity} if curve else {judge_sparsity}
            dense = t.model.eval()
            key = {"experiment": name, "norm": norm, "model": k}
            loss, acc = evaluate(dense, ev, 1000)
            dense_rows.append({**key, "loss": loss, "accuracy": acc})
            dense_stats = layer_statistics(dense, scale_x)
            bn = has_batchnorm(dense)
            goal = None if bn else renorm.goal_statistics([dense], [1.0], rd.x)
            goals = {n: None if (bn or n is None) else renorm.goal_statistics([dense], [1.0], sub.x)
                     for n, sub in subsets.items()}
            scores = (pruning.fisher_scores(dense, fisher_data[name], fisher_batches, fisher_batch_size, seed=seed)
                      if "fisher" in methods else None)
            key = {**key, "curve": curve}
            jobs = [(m, s) for m in methods for s in grid]
            for method, sp in tqdm(jobs, desc=f"prune {name} #{k}", leave=False):
                pruned = pruning.prune_model(dense, sp, method, scores=scores)
                fixed = renormalize(dense, pruned, rd, goal=goal)
                achieved = pruning.sparsity(pruned)
                accs = {}
                for flag, model in ((False, pruned), (True, fixed)):
                    loss, accs[flag] = evaluate(model, ev, 1000)
                    acc_rows.append({**key, "method": method, "sparsity": sp, "achieved": achieved,
                                     "renorm": flag, "loss": loss, "accuracy": accs[flag]})
                    if method == "global_magnitude":
                        for r in _scale_rows(dense_stats, model, scale_x):
                            scale_rows.append({"experiment": name, "model": k, "curve": curve, "method": method,
                                               "sparsity": sp, "renorm": flag, **r})
                if method in MAGNITUDE_METHODS and sp in sample_grid:
                    sample_rows.append({**key, "method": method, "sparsity": sp, "n_samples": 0, "label": "none",
                                        "accuracy": accs[False]})
                    for n, sub in subsets.items():
                        a = (accs[True] if n is None else
                             evaluate(renormalize(dense, pruned, sub, goal=goals[n]), ev, 1000)[1])
                        sample_rows.append({**key, "method": method, "sparsity": sp, "n_samples": len(sub),
                                            "label": "all" if n is None else str(n), "accuracy": a})
    return {"dense": pd.DataFrame(dense_rows), "accuracy": pd.DataFrame(acc_rows),
            "samples": pd.DataFrame(sample_rows), "scale": pd.DataFrame(scale_rows)}


def _naive_and_weight(model_a: nn.Module, model_b: nn.Module, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """B's state as is (``naive``) and permuted by weight matching to A (``weight``)."""
    spec = P.spec_for(model_a)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    return {"naive": sb, "weight": P.apply_permutation(spec, weight_matching(spec, sa, sb, seed=seed).perm, sb)}


def redundancy_study(configs: dict[str, zoo.TrainConfig], widths: dict[str, list[int]],
                     n_models: Mapping[str, int | Mapping[int, int]] | int, tols: list[float], barrier_tol: float,
                     test: dict[str, TensorData], train_inputs: dict[str, torch.Tensor], n_points: int = 11,
                     seed: int = 0, device="auto") -> dict[str, pd.DataFrame]:
    """For each dataset's one-hidden-layer MLP config and width: ``n_models`` runs (one number, per
    dataset, or per dataset and width; seeds ``seed, ...``); for every tolerance in ``tols`` the
    reduced network of :func:`lmc_utils.pruning.remove_redundant_units` (dead = never active on
    ``train_inputs``) and its test loss/accuracy; and, for consecutive pairs of runs (0-1, 2-3, ...),
    the naive and weight-matched test loss barriers between the full networks and between the
    networks reduced with ``barrier_tol`` (the smaller one padded with zero units to the larger
    one's width). One hidden layer is one permutation group, so weight matching has no group order
    to vary. Returns frames ``units, barriers`` (see :class:`Result`)."""
    unit_rows, bar_rows = [], []
    for ds, base in configs.items():
        per_ds = n_models[ds] if isinstance(n_models, Mapping) else n_models
        for width in tqdm(widths[ds], desc=f"widths ({ds})", leave=False):
            n = _count(per_ds, width)
            cfg = base.replace(model={**base.model, "width": width})
            runs = zoo.get_many([cfg.replace(seed=seed + k) for k in range(n)], device=device)
            quality.record(ds, runs, arm=f"width {width}", device=device, declared_as=f"redundancy_{ds}")
            reduced_for_barrier = []
            for k, r in enumerate(runs):
                full_loss, full_acc = evaluate(r.model, test[ds], 1000)
                for tol in sorted(set(tols) | {barrier_tol}):
                    red, info = pruning.remove_redundant_units(r.model, tol=tol, inputs=train_inputs[ds])
                    loss, acc = evaluate(red, test[ds], 1000)
                    unit_rows.append({"dataset": ds, "width": width, "model": k, "tol": tol,
                                      "reduced_width": info.widths_after[0], "dead": info.dead[0],
                                      "merged": info.merged[0], "full_loss": full_loss, "full_accuracy": full_acc,
                                      "reduced_loss": loss, "reduced_accuracy": acc})
                    if tol == barrier_tol:
                        reduced_for_barrier.append(red)
            for p in range(n // 2):
                a, b = runs[2 * p].model, runs[2 * p + 1].model
                ra, rb = reduced_for_barrier[2 * p], reduced_for_barrier[2 * p + 1]
                w = max(ra.hidden[0].out_features, rb.hidden[0].out_features)
                ra, rb = pruning.pad_hidden(ra, [w]), pruning.pad_hidden(rb, [w])
                for network, (ma, mb) in (("full", (a, b)), ("reduced", (ra, rb))):
                    for method, sb in _naive_and_weight(ma, mb, seed).items():
                        bar = barrier(interpolation_curve(ma, ma.state_dict(), sb, test[ds], n_points=n_points)).iloc[0]
                        bar_rows.append({"dataset": ds, "width": width, "pair": p, "tol": barrier_tol,
                                         "network": network, "method": method, "loss_barrier": float(bar["loss"]),
                                         "accuracy_barrier": float(bar["accuracy"])})
    return {"units": pd.DataFrame(unit_rows), "barriers": pd.DataFrame(bar_rows)}


def run(experiments: Mapping[str, Mapping | zoo.TrainConfig], n_models: int | Mapping[str, int],
        sparsities: list[float], methods: list[str], judge_sparsity: float, curve_models: int,
        eval_subset: int | None, renorm_samples: int | None, sample_sizes: list[int | None],
        sample_sparsities: list[float], fisher_batches: int, fisher_batch_size: int,
        redundancy_configs: Mapping[str, Mapping | zoo.TrainConfig], redundancy_widths: Mapping[str, list[int]],
        redundancy_models: Mapping | int, merge_tols: list[float], merge_tol: float, judge_width: int,
        n_points: int = 11, redundancy_inputs: int = 10000, seed: int = 0, device="auto") -> Result:
    """Both protocols of notebook 05 (:func:`pruning_sweep`, :func:`redundancy_study`) on the
    datasets the configs name: accuracies on ``eval_subset`` test examples; REPAIR/RESET statistics
    and the Fisher saliency from ``renorm_samples`` training examples (a fixed subset, seed
    ``seed + 7``); dead units judged on ``redundancy_inputs`` training inputs; redundancy
    accuracies and barriers on the whole test split."""
    dev = get_device(device)
    as_config = lambda c: c if isinstance(c, zoo.TrainConfig) else zoo.TrainConfig(**c)  # noqa: E731
    configs = {name: as_config(c) for name, c in experiments.items()}
    evals, renorms = {}, {}
    for name, cfg in configs.items():
        evals[name] = data_mod.load(cfg.dataset, "test", subset=eval_subset, device=dev)
        renorms[name] = data_mod.load(cfg.dataset, "train", subset=renorm_samples, seed=seed + 7, device=dev)
    swept = pruning_sweep(configs, sparsities, methods, evals, renorms, renorms, sample_sizes, sample_sparsities,
                          judge_sparsity, n_models=n_models, curve_models=curve_models,
                          fisher_batches=fisher_batches, fisher_batch_size=fisher_batch_size, seed=seed, device=dev)
    red_configs = {ds: as_config(c) for ds, c in redundancy_configs.items()}
    red_test = {ds: data_mod.load(c.dataset, "test", device=dev) for ds, c in red_configs.items()}
    red_inputs = {ds: data_mod.load(c.dataset, "train", subset=redundancy_inputs, device=dev).x
                  for ds, c in red_configs.items()}
    red = redundancy_study(red_configs, redundancy_widths, redundancy_models, merge_tols, merge_tol, red_test,
                           red_inputs, n_points=n_points, seed=seed, device=dev)
    return Result(**swept, **red, judge_sparsity=judge_sparsity, judge_width=judge_width, merge_tol=merge_tol)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

def pruning_table(result: Result) -> pd.DataFrame:
    """Wide table over the swept models: one row per experiment, method and sparsity with test
    accuracy as pruned and after re-normalisation (means over models), the gain, and the unpruned
    accuracy (mean over the same models)."""
    acc = result.accuracy[result.accuracy["curve"]]
    a = acc.groupby(["experiment", "method", "sparsity", "renorm"], sort=False)["accuracy"].mean()
    a = a.unstack("renorm").rename(columns={False: "pruned", True: "renormalized"}).reset_index()
    a.columns.name = None
    swept = result.dense.merge(acc[["experiment", "model"]].drop_duplicates(), on=["experiment", "model"])
    norm = result.dense.groupby("experiment")["norm"].first()
    a["gain"] = a["renormalized"] - a["pruned"]
    a["dense"] = a["experiment"].map(swept.groupby("experiment")["accuracy"].mean())
    a["renorm"] = [RENORM_LABEL[norm[e] == "batchnorm"] for e in a["experiment"]]
    return a


def samples_table(result: Result) -> pd.DataFrame:
    """Accuracy after re-normalising from n examples (columns: ``none``, the sizes, ``all``),
    per experiment, magnitude method and sparsity; means over the swept models."""
    s = result.samples[result.samples["curve"]]
    out = (s.groupby(["experiment", "method", "sparsity", "label"], sort=False)["accuracy"].mean()
           .unstack("label").reset_index())
    out.columns.name = None
    return out


def reduction_table(units: pd.DataFrame, tol: float) -> pd.DataFrame:
    """The talk's table at tolerance ``tol``: per dataset and width, full vs reduced width, test
    loss and accuracy (mean ± std over runs), with the talk's Moons values next to them."""
    rows = []
    u = units[units["tol"] == tol]
    for (ds, width), g in u.groupby(["dataset", "width"], sort=False):
        talk = TALK_MOONS_REDUCTION.get(width) if ds == "moons" else None
        for config in ("full", "reduced"):
            w = g["reduced_width"] if config == "reduced" else pd.Series([float(width)] * len(g))
            rows.append({"dataset": ds, "configuration": config, "runs": len(g), "width": mean_sd_text(w.mean(), w.std(), ".1f"),
                         "test_loss": mean_sd_text(g[f"{config}_loss"].mean(), g[f"{config}_loss"].std()),
                         "test_accuracy": mean_sd_text(g[f"{config}_accuracy"].mean(), g[f"{config}_accuracy"].std()),
                         "talk_width": (talk[0] if config == "reduced" else width) if talk else np.nan,
                         "talk_test_accuracy": (talk[2] if config == "reduced" else talk[1]) if talk else np.nan})
    return pd.DataFrame(rows)


def tolerance_table(units: pd.DataFrame) -> pd.DataFrame:
    """Sensitivity to the merge tolerance: mean reduced width (share of the full width) and mean
    change in test accuracy, per dataset, width and tolerance."""
    g = units.assign(share=units["reduced_width"] / units["width"],
                     accuracy_change=units["reduced_accuracy"] - units["full_accuracy"],
                     dead_share=units["dead"] / units["width"])
    return (g.groupby(["dataset", "width", "tol"], sort=False)[["reduced_width", "share", "dead_share",
                                                               "accuracy_change"]].mean().reset_index())


def barrier_summary(barriers: pd.DataFrame) -> pd.DataFrame:
    """Mean test loss barrier per dataset, width, method and network (full | reduced), wide, with
    the number of pairs."""
    g = barriers.groupby(["dataset", "width", "method", "network"], sort=False)["loss_barrier"]
    out = g.mean().unstack("network").reset_index()
    out.columns.name = None
    out["pairs"] = barriers.groupby(["dataset", "width", "method"], sort=False)["pair"].nunique().to_numpy()
    return out


def tables(result: Result) -> dict[str, pd.DataFrame]:
    """The summary tables notebook 05 saves, keyed by file name."""
    return {"05_pruning_accuracy": pruning_table(result),
            "05_renorm_samples": samples_table(result),
            "05_redundancy": reduction_table(result.units, result.merge_tol),
            "05_merge_tolerance": tolerance_table(result.units),
            "05_redundancy_barriers": barrier_summary(result.barriers),
            "05_unit_statistics": unit_statistics(result)}


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------

def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """``num / den`` where ``den >= MIN_EFFECT``, NaN elsewhere (nothing to recover)."""
    return (num / den).where(den >= MIN_EFFECT)


def _rows(claim: str, subject: str, values: pd.Series) -> list[dict]:
    return [{"claim": claim, "subject": subject, "unit": unit, "value": float(v)} for unit, v in values.items()]


def unit_statistics(result: Result) -> pd.DataFrame:
    """One value per claim, subject and independent unit (``unit``: the model index, or the pair
    index for barriers), at the judged sparsity and width; columns ``claim, subject, unit, value``.
    NaN marks a unit with nothing to recover (see :data:`MIN_EFFECT`)."""
    rows: list[dict] = []
    sp, label = result.judge_sparsity, pruning.METHOD_LABELS
    if len(result.accuracy):
        acc = result.accuracy[np.isclose(result.accuracy["sparsity"], sp)]
        wide = acc.pivot_table(index=["experiment", "model"], columns=["method", "renorm"], values="accuracy")
        dense = result.dense.set_index(["experiment", "model"])["accuracy"]
        for exp in dict.fromkeys(acc["experiment"]):
            w, d = wide.loc[exp], dense.loc[exp]
            for m in dict.fromkeys(acc["method"]):
                p, r = w[(m, False)], w[(m, True)]
                rows += _rows("renorm_recovers_pruning_loss", f"{exp} / {label[m]}", _ratio(r - p, d.loc[p.index] - p))
            if {"global_magnitude", "fisher"} <= set(acc["method"]):
                before = (w[("global_magnitude", False)] - w[("fisher", False)]).abs()
                after = (w[("global_magnitude", True)] - w[("fisher", True)]).abs()
                rows += _rows("magnitude_fisher_gap_shrinks", exp, before - after)
    if len(result.samples):
        s = result.samples[np.isclose(result.samples["sparsity"], sp)]
        sizes = [lab for lab in dict.fromkeys(s["label"]) if lab not in ("none", "all")]
        if sizes:
            smallest = min(sizes, key=int)
            for (exp, m), g in s.groupby(["experiment", "method"], sort=False):
                g = g.pivot_table(index="model", columns="label", values="accuracy")
                rows += _rows("one_batch_suffices", f"{exp} / {label[m]}",
                              _ratio(g[smallest] - g["none"], g["all"] - g["none"]))
    if len(result.scale):
        sc = result.scale[np.isclose(result.scale["sparsity"], sp)]
        for exp, g in sc.groupby("experiment", sort=False):
            mean = g.groupby(["renorm", "model"])["std_ratio"].mean()
            rows += _rows("pruning_collapses_scale", exp, mean.loc[False])
            rows += _rows("renorm_restores_scale", exp, mean.loc[True])
    if len(result.units):
        u = result.units[np.isclose(result.units["tol"], result.merge_tol) & (result.units["width"] == result.judge_width)]
        for ds, g in u.groupby("dataset", sort=False):
            g = g.set_index("model")
            subject = f"{ds} / width {result.judge_width}"
            rows += _rows("wide_mlp_units_redundant", subject, g["reduced_width"] / g["width"])
            rows += _rows("merging_keeps_accuracy", subject, g["full_accuracy"] - g["reduced_accuracy"])
    if len(result.barriers):
        b = result.barriers[(result.barriers["width"] == result.judge_width) & (result.barriers["method"] == "naive")
                            & result.barriers["dataset"].isin(BARRIER_DATASETS)]
        for ds, g in b.groupby("dataset", sort=False):
            piv = g.pivot_table(index="pair", columns="network", values="loss_barrier")
            rows += _rows("reduction_raises_naive_barrier", f"{ds} / width {result.judge_width}",
                          piv["reduced"] - piv["full"])
    return pd.DataFrame(rows, columns=["claim", "subject", "unit", "value"])


def verdicts(result: Result, criteria: Mapping[str, verdicts_mod.Criterion]) -> pd.DataFrame:
    """One verdict row per declared claim and subject (:func:`lmc_utils.verdicts.verdict` on the
    :func:`unit_statistics`; units are independent trained models, or pairs for barriers). A
    declared claim this run did not measure gets one row with no units (*inconclusive*)."""
    stats = unit_statistics(result)
    rows = []
    for name, criterion in criteria.items():
        got = stats[stats["claim"] == name]
        if got.empty:
            rows.append(verdicts_mod.verdict(NOTEBOOK, criterion, "not measured in this run", []))
        for subject, g in got.groupby("subject", sort=False):
            rows.append(verdicts_mod.verdict(NOTEBOOK, criterion, subject, g["value"].to_numpy()))
    return verdicts_mod.table(rows)
