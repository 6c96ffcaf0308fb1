# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 — Straight-through estimator vs weight matching, for two and three models
#
# **Claims** (Ito, Yamada & Kumagai, ICLR 2025, §6, Table 3/5 and their answers to the reviews):
#
# 1. The straight-through estimator (STE; Ainsworth et al. 2023, §3.3) learns a permutation
#    that gives a low barrier between $\theta_a$ and $\pi(\theta_b)$, but unlike weight matching
#    (WM) it does not align the singular vectors with large singular values.
# 2. Matching $b$ and $c$ to $a$ gives $\pi_b, \pi_c$; the barrier between $\pi_b(\theta_b)$ and
#    $\pi_c(\theta_c)$ is larger with STE than with WM, so WM is the better tool to merge three or
#    more models (reported gaps of 20+ accuracy points for ResNet20 and VGG11 on CIFAR-10).
# 3. WM and activation matching (AM) agree on a sizeable share of units (7–29% per layer for
#    ResNet20), WM and STE almost never (under 1.3%).
#
# STE keeps a continuous copy $\tilde\theta$ of B's weights; every step projects it onto the nearest
# permutation of $\theta_b$ (weight matching, warm-started), evaluates the midpoint
# $\tfrac12(\theta_a + \pi(\theta_b))$ with the gradient passed straight through to $\tilde\theta$, and
# takes an Adam step on the midpoint loss (`lmc_utils.matching.ste_matching`). As in Ainsworth et
# al.'s code, $\tilde\theta$ starts at $\theta_a$, whose projection is the WM permutation, and the
# permutation with the lowest midpoint loss on held training examples is returned.
#
# The `cpu` profile uses the MNIST MLP of notebook 00 (3 x 512); the `paper` profile ResNet20 and
# VGG11 on CIFAR-10.

# %%
from typing import Optional

from IPython.display import Markdown, display

from lmc_utils import data, figures, plots, profiles, zoo
from lmc_utils.studies import three_models
from lmc_utils.device import get_device

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # triple i uses seeds seed + 3i, seed + 3i + 1, seed + 3i + 2
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (None: from params/<profile>.yaml)
n_triples: Optional[int] = None  # independent triples (a, b, c) per experiment
ste_steps: Optional[int] = None  # STE: Adam steps per matched pair
ste_lr: Optional[float] = None  # STE: Adam learning rate
ste_batch_size: Optional[int] = None  # STE: training examples per step
ste_held_size: Optional[int] = None  # STE: held training examples that pick the returned permutation
ste_eval_every: Optional[int] = None  # STE: steps between evaluations on the held examples
ste_projection_sweeps: Optional[int] = None  # STE: weight-matching sweeps per projection
ste_samples: Optional[int] = None  # STE: training examples used (null: all)
match_samples: Optional[int] = None  # training examples for activation matching and RESET
eval_subset: Optional[int] = None  # test examples for barriers, merged models and planes (null: all)
n_points: Optional[int] = None  # lambdas on [0, 1]
plane_resolution: Optional[int] = None  # grid points per axis of the loss plane
plane_margin: Optional[float] = None  # plane grid margin around the three models (fraction of their extent)
top_k: Optional[int] = None  # singular-vector ranks averaged in the alignment table

# %%
P = profiles.resolve("03_ste_three_models", profile, experiments=experiments, n_triples=n_triples,
                     ste_steps=ste_steps, ste_lr=ste_lr, ste_batch_size=ste_batch_size, ste_held_size=ste_held_size,
                     ste_eval_every=ste_eval_every, ste_projection_sweeps=ste_projection_sweeps,
                     ste_samples=ste_samples, match_samples=match_samples, eval_subset=eval_subset,
                     n_points=n_points, plane_resolution=plane_resolution, plane_margin=plane_margin, top_k=top_k)
figures.setup(P.profile)
dev = get_device(device)
ste_kwargs = dict(steps=P.ste_steps, lr=P.ste_lr, batch_size=P.ste_batch_size, held_size=P.ste_held_size,
                  eval_every=P.ste_eval_every, wm_sweeps=P.ste_projection_sweeps)
