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
# # 01 — Distance and the Taylor barrier estimate
#
# **Claims** (Ito et al., ICLR 2025, §3 and the revised Table 1; distances as in Qu & Horvath,
# ICML 2024, Table 3):
#
# 1. The permutation found by weight matching (WM) shortens the L2 distance between two
#    independently trained models only a little, although it removes most of the loss barrier;
#    activation matching (AM) behaves alike. (Qu & Horvath report for VGG16-BN on CIFAR-10 a
#    distance of 100.3 before matching, 84.5 after WM and 88.3 after AM.)
# 2. A second-order Taylor expansion of the loss predicts the midpoint barrier well for two
#    models in one basin (children spawned from a shared parent), but not for independently
#    trained models after WM or AM: they are too far apart for a local expansion.
#
# The expansion is taken at the midpoint $m$ of the line $\theta_a + \lambda d$,
# $d = \pi(\theta_b) - \theta_a$: the first-order terms cancel and the midpoint barrier is
# estimated by $B \approx -\tfrac18\, d^\top H(m)\, d$, with the Hessian-vector product from
# `torch.func` (forward-over-reverse) on the mean training loss of `loss_subset` examples.

# %%
from typing import Optional

import pandas as pd
from IPython.display import Markdown, display

from lmc_utils import data, figures, plots, profiles, tables, zoo
from lmc_utils.studies import distance_taylor
from lmc_utils.device import get_device

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # independent pair i uses seeds seed + 2i and seed + 2i + 1
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (None: from params/<profile>.yaml)
n_pairs: Optional[int] = None  # independent pairs and spawned pairs per experiment
parent_epochs: Optional[int] = None  # spawned pairs: epochs of the shared parent
loss_subset: Optional[int] = None  # training examples defining the loss (barriers, gradient, HVP)
match_samples: Optional[int] = None  # training examples for activation matching
n_points: Optional[int] = None  # lambdas on [0, 1] for the curves

# %%
P = profiles.resolve("01_distance_taylor", profile, experiments=experiments, n_pairs=n_pairs,
                     parent_epochs=parent_epochs, loss_subset=loss_subset, match_samples=match_samples,
                     n_points=n_points)
figures.setup(P.profile)
dev = get_device(device)
print(f"profile {P.profile} on {dev}: {P.n_pairs} pairs of each kind for {list(P.experiments)}")

# %% [markdown]
# ## Measure
# For every experiment: independent pairs (aligned naively, by WM, by AM, and by a random
# permutation as a control) and spawned pairs; distances, actual and estimated barriers, and the
# loss along the line for the first pair of each kind.

# %%
results = {}
for name, cfg in P.experiments.items():
    base = zoo.TrainConfig(**cfg)
    loss_data = data.load(base.dataset, "train", subset=P.loss_subset, device=dev)
    match_inputs = loss_data.subset(P.match_samples).x
    results[name] = distance_taylor.distance_and_taylor(base, P.n_pairs, P.parent_epochs, loss_data, match_inputs,
                                                n_points=P.n_points, seed=seed, device=dev)
    fig = plots.plot_taylor_curves(results[name].curves, title=name)
    figures.save_figure(fig, f"01_{name}_taylor_curves")

# %% [markdown]
# ## L2 distances (parameters; mean and standard deviation over pairs)
# `relative_to_naive` is the distance divided by the same pair's distance before any permutation.

# %%
distances = pd.concat([r.distances.assign(experiment=n) for n, r in results.items()], ignore_index=True)
distance_table = tables.mean_std(distances, ["experiment", "kind", "method"], ["distance", "relative_to_naive"])
figures.save_table(distance_table, "01_distances")
distance_table

# %% [markdown]
# Per layer (independent pairs, mean over pairs):

# %%
layers = pd.concat([r.layers.assign(experiment=n) for n, r in results.items()], ignore_index=True)
layer_table = (layers[layers["kind"] == "independent"]
               .pivot_table(index=["experiment", "layer"], columns="method", values="distance", aggfunc="mean", sort=False)
               .reset_index())
figures.save_table(layer_table, "01_layer_distances")
layer_table

# %% [markdown]
# ## Actual vs Taylor-estimated midpoint barrier (train loss, nats)
# `diff` = actual − estimate, with a paired t-test over pairs (`significant`: p < 0.05).

# %%
taylor_rows = pd.concat([r.taylor.assign(experiment=n) for n, r in results.items()], ignore_index=True)
taylor_table = tables.paired_ttest(taylor_rows, ["experiment", "kind", "method"], "actual", "estimate")
figures.save_table(taylor_table, "01_taylor_barriers")
taylor_table

# %% [markdown]
# ## What this run shows
# Computed from the tables above:

# %%
barriers = tables.mean_std(taylor_rows, ["experiment", "kind", "method"], ["actual"])
display(Markdown(distance_taylor.describe_distance_taylor(distance_table, taylor_table, barriers)))
