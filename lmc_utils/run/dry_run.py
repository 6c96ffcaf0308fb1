"""Dry runs: every notebook with a profile's architectures, configs and code paths, at tiny budgets.

``python -m lmc_utils.run --profile paper --dry-run`` (``make dry-run``) executes the notebooks
through the normal runner, so the parameters are checked as in a real run, but into a fresh
folder ``build/dry-run/<profile>/`` (figures, executed notebooks, status and a model cache of its
own), never ``figures/<profile>/`` or the user's ``LMC_CACHE_DIR``. It fails on any config or code
error the profile would hit, in minutes on one CPU core instead of days on a GPU; the numbers it
produces mean nothing.

The runner tells the kernels by setting ``LMC_DRY_RUN=1`` (:func:`kernel_variables`); this module
is the one place that reads it (:func:`active`) and that says what a dry run shrinks:

- :func:`budget`, applied by :func:`lmc_utils.profiles.resolve` to every notebook's resolved
  parameters: every training config (any mapping with an ``epochs`` entry, also a change such as
  notebook 04's ``retrain``) trains at most :data:`TRAINING_CAPS` epochs; the counts of units,
  orders, points, steps and batches are capped by :data:`CAPS` (and :data:`NOTEBOOK_CAPS` where
  a notebook needs more, e.g. notebook 04's ablation takes its third model from another pair).
- :func:`split_examples`, applied by :func:`lmc_utils.data.load`: at most
  :data:`SPLIT_EXAMPLES` examples per split, so that every training epoch is one optimisation step
  (every paper batch size is larger) and every evaluation one small batch.
- :func:`weight_matching_sweeps`, applied by :func:`lmc_utils.matching.weight_matching`: at most
  :data:`WEIGHT_MATCHING_SWEEPS` sweeps (between barely trained VGG16s a sweep costs about a
  second on one core, and the search would run for dozens).
- :func:`fake_data_allowed`: CIFAR-10/100 absent from ``LMC_DATA_DIR`` are replaced by CIFAR-shaped
  ``torchvision.datasets.FakeData`` (:func:`lmc_utils.data.load`, with a ``RuntimeWarning`` that the
  runner's summary repeats), an absent ImageNet by ImageNet-shaped FakeData and absent ResNet50
  weight files by randomly initialised ResNet50s (:mod:`lmc_utils.imagenet`, also with a warning;
  :data:`IMAGENET_CAPS` makes those images small). Outside a dry run missing data raise the usual error.

Architectures, widths, depths, normalisations, datasets and methods stay as the profile has them:
exercising their code paths is the point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core import settings
# what a dry run does below the notebooks' parameters lives with the other settings (re-exported here)
from ..core.settings import (SPLIT_EXAMPLES, WEIGHT_MATCHING_SWEEPS, fake_data_allowed, planning,  # noqa: F401
                             split_examples, weight_matching_sweeps)
from ..core.settings import dry_run as active  # noqa: F401

VARIABLE = settings.DRY_RUN  # set to "1" by the runner in the kernels' environment
# A plan run (lmc_utils.run.plan): the request file the zoo's recorder appends to. A plan run is a dry
# run (few examples, capped sweeps, FakeData) whose parameters are *not* cut: its configs are the real ones.
PLAN_VARIABLE = settings.ZOO_PLAN

TRAINING_CAPS = {"epochs": 2, "swa_epochs": 2}  # caps on every mapping with an ``epochs`` entry

# Caps on notebook parameters by name: a number caps a number, every number of a mapping
# (``n_pairs: {mlp_mnist: 8, ...}``) and a list of numbers (its entries up to the cap are kept, or
# its smallest); a mapping caps the entries of a mapping parameter it names.
CAPS: dict[str, Any] = {
    # units: one pair / triple / model, or one independent pair where pairs are made of runs
    "n_pairs": 1, "pairs_by_experiment": 1, "n_triples": 1, "n_models": 1, "curve_models": 1,
    "bias_pairs": 1, "retrain_pairs": 1, "sinkhorn_pairs": 1, "n_runs": 2, "redundancy_models": 2,
    "n_planted": 1,  # one planted permutation per pair (notebook 07)
    "n_orders": 1,  # one weight-matching group order (the smoke profile runs the code comparing orders)
    "n_points": 3,  # lambda 0, 1/2, 1
    "parent_epochs": 1,  # spawned children then train the remaining epoch
    "sample_stride": 1,  # with 2 SWA epochs a stride of 2 would leave no pair of samples
    "plane_resolution": 3,
    "ste_steps": 2, "ste_eval_every": 1, "ste_batch_size": 4, "ste_held_size": 4, "ste_projection_sweeps": 1,
    "fisher_batches": 2, "fisher_batch_size": 4,
    "sinkhorn": {"steps": 2, "sinkhorn_iters": 2},
    # notebook 08: one group of three models and one spawned group, merged at n = 2, 3; two iterative passes
    "n_groups": 1, "spawned_groups": 1, "group_size": 3, "ns": 3, "max_iterations": 2,
}


@dataclass(frozen=True)
class Sweep:
    """A cap on a sweep (a list of values, or a mapping of such lists): keep its smallest number,
    ``None`` where it has one (often a code path of its own, e.g. "all examples"), and the entries
    equal to the values of the parameters named in ``judged`` (the points a notebook's verdicts read,
    e.g. ``judge_sparsity``). Every code path a sweep runs is run once; the points between are not."""

    judged: tuple[str, ...] = ()
    largest: bool = False  # keep the largest number too (a sweep whose claim compares its ends)
    smallest: bool = True  # keep the smallest number (False: only the judged points, and None)

    def apply(self, value: Any, values: Mapping[str, Any]) -> Any:
        if isinstance(value, Mapping):
            return {k: self.apply(v, values) for k, v in value.items()}
        if not isinstance(value, list) or not value:
            return value
        numbers = [v for v in value if _is_number(v)]
        keep = {values.get(name) for name in self.judged} | ({min(numbers)} if numbers and self.smallest else set())
        if self.largest and numbers:
            keep.add(max(numbers))
        return [v for v in value if v is None or v in keep]


# The ImageNet sections of notebooks 02 and 05 (their ``imagenet`` mapping; lmc_utils.imagenet gives
# FakeData and randomly initialised ResNet50s where ImageNet and the weight files are absent): images
# of 64 pixels, small batches, no DataLoader workers. A ResNet50's SVDs (two models: about a minute
# on one core) and weight matching (about 6 s a sweep, at most WEIGHT_MATCHING_SWEEPS) stay as they are.
IMAGENET_CAPS: dict[str, Any] = {"resolution": 64, "batch_size": 8, "workers": 0, "input_rows": 256,
                                 "input_examples": 8}

NOTEBOOK_CAPS: dict[str, dict[str, Any]] = {
    # The ablation needs 2 pairs. The width sweep keeps two small multipliers: the paper's VGG16 at 8x
    # width has ~64x the weights of 1x, minutes per model on one core even on a few images.
    "04_renormalisation": {"n_pairs": 2, "pairs_by_experiment": 2, "width_pairs": 2, "info_pairs": 2,
                           "bias_finetune_pairs": 2, "widths": lambda widths: [0.25, 0.5]},
    # Notebook 05's sweeps: 11 sparsities x 3 methods x every model is most of its dry run (a VGG16
    # pruned, re-normalised and evaluated 33 times); the smallest and the judged one remain.
    "05_pruning": {"sparsities": Sweep(("judge_sparsity",)), "sample_sparsities": Sweep(("judge_sparsity",)),
                   "sample_sizes": Sweep(), "merge_tols": Sweep(("merge_tol",)),
                   "redundancy_widths": Sweep(("judge_width",)),
                   "imagenet": {**IMAGENET_CAPS, "sparsities": Sweep(("judge_sparsity",), smallest=False)}},
    # Notebook 07's learning-rate study trains pairs of VGG16-BN at every rate: its two ends remain (and
    # the pruning curves of their models keep two sparsities); the weight-decay sweep keeps its ends and
    # the judged value (the verdicts compare the smallest with it, and the largest with the best).
    "07_same_basin": {"lrs": Sweep(largest=True), "prune_sparsities": Sweep(largest=True),
                      "weight_decays": Sweep(("judge_weight_decay",), largest=True)},
    # Width multiplier 1 only: the SVDs of every layer (three models per pair) already take half a
    # minute for VGG11 on one core, and 8x that at 2x width (the 4x VGG11 also costs a minute per
    # weight-matching sweep). Wider conv nets run in notebooks 00 (ResNet20 4x) and 06 (2x, 4x).
    "02_singular_vectors": {"widths": 1, "sinkhorn_widths": 1, "imagenet": {**IMAGENET_CAPS, "n_orders": 1}},
    # The width study's units are disjoint pairs of a width's networks: 4 networks give 2 pairs (the
    # verdicts' intervals need 2); every width is kept (one-hidden-layer MLPs on 8 examples are cheap).
    "09_width_clusters": {"n_models": 4, "cluster_models": 4, "cluster_points": 3,
                          "robustness": {"n_models": 4}, "deep": {"n_models": 4}},
    # The ladder: two pairs (notebook 04's ablation needs them), one triple and one spawned pair per
    # width, and each rung's two narrowest widths (two, so the slope claims still run).
    "10_regime_ladder": {"n_pairs": 2, "spawned_pairs": 1,
                         "ste": {"steps": 2, "eval_every": 1, "batch_size": 4, "held_size": 4, "wm_sweeps": 1},
                         "rungs": lambda rungs: {name: {**r, "widths": sorted(r.get("widths") or [])[:2]}
                                                 for name, r in rungs.items()}},
}


# The caps a plan run keeps: parameters of the algorithms run on trained models (evaluation points,
# STE and Fisher budgets, Sinkhorn steps), which no study uses to build a training config; with a
# plan run's few examples (split_examples) some would not fit otherwise (STE's held examples).
PLAN_CAPS = ("n_points", "sample_stride", "plane_resolution", "ste_steps", "ste_eval_every", "ste_batch_size",
             "ste_held_size", "ste_projection_sweeps", "fisher_batches", "fisher_batch_size", "sinkhorn", "ste")


def plan_variables(requests: Path, cache: Path) -> dict[str, str]:
    """The environment the runner gives the kernels of a plan run: the request file and a scratch
    ``LMC_CACHE_DIR`` (unpacked data only: nothing is trained)."""
    return {PLAN_VARIABLE: str(requests), "LMC_CACHE_DIR": str(cache)}


def kernel_variables(cache: Path) -> dict[str, str]:
    """The environment the runner gives the kernels of a dry run: the flag, and ``cache`` as
    ``LMC_CACHE_DIR`` (models trained at tiny budgets never enter the user's cache)."""
    return {VARIABLE: "1", "LMC_CACHE_DIR": str(cache)}


def budget(notebook: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (a notebook's resolved parameters) at dry-run budgets: :data:`CAPS` (with the
    notebook's :data:`NOTEBOOK_CAPS`) on the named parameters, :data:`TRAINING_CAPS` on every
    mapping with an ``epochs`` entry, however deep (also inside a capped parameter). A value already below its cap, ``None`` and
    everything else (architectures, widths, datasets, methods, ...) is kept. Pure: ``values`` is
    not changed."""
    caps = {**CAPS, **NOTEBOOK_CAPS.get(notebook, {})}

    def capped(name: str, value: Any) -> Any:
        if name not in caps:
            return value
        cap = caps[name]
        if isinstance(cap, Sweep):
            return cap.apply(value, values)
        if callable(cap):  # a cap of its own shape (notebook 10's rungs)
            return cap(value) if isinstance(value, Mapping) else value
        if isinstance(cap, Mapping) and isinstance(value, Mapping):  # a mapping parameter (notebook 02's
            # and 05's `imagenet`): its entries capped, a Sweep judged by the mapping's own entries
            return {k: (cap[k].apply(v, value) if isinstance(cap[k], Sweep) else _cap(v, cap[k])) if k in cap else v
                    for k, v in value.items()}
        return _cap(value, cap)

    return {name: _cap_training(capped(name, value)) for name, value in values.items()}


def plan_budget(notebook: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the caps of :data:`PLAN_CAPS` only (a plan run's parameters: every training
    config, count of models and width stays as given). Pure."""
    caps = {**CAPS, **NOTEBOOK_CAPS.get(notebook, {})}
    return {name: _cap(value, caps[name]) if name in PLAN_CAPS and name in caps else value
            for name, value in values.items()}


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Names of the parameters :func:`budget` changed, in order."""
    return [name for name in before if before[name] != after.get(name)]


def _cap(value: Any, cap: Any) -> Any:
    if isinstance(value, Mapping):
        if isinstance(cap, Mapping):
            return {k: _cap(v, cap[k]) if k in cap else v for k, v in value.items()}
        return {k: _cap(v, cap) for k, v in value.items()}
    if isinstance(cap, Mapping):
        return value
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        return [v for v in value if v <= cap] or [min(value)]
    return min(value, cap) if _is_number(value) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cap_training(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {k: _cap_training(v) for k, v in value.items()}
        if "epochs" in out:
            out.update({k: _cap(out[k], cap) for k, cap in TRAINING_CAPS.items() if k in out})
        return out
    if isinstance(value, list):
        return [_cap_training(v) for v in value]
    return value
