# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
from typing import Optional

from IPython.display import Markdown, display

from lmc_utils import data, figures, profiles, zoo
from lmc_utils.studies import pruning as pruning_study
from lmc_utils.device import get_device

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # base seed of the model zoo
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields: a plain, a LayerNorm and a BatchNorm model
n_models: Optional[int] = None  # trained models per experiment (seeds seed, seed + 1, ...)
sparsities: Optional[list] = None  # shares of Linear/Conv weights removed
methods: Optional[list] = None  # global_magnitude | layer_magnitude | fisher
eval_subset: Optional[int] = None  # test examples for accuracies (None: whole test split)
renorm_samples: Optional[int] = None  # training examples for REPAIR/RESET ("all" below)
sample_sizes: Optional[list] = None  # examples for the sample-size study (null: renorm_samples)
sample_sparsities: Optional[list] = None  # sparsities of the sample-size study
fisher_batches: Optional[int] = None  # mini-batch gradients for the Fisher diagonal
fisher_batch_size: Optional[int] = None  # examples per gradient
redundancy_moons: Optional[dict] = None  # one-hidden-layer Moons MLP (width set per run)
redundancy_mnist: Optional[dict] = None  # one-hidden-layer MNIST MLP (width set per run)
redundancy_widths: Optional[dict] = None  # dataset -> hidden widths
redundancy_models: Optional[dict] = None  # dataset -> runs per width (pairs 0-1, 2-3, ... for barriers)
merge_tols: Optional[list] = None  # cosine tolerances for merging units (sensitivity table)
merge_tol: Optional[float] = None  # the tolerance of the main table and the barriers
n_points: Optional[int] = None  # lambdas on [0, 1]

# %%
P = profiles.resolve("05_pruning", profile, experiments=experiments, n_models=n_models, sparsities=sparsities,
                     methods=methods, eval_subset=eval_subset, renorm_samples=renorm_samples,
                     sample_sizes=sample_sizes, sample_sparsities=sample_sparsities, fisher_batches=fisher_batches,
                     fisher_batch_size=fisher_batch_size, redundancy_moons=redundancy_moons,
                     redundancy_mnist=redundancy_mnist, redundancy_widths=redundancy_widths,
                     redundancy_models=redundancy_models, merge_tols=merge_tols, merge_tol=merge_tol,
                     n_points=n_points)
figures.setup(P.profile)
dev = get_device(device)
configs = {name: zoo.TrainConfig(**cfg) for name, cfg in P.experiments.items()}
print(f"profile {P.profile} on {dev}: {', '.join(configs)}; {len(P.sparsities)} sparsities x {len(P.methods)} methods")

# %% [markdown]
# ## Pruning with and without re-normalisation
# Every model is pruned once per criterion and sparsity, then evaluated as pruned and after
# re-normalisation. The Fisher saliency and the re-normalisation use training examples only.

# %%
evals, renorms, fishers = {}, {}, {}
for name, cfg in configs.items():
    evals[name] = data.load(cfg.dataset, "test", subset=P.eval_subset, device=dev)
    train = data.load(cfg.dataset, "train", subset=P.renorm_samples, seed=seed + 7, device=dev)
    renorms[name] = fishers[name] = train
result = pruning_study.pruning_sweep(configs, P.sparsities, P.methods, evals, renorms, fishers,
                                     P.sample_sizes, P.sample_sparsities, n_models=P.n_models,
                                     fisher_batches=P.fisher_batches, fisher_batch_size=P.fisher_batch_size,
                                     seed=seed, device=dev)
table = pruning_study.pruning_table(result)
figures.save_table(table, "05_pruning_accuracy")
figures.save_figure(pruning_study.plot_pruning(table), "05_pruning_accuracy")
table[table["sparsity"] >= 0.7]

# %% [markdown]
# ## Activation scale after pruning
# Pre-activation standard deviation of every hidden layer relative to the unpruned model
# (global magnitude pruning; mean over channels), before and after re-normalisation.

# %%
figures.save_figure(pruning_study.plot_scale(result.scale), "05_activation_scale")

# %% [markdown]
# ## How many examples does re-normalisation need?

# %%
samples = (result.samples.groupby(["experiment", "method", "sparsity", "label"], sort=False)["accuracy"]
           .mean().unstack("label").reset_index())
figures.save_table(samples, "05_renorm_samples")
figures.save_figure(pruning_study.plot_samples(result.samples), "05_renorm_samples")
samples

# %% [markdown]
# ## Redundant hidden units (the talk's study)
# One-hidden-layer MLPs on Moons and MNIST at several widths. A unit is *dead* when it is never
# active on the training inputs (it is dropped), and two units are *redundant* when their
# incoming vectors (weights and bias) point in nearly the same direction: cosine similarity at
# least `1 - merge_tol`. ReLU is positively homogeneous, so a unit that is `c > 0` times another
# is merged exactly by adding `c` times its outgoing weights to the other's. With `merge_tol > 0`
# near-duplicates are merged too (an approximation), so the reduced width depends on the
# tolerance; the sensitivity table shows by how much. The MNIST models are the final SGD iterates
# of notebook 06's runs (shared through the cache).

# %%
red_configs = {"moons": zoo.TrainConfig(**P.redundancy_moons), "mnist": zoo.TrainConfig(**P.redundancy_mnist)}
red_test = {ds: data.load(c.dataset, "test", device=dev) for ds, c in red_configs.items()}
red_inputs = {ds: data.load(c.dataset, "train", subset=10000, device=dev).x for ds, c in red_configs.items()}
red = pruning_study.redundancy_study(red_configs, P.redundancy_widths, P.redundancy_models, P.merge_tols, P.merge_tol,
                                     red_test, red_inputs, n_points=P.n_points, seed=seed, device=dev)
reduction = pruning_study.reduction_table(red.units, P.merge_tol)
figures.save_table(reduction, "05_redundancy")
figures.save_table(pruning_study.tolerance_table(red.units), "05_merge_tolerance")
figures.save_table(pruning_study.barrier_summary(red.barriers), "05_redundancy_barriers")
figures.save_figure(pruning_study.plot_redundancy(red.units, red.barriers, P.merge_tol), "05_redundancy")
reduction

# %% [markdown]
# Sensitivity to the merge tolerance (mean over runs; `share` = remaining units / width):

# %%
pruning_study.tolerance_table(red.units)

# %% [markdown]
# ## What this run shows
# Computed from the tables above:

# %%
display(Markdown(pruning_study.describe_pruning(table, result.samples, result.scale)))
display(Markdown(pruning_study.describe_redundancy(red.units, red.barriers, P.merge_tol)))
