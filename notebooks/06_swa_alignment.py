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
# # 06 — SWA samples are implicitly aligned
#
# **Claims** (the talk *LMC up to permutation of hidden neurons*, "Analyzing SWA"; Izmailov et
# al. 2018):
#
# 1. Continue SGD from a trained network and keep the weights at the end of every epoch (the SWA
#    samples): every pair of samples is linearly mode connected, at every width — which is why
#    averaging them (SWA) works with no permutation alignment at all.
# 2. Weight matching between two SWA samples returns (almost) the identity permutation; between
#    independently trained networks it does not.
# 3. The SWA average is at least as good as the samples.
#
# Two-layer MLPs (one hidden layer) on MNIST at the `cpu` profile, as in the talk; ResNet20 on
# CIFAR-10 at the `paper` profile. The SWA phase uses `torch.optim.swa_utils` (`SWALR`,
# `AveragedModel`, `update_bn`) inside the zoo's training function.

# %%
from typing import Optional

from IPython.display import Markdown, display

from lmc_utils import data, figures, plots, profiles, zoo
from lmc_utils.studies import swa
from lmc_utils.device import get_device

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # the SWA run uses seed; independent runs seed + 1, seed + 2, ...
model: Optional[dict] = None  # zoo.TrainConfig fields incl. swa_epochs (None: from params/<profile>.yaml)
widths: Optional[list] = None  # hidden widths
n_independent: Optional[int] = None  # further independently seeded runs per width
sample_stride: Optional[int] = None  # use every k-th SWA sample for the pairwise barriers
eval_subset: Optional[int] = None  # test examples for barriers and the SWA comparison
n_points: Optional[int] = None  # lambdas on [0, 1]

# %%
P = profiles.resolve("06_swa_alignment", profile, model=model, widths=widths, n_independent=n_independent,
                     sample_stride=sample_stride, eval_subset=eval_subset, n_points=n_points)
figures.setup(P.profile)
dev = get_device(device)
base = zoo.TrainConfig(**P.model)
print(f"profile {P.profile} on {dev}: widths {P.widths}, {base.epochs} epochs + {base.swa_epochs} SWA epochs")

# %% [markdown]
# ## Train, sample, measure
# For every width: one run with its SWA samples, and `n_independent` more runs from other seeds.

# %%
test = data.load(base.dataset, "test", subset=P.eval_subset, device=dev)
train_stats = data.load(base.dataset, "train", subset=2000, device=dev)  # for BN statistics, if any
result = swa.swa_alignment(base, P.widths, test, train_stats, n_independent=P.n_independent,
                               sample_stride=P.sample_stride, n_points=P.n_points, seed=seed, device=dev)
summary = swa.swa_summary(result)
figures.save_table(summary, "06_swa_summary")
figures.save_table(result.averages, "06_swa_vs_samples")
summary

# %% [markdown]
# ## Pairwise loss barriers among the SWA samples
# One heat map per width (test loss, naive interpolation — no permutation); each title gives
# the mean barrier between independently trained runs of that width for comparison.

# %%
figures.save_figure(plots.plot_swa_barriers(result.samples, result.independent), "06_swa_barriers")

# %% [markdown]
# ## Does weight matching find the identity?

# %%
figures.save_figure(plots.plot_identity_share(summary), "06_identity_share")

# %% [markdown]
# ## What this run shows
# Computed from the summary table:

# %%
display(Markdown(swa.describe_swa(summary)))
