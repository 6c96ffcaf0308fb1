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
# # 04 — Re-normalisation: REPAIR, RESCALE, RESHIFT, RESET
#
# **Claims** (Qu & Horvath 2024, *Rethink Model Re-Basin*, §4.1–4.2, App. E.5, F.1–F.3; Jordan
# et al. 2023, REPAIR):
#
# 1. Without normalisation layers the matched midpoint of two independent models suffers
#    *variance collapse* — the hidden activation scale shrinks layer by layer; re-normalisation
#    restores it (RESET for BatchNorm models, REPAIR for plain and LayerNorm models).
# 2. The rescaling half of REPAIR does the work: RESCALE ≥ REPAIR, RESCALE with one average target
#    std per layer is close, RESHIFT alone fails (their Table 1, plain VGG16 on CIFAR-10, weight
#    matching: none 14.2%, REPAIR 75.1%, RESCALE 84.3%, RESCALE (avg) 78.2%, RESHIFT 10%).
# 3. Without matching, re-normalisation does not help: neurons are dead and the statistics look
#    like those of a random initialisation. Matching retains information that re-normalisation
#    amplifies.
# 4. Sequential REPAIR beats the one-pass version, sequential RESCALE changes little (Table 9);
#    goal statistics from an independent third model still work (Table 8); a data-independent
#    variant comes close (Tables 10–11).
# 5. Removing biases, or homogeneous interpolation (Wang et al. 2022), lowers the accuracy barrier
#    after matching much like re-normalisation — but the loss barrier remains.
# 6. The matched midpoint re-trains to high train accuracy in far fewer steps than the naive
#    midpoint or a fresh model ("knowledge retained", Fig. 4C).
#
# At the `cpu` profile: six-layer plain and LayerNorm MLPs (width 128) on FashionMNIST — deep enough
# for the collapse to show, small enough to train in seconds — and a small BatchNorm VGG11 for
# RESET. The `paper` profile runs the paper's VGG16 / ResNet20 / VGG11 on CIFAR.
#
# How the corrections are implemented (`lmc_utils.renorm`): each hidden layer's pre-activation
# channels are moved onto goal statistics, `(1-λ)·stats_A + λ·stats_B`, and the per-channel scale
# and shift are folded into the layer's weights and bias (for LayerNorm models into the norm's
# affine parameters, after the norm, as Jordan et al. do), so a corrected model is an ordinary
# model. "One-pass" is Jordan et al.'s statistics pass (every layer corrected batch-wise while its
# statistics are accumulated); "SEQ" measures and corrects one layer at a time on the whole
# statistics set. "Data-independent" evaluates with the statistics of each test batch (BatchNorm
# in train mode); for non-BN models its goal statistics still come from the endpoints on training
# data, since our zoo does not record running statistics during training.

# %%
from typing import Optional

import pandas as pd
from IPython.display import Markdown, display

from lmc_utils import data, figures, plots, profiles, zoo
from lmc_utils.studies import renormalisation
from lmc_utils.device import get_device

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # pair i uses seeds seed + 2i, seed + 2i + 1
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (None: from params/<profile>.yaml)
n_pairs: Optional[int] = None  # independent pairs per experiment, at least 2
n_points: Optional[int] = None  # lambdas of the interpolation curves
eval_subset: Optional[int] = None  # test examples for every accuracy and loss (null: all)
stats_samples: Optional[int] = None  # training examples for goal statistics, activation matching, RESET
methods: Optional[list] = None  # alignments in the ablation table: weight | activation | naive
curve_methods: Optional[list] = None  # alignments of the interpolation curves
bias_experiment: Optional[str] = None  # experiment whose pairs are compared with bias-free pairs
bias_pairs: Optional[int] = None  # pairs in the bias study
retrain_experiment: Optional[str] = None  # experiment whose first pair is re-trained from its midpoints
retrain: Optional[dict] = None  # zoo.TrainConfig changes for re-training
target_accuracy: Optional[float] = None  # train accuracy to reach when re-training

# %%
P = profiles.resolve("04_renormalisation", profile, experiments=experiments, n_pairs=n_pairs, n_points=n_points,
                     eval_subset=eval_subset, stats_samples=stats_samples, methods=methods,
                     curve_methods=curve_methods, bias_experiment=bias_experiment, bias_pairs=bias_pairs,
                     retrain_experiment=retrain_experiment, retrain=retrain, target_accuracy=target_accuracy)
figures.setup(P.profile)
dev = get_device(device)
bases = {name: zoo.TrainConfig(**cfg) for name, cfg in P.experiments.items()}
print(f"profile {P.profile} on {dev}: experiments {list(bases)}, {P.n_pairs} pairs each")

# %% [markdown]
# ## Independent pairs
# Each experiment trains `2 n_pairs` models that differ only in their seed; they are cached by
# config hash. Statistics (goals, activation matching, RESET) use a fixed subset of the training
# set; every accuracy and loss is measured on the test set.

