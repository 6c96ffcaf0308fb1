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
# # 02 — Weight matching aligns the singular vectors with large singular values
#
# **Claims** (Ito, Yamada & Kumagai, ICLR 2025, §4–5 and App. H):
#
# 1. A permutation changes a layer's singular vectors but not its singular values, and the
#    singular values of independently trained models are almost the same in hidden layers (the
#    output layer differs by roughly a constant factor).
# 2. Weight matching (WM) maximises $\sum_\ell \langle W_\ell^a, P_\ell W_\ell^b P_{\ell-1}^\top\rangle_F
#    = \sum_{i,j} s_i^a s_j^b \langle u_i^a, P u_j^b\rangle \langle v_i^a, P' v_j^b\rangle$, so it aligns the
#    singular vectors with **large** singular values across the two models — that, not a small
#    distance (notebook 01), keeps the merged model functional. Activation matching (AM) behaves alike.
# 3. Right singular vectors with large singular values have large inner products with the layer's
#    inputs — which is why AM aligns the same directions as WM.
# 4. Wider models have fewer large singular values relative to their width, and a lower merged loss.
#
# We also solve WM the way Ito et al. did — the Sinkhorn relaxation of Peña et al. (2023) — next
# to the iterative assignment of Ainsworth et al., and compare. At the `cpu` profile: MLPs with
# three hidden layers of several widths on MNIST and FashionMNIST; at the `paper` profile
# VGG11 and ResNet20 on CIFAR-10 (conv kernels are read as `out x (in * k * k)` matrices), and
# a last section on two torchvision ResNet50s on ImageNet (App. H.8; data and weights you provide).

# %%
from typing import Optional

from IPython.display import Markdown, display

from lmc_utils import figures, plots, profiles, verdicts
from lmc_utils.device import get_device
from lmc_utils.studies import imagenet_resnet50, singular_vectors

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # pair i of every width uses seeds seed + 2i and seed + 2i + 1
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (width set from `widths`)
widths: Optional[dict] = None  # name -> MLP widths (conv nets: width multipliers)
n_pairs: Optional[int] = None  # independent pairs per experiment and width
n_orders: Optional[int] = None  # random group orders of weight matching per pair
match_samples: Optional[int] = None  # training inputs for activation matching and for the layer inputs z
eval_subset: Optional[int] = None  # test examples for endpoint and midpoint losses (None: all)
top: Optional[int] = None  # "large" singular values: the top-k ranks of the alignment and input claims
large_ratio: Optional[float] = None  # a singular value is large if at least this fraction of the largest in its layer
sinkhorn: Optional[dict] = None  # keyword arguments of matching.sinkhorn_weight_matching
sinkhorn_widths: Optional[list] = None  # widths at which both solvers are compared (Sinkhorn is slow when wide)
sinkhorn_pairs: Optional[int] = None  # pairs per width compared (the first ones)
imagenet: Optional[dict] = None  # App. H.8 on ImageNet: weight files and budgets (paper profile; null/{}: skipped)

# %%
P = profiles.resolve("02_singular_vectors", profile, globals())  # the parameters cell's values
figures.setup(P.profile)
dev = get_device(device)
criteria = verdicts.load_criteria("02_singular_vectors")
print(f"profile {P.profile} on {dev}: widths {P.widths}, {P.n_pairs} independent pairs per width, "
      f"{P.n_orders} weight-matching group orders per pair")

# %% [markdown]
# ## What is tested, and how
# Every claim is judged by one number per independent unit — a pair of independently trained
# models, a model, or, for the width claims, a *chain*: pair $i$ at every width, whose slope
# against $\log_2$(width) is one unit. Where weight matching is involved, each pair is matched
# under several random group orders; the orders are averaged per unit and their spread is
# reported. The rules below were fixed before the results (`params/criteria.yaml`); top-k means
# the top `top` ranks, "large" at least `large_ratio` times the layer's largest singular value.
# With a single width the width claims have no slope and come out inconclusive.

# %%
display(Markdown(verdicts.criteria_markdown(criteria)))

# %% [markdown]
# ## Train, match, decompose
# For every experiment and width: `n_pairs` independent pairs; B of every pair is aligned to A
# with no permutation, a random permutation (the control), WM (one per group order) and AM, and
# every layer of A and of aligned B is decomposed by SVD.

# %%
result = singular_vectors.run(P.experiments, P.widths, P.n_pairs, n_orders=P.n_orders, match_samples=P.match_samples,
                              eval_subset=P.eval_subset, top=P.top, large_ratio=P.large_ratio, sinkhorn=P.sinkhorn,
                              sinkhorn_widths=P.sinkhorn_widths, sinkhorn_pairs=P.sinkhorn_pairs, seed=seed, device=dev)
tables = singular_vectors.tables(result)
for name, table in tables.items():
    figures.save_table(table, name)


def of(frame, name):  # one experiment's rows
    return frame[frame["experiment"] == name]


