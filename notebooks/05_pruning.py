# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 — Pruning: re-normalisation as a repair, and redundant hidden units
#
# **Claims.** From Qu & Horvath (2024), §5 and App. G:
#
# 1. One-shot unstructured pruning keeps some weights and zeroes the others, a parameter-wise
#    interpolation between the model and a zero model. Its accuracy loss at high sparsity comes
#    with the activation-scale collapse seen along interpolation paths, and re-normalising after
#    pruning (RESET for BatchNorm models, REPAIR for plain and LayerNorm models) recovers much of
#    the lost accuracy (their Figs. 2A, 6D, 72–73; about +50 points for ResNet50 on ImageNet at 80%
#    sparsity). After re-normalisation, plain global magnitude pruning does about as well as a
#    costlier second-order criterion.
# 2. One batch of data (64–256 examples) is enough for the re-normalisation (their Fig. 74).
#
# From the talk *LMC up to permutation of hidden neurons* ("what if we prune the networks?"):
#
# 3. Wide networks carry redundant hidden units; merging them shrinks a network with little loss
#    (Moons, width 512 → about 272 units, test accuracy 0.998 → 0.990), and once redundancy is
#    removed, naive interpolation between two networks no longer has a low barrier.
#
# Pruning criteria (`lmc_utils.pruning`, masks from `torch.nn.utils.prune`): global magnitude,
# layer-wise magnitude, and diagonal Fisher (saliency `w² · E[g²]`, the empirical Fisher diagonal
# from mini-batch gradients; our stand-in for the paper's WoodFisher). Only Linear/Conv weights are
# pruned. Re-normalisation comes from `lmc_utils.renorm`: REPAIR moves every hidden channel's
# mean and std back to the unpruned model's (measured on the same training examples), folded into
# the layer weights so the sparsity is kept; RESET recomputes BatchNorm statistics.

# %%
from typing import Optional, Union

from IPython.display import Markdown, display

from lmc_utils import figures, plots, profiles, verdicts
from lmc_utils.studies import imagenet_resnet50, pruning as pruning_study
from lmc_utils.device import get_device

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # base seed of the model zoo
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields: a plain, a LayerNorm and a BatchNorm model
n_models: Optional[Union[int, dict]] = None  # experiment -> trained models (seeds seed, seed + 1, ...): the verdicts' units
curve_models: Optional[int] = None  # the first models of each experiment swept over every sparsity (figures)
sparsities: Optional[list] = None  # shares of Linear/Conv weights removed (the curves)
judge_sparsity: Optional[float] = None  # the one sparsity every model is judged at
methods: Optional[list] = None  # global_magnitude | layer_magnitude | fisher
eval_subset: Optional[int] = None  # test examples for accuracies (None: whole test split)
renorm_samples: Optional[int] = None  # training examples for REPAIR/RESET and the Fisher saliency ("all" below)
sample_sizes: Optional[list] = None  # examples for the sample-size study (null: renorm_samples)
sample_sparsities: Optional[list] = None  # sparsities of the sample-size curves
fisher_batches: Optional[int] = None  # mini-batch gradients for the Fisher diagonal
fisher_batch_size: Optional[int] = None  # examples per gradient
redundancy_moons: Optional[dict] = None  # one-hidden-layer Moons MLP (width set per run)
redundancy_mnist: Optional[dict] = None  # one-hidden-layer MNIST MLP (width set per run)
redundancy_widths: Optional[dict] = None  # dataset -> hidden widths
redundancy_models: Optional[Union[int, dict]] = None  # dataset -> runs (or width -> runs); pairs 0-1, 2-3, ... for barriers
judge_width: Optional[int] = None  # the width the redundancy claims are judged at
merge_tols: Optional[list] = None  # cosine tolerances for merging units (sensitivity table)
merge_tol: Optional[float] = None  # the tolerance of the main table, the barriers and the verdicts
n_points: Optional[int] = None  # lambdas on [0, 1]
imagenet: Optional[dict] = None  # Fig. 6D on ImageNet: weight files and budgets (paper profile; null/{}: skipped)

# %%
P = profiles.resolve("05_pruning", profile, globals())  # the parameters cell's values
figures.setup(P.profile)
dev = get_device(device)
criteria = verdicts.load_criteria("05_pruning")
print(f"profile {P.profile} on {dev}: models per experiment {P.n_models} ({P.curve_models} swept over "
      f"{len(P.sparsities)} sparsities x {len(P.methods)} methods); judged at sparsity {P.judge_sparsity:g} "
      f"and width {P.judge_width}")

# %% [markdown]
# ## The rules, declared before the results
# Each claim is judged on one number per independent unit (a trained model; a pair of models for
# barriers), from `params/criteria.yaml`. The pruning claims are judged at the one sparsity
# `judge_sparsity` for every model; the first `curve_models` models of each experiment are also
# swept over all sparsities for the figures. The redundancy claims are judged at width
# `judge_width` and merge tolerance `merge_tol`. Weight matching appears only in the barrier
# figure, between one-hidden-layer networks: one permutation group, so there is no group order to
# vary. A recovered share is left out for a model whose pruning (or full re-normalisation) moved
# the accuracy by less than 5 points: there was nothing to recover, and such a model says nothing
# about the claim (a subject with no model left is *inconclusive*, not a finding). The activation
# scale is measured where re-normalisation acts, at the input of each ReLU: in the LayerNorm MLP
# that is after the LayerNorm, which re-normalises every example across its channels, so a
# collapse can hardly show there whatever pruning does; the scale claims speak mainly for the
# plain MLP and, through BatchNorm's running statistics, the VGG.