# %%
pairs = {name: zoo.independent_pairs(base, P.n_pairs, seed=seed, device=dev) for name, base in bases.items()}
stats = {name: data.load(base.dataset, "train", subset=P.stats_samples, seed=seed + 1, device=dev)
         for name, base in bases.items()}
test = {name: data.load(base.dataset, "test", subset=P.eval_subset, device=dev) for name, base in bases.items()}

# %% [markdown]
# ## The ablation table: midpoint test accuracy per re-normalisation variant
# Mean ± std over pairs of the midpoint (λ = 0.5) after weight matching (WM), activation
# matching (AM) and no matching (naive). For variant "indep." the goal statistics come from a
# third model (model A of the next pair, aligned by the same method) instead of the endpoints.

# %%
raw = pd.concat([renormalisation.midpoint_ablation(pairs[n], test[n], stats[n].x, stats[n], methods=P.methods, seed=seed)
                 .assign(experiment=n) for n in bases], ignore_index=True)
summary = renormalisation.ablation_summary(raw)
figures.save_table(raw, "04_ablation_pairs")
figures.save_table(summary, "04_ablation")
acc = summary.assign(acc=[f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(summary["accuracy_mean"], summary["accuracy_std"])])
acc.pivot_table(index="variant", columns=["experiment", "method"], values="acc", aggfunc="first", sort=False)

# %%
display(Markdown(renormalisation.describe_ablation(raw)))

# %% [markdown]
# ## Interpolation curves with each variant
# First pair of each experiment; at every λ the goal statistics are `(1-λ)·stats_A + λ·stats_B`.

# %%
curves = {}
for n in bases:
    a, b = pairs[n][0]
    curves[n] = renormalisation.variant_curves(a, b, test[n], stats[n].x, stats[n], methods=P.curve_methods,
                                            n_points=P.n_points, seed=seed)
    figures.save_figure(plots.plot_variant_curves(curves[n], title=n), f"04_{n}_curves")
curve_table = pd.concat([renormalisation.curve_barriers(c, ["method", "variant"]).assign(experiment=n)
                         for n, c in curves.items()], ignore_index=True)
figures.save_table(curve_table, "04_curve_barriers")
curve_table

# %% [markdown]
# ## Variance collapse and dead neurons: per-layer activation statistics
# First pair; statistics on the training subset. Pre-activation std (channel mean), post-activation
# std and the share of exactly-zero post-activations, for the endpoints, the naive and WM midpoints
# with and without REPAIR / RESCALE (RESET for BatchNorm), and a random initialisation.

# %%
profiles_ = pd.concat([renormalisation.activation_profiles(*pairs[n][0], stats[n].x, seed=seed, reset_data=stats[n])
                       .assign(experiment=n) for n in bases], ignore_index=True)
figures.save_table(profiles_, "04_activation_stats")
for n in bases:
    figures.save_figure(plots.plot_activation_profiles(profiles_[profiles_["experiment"] == n], title=n),
                        f"04_{n}_activation_stats")
display(Markdown(renormalisation.describe_activations(profiles_)))

# %% [markdown]
# ## Bias removal and homogeneous interpolation
# Weight-matched pairs of the bias experiment, trained with biases (plain interpolation, + RESCALE,
# and homogeneous interpolation: the bias of layer `l` weighted by `(1-λ)^l` and `λ^l`) and the
# same configuration trained without biases.

# %%
bias_base = bases[P.bias_experiment]
unbiased = zoo.independent_pairs(bias_base.replace(model={**bias_base.model, "bias": False}), P.bias_pairs,
                                     seed=seed, device=dev)
bias_curves = renormalisation.bias_study(pairs[P.bias_experiment][:P.bias_pairs], unbiased, test[P.bias_experiment],
                                      stats[P.bias_experiment].x, n_points=P.n_points, seed=seed)
bias_table = renormalisation.curve_barriers(bias_curves, ["curve", "pair"])
figures.save_table(bias_table, "04_bias_barriers")
figures.save_figure(plots.plot_bias_curves(bias_curves, title=P.bias_experiment), "04_bias_curves")
display(Markdown(renormalisation.describe_bias(bias_table)))

# %% [markdown]
# ## Knowledge retained: re-training from the midpoints
# The first pair's naive, WM and AM midpoints and a fresh initialisation are re-trained with a
# small learning rate; the running train accuracy per epoch is plotted against optimisation steps.

# %%
rbase = bases[P.retrain_experiment]
rconfig = rbase.replace(**P.retrain, seed=seed + 20_000)
history = renormalisation.retraining(*pairs[P.retrain_experiment][0], rconfig, stats[P.retrain_experiment].x,
                                  seed=seed, device=dev)
steps = renormalisation.steps_to_accuracy(history, P.target_accuracy)
figures.save_table(steps, "04_retraining")
figures.save_figure(plots.plot_retraining(history, P.target_accuracy), "04_retraining")
display(Markdown(renormalisation.describe_retraining(steps, P.target_accuracy)))