# %% [markdown]
# ## Claim 1: permutations move singular vectors, not singular values
# Singular values of every layer for each independently trained model (widest models of each
# experiment; dotted: the output layer of B rescaled by one fitted constant). The table checks
# B of every pair against a randomly permuted copy: the largest singular value change, and how
# far the singular vectors moved (1: not at all).

# %%
for name in P.experiments:
    widest = max(P.widths[name])
    figures.save_figure(plots.plot_spectra(of(result.spectra, name), widest), f"02_{name}_spectra")
tables["02_permutation_invariance"]

# %% [markdown]
# ## Claim 2: which singular vectors does matching align?
# The matrices $|\langle u_i^a, u_j^b\rangle|$ and $|\langle v_i^a, v_j^b\rangle|$ over the top ranks of a
# middle hidden layer, for each way of aligning B (first pair, widest models, first group order):
# a bright diagonal at the top-left corner means the leading singular vectors point the same way.

# %%
for name in P.experiments:
    widest = max(P.widths[name])
    layer = singular_vectors.hidden_layers(result.layers[name])[1]
    fig = plots.plot_alignment_matrices(result.matrices, name, widest, layer, singular_vectors.METHODS)
    figures.save_figure(fig, f"02_{name}_alignment_matrices")

# %% [markdown]
# The same along the diagonal, for every layer (mean over pairs and group orders), and the part of
# the weight-matching objective $\langle W_a, \pi(W_b)\rangle$ contributed by the top-k singular pairs of both.

# %%
for name in P.experiments:
    widest = max(P.widths[name])
    for side in ("u", "v"):
        figures.save_figure(plots.plot_diagonal_alignment(of(result.diagonal, name), widest, side),
                            f"02_{name}_diagonal_alignment_{side}")
    figures.save_figure(plots.plot_top_k_contribution(of(result.contribution, name), widest),
                        f"02_{name}_top_k_contribution")
alignment = tables["02_alignment_summary"]
alignment[alignment["width"] == alignment.groupby("experiment")["width"].transform("max")]

# %% [markdown]
# ## Claims 3 and 4: inputs, width, and the merged model
# How strongly each right singular vector points along the layer's inputs $z$ (mean of
# $|\langle v_i, z\rangle| / \|z\|$ over training inputs), against relative rank, for every width;
# then, per width, the share of large singular values next to the test loss of the WM midpoint.

# %%
for name in P.experiments:
    figures.save_figure(plots.plot_input_alignment(of(result.inputs, name)), f"02_{name}_input_alignment")
    figures.save_figure(plots.plot_large_vs_merged(of(tables["02_width_summary"], name)), f"02_{name}_large_vs_merged")
tables["02_width_summary"]

# %% [markdown]
# ## Weight matching by Sinkhorn relaxation vs iterative assignment
# The same pairs matched by both solvers (first group order for the iterative one): squared L2
# distance after matching and its gap relative to the iterative solution (positive: Sinkhorn ends
# farther from A), midpoint test loss, and the share of units on which they agree. This
# comparison is descriptive (few pairs; no claim is judged on it). Wall-clock times are left out:
# they differ on every rerun and machine (`result.sinkhorn["seconds"]` has them for this run).

# %%
tables["02_sinkhorn_vs_iterative"]

# %% [markdown]
# ## ImageNet: merging two ResNet50s (App. H.8)
# Runs at the `paper` profile only, on ImageNet and ResNet50 weight files you provide (the
# `imagenet` parameter; see the README): nothing is downloaded. At the `smoke` and `cpu` profiles
# (`imagenet` null) this cell does nothing. Weight matching uses the spec traced from torchvision's
# ResNet50 (`permutation.spec_for`); B of each pair is aligned to A with no permutation, a random
# one and weight matching, and the singular vectors are compared as above (every layer but the
# fc counts as hidden). The table gives the validation accuracy of the two models and of the
# naive and weight-matched midpoints, without and with RESET, next to Ito et al.'s endpoint accuracy;
# the next two give the alignment per layer and how the top right singular vectors meet the inputs.
# Its claims (`02_imagenet` in `params/criteria.yaml`, shown first) join the verdicts below; their
# unit is a pair (a model for the input claim), so with one pair of files every interval is
# unbounded and those verdicts are inconclusive whatever the numbers: more pairs decide them.

# %%
imagenet_result = None
if P.imagenet:
    display(Markdown(verdicts.criteria_markdown(verdicts.load_criteria(imagenet_resnet50.CRITERIA["merge"]))))
    imagenet_result = imagenet_resnet50.run_merge(**P.imagenet, seed=seed, device=dev)
    imagenet_tables = imagenet_resnet50.merge_tables(imagenet_result)
    for name, table in imagenet_tables.items():
        figures.save_table(table, name)
    display(*imagenet_tables.values())

# %% [markdown]
# ## Which claims held
# Each declared rule applied to its 95% interval (one row per claim and subject; also in
# `figures/<profile>/02_verdicts.csv`).

# %%
rows, declared = imagenet_resnet50.with_verdicts(singular_vectors.verdicts(result, criteria), criteria, imagenet_result)
display(Markdown(figures.publish_verdicts(rows, declared, "02_singular_vectors")))
