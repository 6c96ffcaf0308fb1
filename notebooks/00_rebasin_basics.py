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
# # 00 — Re-basin basics: naive vs matched interpolation
#
# **Claim** (Entezari et al. 2022; Ainsworth et al. 2023, *Git Re-Basin*, §3–5): two networks
# trained from different random seeds are separated by a high loss barrier along the straight
# line between their weights, but once the hidden units of one are permuted to line up with
# the other — by *weight matching* (WM) or *activation matching* (AM) — the barrier largely
# disappears. For BatchNorm networks the interpolated model's running statistics are wrong and
# must be recomputed (RESET, Jordan et al. 2023) before the low barrier shows.
#
# This is the baseline every later notebook builds on. At the `cpu` profile it uses an MNIST
# MLP (3 x 512, as in Git Re-Basin) and a small VGG11 with BatchNorm on FashionMNIST (notebook
# 04's models); the `paper` profile adds VGG16-BN and ResNet20 (4x width) on CIFAR-10. Every claim
# is judged over several independent pairs per experiment, and weight matching over several random
# orders of its permutation groups (the order changes the permutation it returns).

# %%
from typing import Optional

from IPython.display import Markdown, display

from lmc_utils import data, figures, plots, profiles, verdicts, zoo
from lmc_utils.device import get_device
from lmc_utils.studies import rebasin_basics

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # pair i uses seeds seed + 2i (model A) and seed + 2i + 1 (model B)
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (None: from params/<profile>.yaml)
n_pairs: Optional[dict] = None  # name -> independent pairs per experiment
n_orders: Optional[int] = None  # random group orders of weight matching per pair
n_points: Optional[int] = None  # lambdas on [0, 1]
eval_subset: Optional[int] = None  # examples per split evaluated along the curves (null: all)
match_samples: Optional[int] = None  # training examples for activation matching and RESET

# %%
P = profiles.resolve("00_rebasin_basics", profile, globals())  # the parameters cell's values
figures.setup(P.profile)
dev = get_device(device)
criteria = verdicts.load_criteria("00_rebasin_basics")
print(f"profile {P.profile} on {dev}: pairs {P.n_pairs}, {P.n_orders} weight-matching group orders")

# %% [markdown]
# ## Declared criteria
# Each claim is judged by the rule below, fixed before any result (`params/criteria.yaml`), on the
# test split. One unit is an independent pair; weight matching's group orders are averaged per pair.

# %%
display(Markdown(verdicts.criteria_markdown(criteria)))

# %% [markdown]
# ## Independent pairs, aligned three ways
# Models of a pair differ only in their seed (initialisation and data order); they are trained once
# and cached by the hash of their full configuration. Model B is aligned to model A naively (no
# permutation), by weight matching (one permutation per group order) and by activation matching,
# and the loss and accuracy of $(1-\lambda)\,\theta_A + \lambda\,\pi(\theta_B)$ are measured. BatchNorm
# models are evaluated twice: with the interpolated running statistics, and after RESET.

# %%
configs = {name: zoo.TrainConfig(**cfg) for name, cfg in P.experiments.items()}
splits = {name: {s: data.load(c.dataset, s, subset=P.eval_subset, device=dev) for s in ("train", "test")}
          for name, c in configs.items()}
match_data = {name: data.load(c.dataset, "train", subset=P.match_samples, device=dev) for name, c in configs.items()}
result = rebasin_basics.run(configs, P.n_pairs, splits, match_data, n_orders=P.n_orders, n_points=P.n_points,
                            seed=seed, device=dev)

# %% [markdown]
# ## Interpolation curves of the first pair
# Weight matching with its first group order; train (solid) and test (dashed) split.

# %%
for name in configs:
    fig = plots.plot_interpolation(result.curves[result.curves["experiment"] == name],
                                  title=figures.experiment_label(name))
    figures.save_figure(fig, f"00_{name}_interpolation")

# %% [markdown]
# ## Barriers over pairs
# Loss barrier: the largest excess of the loss over the straight line joining the endpoint losses;
# accuracy barrier: the largest drop below the line joining the endpoint accuracies (`accuracy_a`,
# `accuracy_b`: model A and aligned model B). Mean and standard deviation over pairs; the first pair
# is also measured on the train split. `00_barriers_pairs` has every pair and group order.

# %%
summary = rebasin_basics.tables(result)
for table_name, frame in summary.items():
    figures.save_table(frame, table_name)
summary["00_barriers"]

# %% [markdown]
# ## Verdicts
# Computed from the pairs above by the declared rules. Where a barrier is already small before
# matching, a ratio to it is not informative; the naive-barrier verdict says whether there was a
# barrier to remove.

# %%
display(Markdown(figures.publish_verdicts(rebasin_basics.verdicts(result, criteria), criteria, "00_rebasin_basics")))
