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
# # 02 — Weight matching aligns the singular vectors with large singular values
#
# **Claims** (Ito, Yamada & Kumagai, ICLR 2025, §4–5):
#
# 1. A permutation changes a layer's singular vectors but not its singular values, and the
#    singular values of independently trained models are almost the same in hidden layers (the
#    output layer differs by roughly a constant factor).
# 2. Weight matching (WM) maximises $\sum_\ell \langle W_\ell^a, P_\ell W_\ell^b P_{\ell-1}^\top\rangle_F
#    = \sum_{i,j} s_i^a s_j^b \langle u_i^a, P u_j^b\rangle \langle v_i^a, P' v_j^b\rangle$, so it aligns the
#    singular vectors with **large** singular values across the two models — that, not a small
#    distance (notebook 01), keeps the merged model functional. Activation matching (AM) behaves alike.
# 3. Right singular vectors with large singular values have large inner products with the layer's
#    inputs, more so as the width grows — which is why AM aligns the same directions as WM.
# 4. Wider models have fewer large singular values relative to their width, and a lower merged loss.
#
# We also solve WM the way Ito et al. did — the Sinkhorn relaxation of Peña et al. (2023) — next
# to the iterative assignment of Ainsworth et al., and compare. At the `cpu` profile: MLPs with
# three hidden layers of several widths on MNIST and FashionMNIST; at the `paper` profile
# VGG11 and ResNet20 on CIFAR-10 (conv kernels are read as `out x (in * k * k)` matrices).

# %%
from typing import Optional

import pandas as pd
from IPython.display import Markdown, display

from lmc_utils import data, figures, plots, profiles, zoo
from lmc_utils.studies import singular_vectors
from lmc_utils.device import get_device

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # models use seeds seed, seed + 1, ...
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (width set from `widths`)
widths: Optional[list] = None  # MLP widths (conv nets: width multipliers)
n_models: Optional[int] = None  # independently trained models per width; every pair is matched
match_samples: Optional[int] = None  # training inputs for activation matching and for the layer inputs z
eval_subset: Optional[int] = None  # test examples for endpoint and midpoint losses
top: Optional[int] = None  # "large" singular values: the top ranks summarised in the verdicts
large_ratio: Optional[float] = None  # a singular value is large if at least this fraction of the largest in its layer
sinkhorn: Optional[dict] = None  # keyword arguments of matching.sinkhorn_weight_matching
sinkhorn_widths: Optional[list] = None  # widths at which both solvers are compared (Sinkhorn is slow when wide)
sinkhorn_pairs: Optional[int] = None  # pairs per width compared (the first ones)

# %%
P = profiles.resolve("02_singular_vectors", profile, experiments=experiments, widths=widths, n_models=n_models,
                     match_samples=match_samples, eval_subset=eval_subset, top=top, large_ratio=large_ratio,
                     sinkhorn=sinkhorn, sinkhorn_widths=sinkhorn_widths, sinkhorn_pairs=sinkhorn_pairs)
figures.setup(P.profile)
dev = get_device(device)
print(f"profile {P.profile} on {dev}: experiments {list(P.experiments)}, widths {P.widths}, {P.n_models} models each")

# %% [markdown]
# ## Train, match, decompose
# For every experiment and width: `n_models` independently trained models; B of every pair is
# aligned to A with no permutation, a random permutation (the control), WM and AM, and every
# layer of A and of aligned B is decomposed by SVD.

# %%
results, splits = {}, {}
for name, cfg in P.experiments.items():
    base = zoo.TrainConfig(**cfg)
    test = data.load(base.dataset, "test", subset=P.eval_subset, device=dev)
    match = data.load(base.dataset, "train", subset=P.match_samples, device=dev)
    splits[name] = test, match
    results[name] = singular_vectors.singular_vector_study(base, P.widths, P.n_models, test, match, top=P.top,
                                                         large_ratio=P.large_ratio, seed=seed, device=dev)
widest, first = P.widths[-1], next(iter(results))
r = results[first]