# %%
display(Markdown(verdicts.criteria_markdown(criteria) + f"\n\nIn this run: judged sparsity {P.judge_sparsity:g}, judged "
                 f"width {P.judge_width}, merge tolerance {P.merge_tol:g}, smallest re-normalisation sample "
                 f"{min(n for n in P.sample_sizes if n is not None)} examples."))

# %% [markdown]
# ## Pruning with and without re-normalisation
# Every model is pruned once per criterion and sparsity, then evaluated as pruned and after
# re-normalisation. The Fisher saliency and the re-normalisation use training examples only. The
# redundancy study (last section) runs in the same call.

# %%
result = pruning_study.run(P.experiments, P.n_models, P.sparsities, P.methods, P.judge_sparsity, P.curve_models,
                           P.eval_subset, P.renorm_samples, P.sample_sizes, P.sample_sparsities, P.fisher_batches,
                           P.fisher_batch_size, {"moons": P.redundancy_moons, "mnist": P.redundancy_mnist},
                           P.redundancy_widths, P.redundancy_models, P.merge_tols, P.merge_tol, P.judge_width,
                           n_points=P.n_points, seed=seed, device=dev)
T = pruning_study.tables(result)
for name, frame in T.items():
    figures.save_table(frame, name)
table = T["05_pruning_accuracy"]
figures.save_figure(plots.plot_pruning(table, P.judge_sparsity), "05_pruning_accuracy")
table[table["sparsity"] >= 0.7]

# %% [markdown]
# ## Activation scale after pruning
# Pre-activation standard deviation of every hidden layer relative to the unpruned model
# (global magnitude pruning; mean over channels and over the swept models), before and after
# re-normalisation.

# %%
figures.save_figure(plots.plot_scale(result.scale[result.scale["curve"]]), "05_activation_scale");

# %% [markdown]
# ## How many examples does re-normalisation need?

# %%
figures.save_figure(plots.plot_samples(T["05_renorm_samples"]), "05_renorm_samples")
T["05_renorm_samples"]

# %% [markdown]
# ## Redundant hidden units (the talk's study)
# One-hidden-layer MLPs on Moons and MNIST at several widths. A unit is *dead* when it is never
# active on the training inputs (it is dropped), and two units are *redundant* when their
# incoming vectors (weights and bias) point in nearly the same direction: cosine similarity at
# least `1 - merge_tol`. ReLU is positively homogeneous, so a unit that is `c > 0` times another
# is merged exactly by adding `c` times its outgoing weights to the other's. With `merge_tol > 0`
# near-duplicates are merged too (an approximation), so the reduced width depends on the
# tolerance; the sensitivity table shows by how much. The MNIST models are the final SGD iterates
# of notebook 06's runs (shared through the cache). Where merging removes almost no units, the
# accuracy claim is met trivially and the barrier claim has nothing to act on; the barrier claim
# is therefore judged on Moons, the talk's setting, only.

# %%
figures.save_figure(plots.plot_redundancy(result.units, T["05_redundancy_barriers"], P.merge_tol,
                                          pruning_study.TALK_MOONS_REDUCTION), "05_redundancy")
T["05_redundancy"]

# %% [markdown]
# Sensitivity to the merge tolerance (mean over runs; `share` = remaining units / width):

# %%
T["05_merge_tolerance"]

# %% [markdown]
# ## ImageNet: one-shot pruning of a pretrained ResNet50, then RESET (Qu & Horvath Fig. 6D)
# Runs at the `paper` profile only, on ImageNet and ResNet50 weight files you provide (the
# `imagenet` parameter; see the README): nothing is downloaded. At the `smoke` and `cpu` profiles
# (`imagenet` null) this cell does nothing. Every model is pruned by global and layer-wise
# magnitude up to 90% sparsity with its first conv left dense (the `excluded_sparsity` column
# shows it), and evaluated on the validation images as pruned and after RESET on training images;
# `paper_gain` is the gain Qu & Horvath report. Its claims (`05_imagenet` in `params/criteria.yaml`,
# shown first) join the verdicts below; their unit is a model, so with one weights file every
# interval is unbounded and those verdicts are inconclusive whatever the numbers.

# %%
imagenet_result = None
if P.imagenet:
    display(Markdown(verdicts.criteria_markdown(verdicts.load_criteria(imagenet_resnet50.CRITERIA["pruning"]))))
    imagenet_result = imagenet_resnet50.run_pruning(**P.imagenet, seed=seed, device=dev)
    for name, table in imagenet_resnet50.pruning_tables(imagenet_result).items():
        figures.save_table(table, name)
        display(table)

# %% [markdown]
# ## Verdicts
# Computed from the per-model statistics (`05_unit_statistics`) by the rules declared above.

# %%
rows, declared = imagenet_resnet50.with_verdicts(pruning_study.verdicts(result, criteria), criteria, imagenet_result)
display(Markdown(figures.publish_verdicts(rows, declared, "05_pruning")))
