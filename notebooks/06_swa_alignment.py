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
#
# The unit of the claims about samples and the average is an SWA run (several per width, each with
# its own samples); the contrast uses independent pairs of runs (runs 2p and 2p + 1, their final
# iterates). Where the independent runs of a width are themselves nearly connected (wide networks),
# the contrast cannot show there, and its verdict says so.

# %%
from typing import Optional

from IPython.display import Markdown, display

from lmc_utils import data, figures, plots, profiles, verdicts, zoo
from lmc_utils.device import get_device
from lmc_utils.studies import swa

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # run r of every width uses seed + r
model: Optional[dict] = None  # zoo.TrainConfig fields incl. swa_epochs (None: from params/<profile>.yaml)
widths: Optional[list] = None  # hidden widths
n_runs: Optional[int] = None  # SWA runs per width (runs 2p, 2p + 1 form the independent pairs)
n_orders: Optional[int] = None  # random group orders of weight matching
sample_stride: Optional[int] = None  # use every k-th SWA sample for the pairwise barriers
eval_subset: Optional[int] = None  # test examples for barriers and the SWA comparison
n_points: Optional[int] = None  # lambdas on [0, 1]

# %%
P = profiles.resolve("06_swa_alignment", profile, globals())  # the parameters cell's values
figures.setup(P.profile)
dev = get_device(device)
base = zoo.TrainConfig(**P.model)
criteria = verdicts.load_criteria("06_swa_alignment")
print(f"profile {P.profile} on {dev}: widths {P.widths}, {P.n_runs} runs each, {base.epochs} epochs + "
      f"{base.swa_epochs} SWA epochs")

# %% [markdown]
# ## Declared criteria
# Fixed before any result (`params/criteria.yaml`); judged per width.

# %%
display(Markdown(verdicts.criteria_markdown(criteria)))

# %% [markdown]
# ## Train, sample, measure
# For every width: `n_runs` runs from different seeds, each with its SWA samples and their average.

# %%
test = data.load(base.dataset, "test", subset=P.eval_subset, device=dev)
train_stats = data.load(base.dataset, "train", subset=2000, device=dev)  # for BN statistics, if any
result = swa.run(base, P.widths, test, train_stats, n_runs=P.n_runs, sample_stride=P.sample_stride,
                 n_orders=P.n_orders, n_points=P.n_points, seed=seed, device=dev)
summary = swa.tables(result)
for table_name, frame in summary.items():
    figures.save_table(frame, table_name)
summary["06_swa_summary"]

# %% [markdown]
# ## Barriers among SWA samples and between independent runs
# Every pair of samples of every run (dots) and every independent pair (squares), per width, on one
# log scale; lines join the medians. Barriers that are zero up to rounding are drawn at the floor of
# the axis, and the legend counts them.

# %%
fig = plots.plot_swa_barriers(result.samples, result.independent,
                              threshold=criteria["swa_samples_connected"].threshold)
figures.save_figure(fig, "06_swa_barriers");

# %% [markdown]
# ## Does weight matching find the identity?

# %%
figures.save_figure(plots.plot_identity_share(summary["06_swa_summary"]), "06_identity_share");

# %% [markdown]
# ## Verdicts
# Computed from the runs above by the declared rules, one row per claim and width.

# %%
display(Markdown(figures.publish_verdicts(swa.verdicts(result, criteria), criteria, "06_swa_alignment")))