print(f"profile {P.profile} on {dev}: experiments {list(P.experiments)}, {P.n_triples} triples, STE {ste_kwargs}")

# %% [markdown]
# ## Train the triples, align b and c to a by WM, AM and STE, measure
# Models are trained once and cached by the hash of their configuration (the first triples are
# shared with notebooks 00 and 01). For every triple: barriers (test subset) along the three
# edges of the triangle $a$, $\pi_b(\theta_b)$, $\pi_c(\theta_c)$; the merged model, the plain average
# of the three; the singular-vector alignment between $a$ and each aligned model; the agreement
# of the permutations; and for the first triple the landscape on the plane through the three.

# %%
results = {}
for name, cfg in P.experiments.items():
    base = zoo.TrainConfig(**cfg)
    train = data.load(base.dataset, "train", subset=P.ste_samples, device=dev)
    match = data.load(base.dataset, "train", subset=P.match_samples, device=dev)
    test = data.load(base.dataset, "test", subset=P.eval_subset, device=dev)
    results[name] = three_models.three_model_study(
        base, P.n_triples, train, test, match.x, ste_kwargs=ste_kwargs, n_points=P.n_points,
        plane_resolution=P.plane_resolution, plane_margin=P.plane_margin, top_k=P.top_k, seed=seed, device=dev)
summary = three_models.summary_tables(results)


# %% [markdown]
# ## Barriers between the three aligned models
# Mean and standard deviation over the triples. `a–π_b(b)` and `a–π_c(c)` are the two-model
# barriers each method was asked to remove; `π_b(b)–π_c(c)` is the edge no method looked at.

# %%
barrier_table = summary["barriers"]
figures.save_table(barrier_table, "03_barriers")
for name, r in results.items():
    figures.save_figure(plots.plot_three_model_barriers(three_models.barrier_summary(r.barriers), title=name),
                        f"03_{name}_barriers")
barrier_table

# %% [markdown]
# ## Merging: the average of the three aligned models

# %%
merged_table = summary["merged"]
figures.save_table(merged_table, "03_merged")
merged_table

# %% [markdown]
# ## Singular-vector alignment after WM, AM and STE
# Per layer, the mean over the top-k ranks of $|\langle u_i^a, u_i^b\rangle|$ and $|\langle v_i^a, v_i^b\rangle|$
# between the singular vectors of $a$ and of the aligned $b$ (and $c$), averaged over triples
# (`lmc_utils.spectral`). 1 means the directions coincide.

# %%
alignment_table = summary["alignment"]
figures.save_table(alignment_table, "03_singular_alignment")
for name, r in results.items():
    figures.save_figure(plots.plot_singular_alignment(three_models.alignment_summary(r.alignment), title=name),
                        f"03_{name}_singular_alignment")
alignment_table

# %% [markdown]
# ## Do the permutations agree?
# Share of identical rows of the permutation matrices per permutation group, mean and standard
# deviation over triples and both matched pairs, next to the range Ito et al. report for ResNet20.

# %%
agreement_table = summary["agreement"]
figures.save_table(agreement_table, "03_agreement")
agreement_table

# %% [markdown]
# ## How far did STE get?
# The held midpoint loss along each STE run (step 0 is the WM permutation it starts from); a dot
# marks the permutation returned. A curve still falling at its last step means the step budget,
# not the objective, stopped the search.

# %%
for name, r in results.items():
    figures.save_figure(plots.plot_ste_history(r.ste_history, title=f"{name}: STE held midpoint loss"),
                        f"03_{name}_ste_history")

# %% [markdown]
# ## The loss landscape on the plane through a, π_b(b) and π_c(c)
# First triple; axes are distances in weight space (orthonormal basis from Gram–Schmidt);
# each model is labelled with its test accuracy.

# %%
for name, r in results.items():
    figures.save_figure(plots.plot_planes(r.planes, title=f"{name}: plane through the three aligned models"),
                        f"03_{name}_planes")

# %% [markdown]
# ## What this run shows
# Computed from the per-triple tables:

# %%
for name, r in results.items():
    display(Markdown(three_models.describe_three_models(name, r.barriers, r.merged, r.agreement, r.alignment,
                                                            r.ste_history)))