# %% [markdown]
# ## Claim 1: permutations move singular vectors, not singular values
# Singular values of every layer for each independently trained model (widest models; dashed: the
# output layer rescaled by one fitted constant). The table checks a random permutation of one
# model: singular values unchanged, singular vectors moved.

# %%
for name, res in results.items():
    figures.save_figure(plots.plot_spectra(res.spectra, widest), f"02_{name}_spectra")
spectra = pd.concat([singular_vectors.spectra_summary(res.spectra).assign(experiment=name) for name, res in results.items()],
                    ignore_index=True)
figures.save_table(spectra, "02_spectra_differences")
pd.concat([res.invariance.assign(experiment=name) for name, res in results.items()])

# %% [markdown]
# ## Claim 2: which singular vectors does matching align?
# The matrices $|\langle u_i^a, u_j^b\rangle|$ and $|\langle v_i^a, v_j^b\rangle|$ over the top ranks of a
# middle hidden layer, for each way of aligning B (first pair, widest models): a bright diagonal
# at the top-left corner means the leading singular vectors point the same way.

# %%
layer = singular_vectors.hidden_layers(r.spectra["layer"])[1]
fig = plots.plot_alignment_matrices(r.matrices, widest, layer, singular_vectors.METHODS)
figures.save_figure(fig, f"02_{first}_alignment_matrices")

# %% [markdown]
# The same along the diagonal, for every layer (mean over pairs), and the part of the weight-matching
# objective $\langle W_a, \pi(W_b)\rangle$ contributed by the top-k singular pairs of both models.

# %%
for name, res in results.items():
    figures.save_figure(plots.plot_diagonal_alignment(res.diagonal, widest, "u"), f"02_{name}_diagonal_alignment_u")
    figures.save_figure(plots.plot_diagonal_alignment(res.diagonal, widest, "v"), f"02_{name}_diagonal_alignment_v")
    figures.save_figure(plots.plot_top_k_contribution(res.contribution, widest), f"02_{name}_top_k_contribution")
alignment = pd.concat([singular_vectors.alignment_summary(res.diagonal, P.top).assign(experiment=name)
                       for name, res in results.items()], ignore_index=True)
figures.save_table(alignment, "02_alignment_summary")
alignment[alignment["width"] == widest]

# %% [markdown]
# ## Claims 3 and 4: inputs, width, and the merged model
# How strongly each right singular vector points along the layer's inputs $z$ (mean of
# $|\langle v_i, z\rangle| / \|z\|$ over training inputs), against relative rank, for every width;
# then, per width, the share of large singular values next to the test loss of the WM midpoint.

# %%
for name, res in results.items():
    figures.save_figure(plots.plot_input_alignment(res.inputs), f"02_{name}_input_alignment")
    summary = singular_vectors.width_summary(res, P.top)
    figures.save_figure(plots.plot_large_vs_merged(summary), f"02_{name}_large_vs_merged")
widths_table = pd.concat([singular_vectors.width_summary(res, P.top).assign(experiment=name) for name, res in results.items()],
                         ignore_index=True)
figures.save_table(widths_table, "02_width_summary")
widths_table

# %% [markdown]
# ## Weight matching by Sinkhorn relaxation vs iterative assignment
# The same pairs matched by both solvers: squared L2 distance after matching (gap relative to the
# iterative solution), midpoint test loss, time, and the share of units on which they agree.

# %%
sink = []
for name, cfg in P.experiments.items():
    test, match = splits[name]
    sink.append(singular_vectors.sinkhorn_comparison(zoo.TrainConfig(**cfg), P.sinkhorn_widths, P.n_models, test, match,
                                                   sinkhorn=P.sinkhorn, n_pairs=P.sinkhorn_pairs, seed=seed, device=dev).assign(experiment=name))
sink = pd.concat(sink, ignore_index=True)
figures.save_table(sink, "02_sinkhorn_vs_iterative")
display(Markdown(singular_vectors.describe_sinkhorn(sink)))
sink

# %% [markdown]
# ## Which claims held
# Computed from the tables above (criteria in `singular_vectors.describe`'s docstring).

# %%
for name, res in results.items():
    display(Markdown(f"**{name}**\n\n" + singular_vectors.describe(res, P.top, P.large_ratio)))
