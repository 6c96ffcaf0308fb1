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
# MLP (3 x 512, as in Git Re-Basin) and a small VGG11 with BatchNorm on FashionMNIST; the `paper`
# profile adds VGG16-BN and ResNet20 (4x width) on CIFAR-10.

# %%
from typing import Optional

import pandas as pd
from IPython.display import Markdown, display

from lmc_utils import data, figures, plots, profiles, rebasin, zoo
from lmc_utils.device import get_device

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # model A uses seed, model B seed + 1
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (None: from params/<profile>.yaml)
n_points: Optional[int] = None  # lambdas on [0, 1]
eval_subset: Optional[int] = None  # examples per split evaluated along the curves (null: all)
match_samples: Optional[int] = None  # training examples for activation matching and RESET

# %%
P = profiles.resolve("00_rebasin_basics", profile, experiments=experiments, n_points=n_points,
                     eval_subset=eval_subset, match_samples=match_samples)
figures.setup(P.profile)
dev = get_device(device)
print(f"profile {P.profile} on {dev}: experiments {list(P.experiments)}")

# %% [markdown]
# ## Two independently trained models per experiment
# Models differ only in their seed (initialisation and data order). They are trained once and
# cached by the hash of their full configuration, so re-running the notebook reuses them.

# %%
configs = {name: [zoo.TrainConfig(seed=seed + i, **cfg) for i in range(2)] for name, cfg in P.experiments.items()}
pairs = {name: zoo.get_many(cs, device=dev) for name, cs in configs.items()}
splits = {name: {s: data.load(cs[0].dataset, s, subset=P.eval_subset, device=dev) for s in ("train", "test")}
          for name, cs in configs.items()}

# %% [markdown]
# ## Interpolation curves: naive, weight matching, activation matching
# For each pair, model B is aligned to model A by each method, and the loss and accuracy of
# $(1-\lambda)\,\theta_A + \lambda\,\pi(\theta_B)$ are measured on train and test data. BatchNorm
# models are evaluated twice: with the interpolated running statistics, and after RESET.

# %%
curves = {}
for name, (a, b) in pairs.items():
    match_data = data.load(configs[name][0].dataset, "train", subset=P.match_samples, device=dev)
    curves[name] = rebasin.compare_methods(a.model, b.model, splits[name], match_inputs=match_data.x,
                                           reset_data=match_data, n_points=P.n_points, seed=seed)
    fig = plots.plot_interpolation(curves[name], title=name)
    figures.save_figure(fig, f"00_{name}_interpolation")

# %% [markdown]
# ## Barriers
# Loss barrier: the largest excess of the loss over the straight line joining the endpoint
# losses; accuracy barrier: the largest drop below the line joining the endpoint accuracies
# (`accuracy_a`, `accuracy_b`: the endpoints, model A and aligned model B).

# %%
table = pd.concat([rebasin.barrier_table(c).assign(experiment=name) for name, c in curves.items()],
                  ignore_index=True)
table = table[["experiment", "method", "reset", "split", "loss_barrier", "accuracy_barrier", "accuracy_a", "accuracy_b"]]
figures.save_table(table, "00_barriers")
table

# %% [markdown]
# ## What the curves show
# The summary below is computed from the table above (test split).

# %%
display(Markdown(rebasin.describe(table, split="test")))
