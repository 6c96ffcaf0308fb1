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
# # 07 — Same basin vs re-basin, and the implicit biases of learning rate, weight decay and initialisation
#
# **Claims** (Qu & Horvath, ICML 2024, §3.2 and App. E.2; §4.3 and App. E.5, E.6, F.4, F.5):
#
# 1. *Same basin is not re-basin.* Two solutions in one basin — spawned children of a parent
#    trained for an epoch or two, or a trained model and a copy of it retrained at a large
#    learning rate and then a small one — are linearly connected without any permutation and
#    without RESET; independently trained models, even after matching, keep a barrier unless
#    RESET repairs BatchNorm's statistics.
# 2. *Matching recovers a basin exactly.* Plant a random permutation in one of two same-basin
#    solutions: weight matching (WM) and activation matching (AM) return exactly its inverse. For
#    independent solutions they do not.
# 3. *Distances.* The L2 distance (BatchNorm statistics included) between same-basin solutions is far
#    below the distance between independent solutions after matching; the retrained copy moves away
#    from the original at the large rate and stays close (their Fig. 13).
# 4. *A larger learning rate lowers the barrier after matching*, and not only because its endpoints
#    are better: degrading the large-rate solutions by one more epoch at that rate keeps the order.
#    Larger-rate models also lose less to global magnitude pruning.
# 5. *Weight decay*, within a threshold, lowers the barrier after matching; past it, training degrades.
# 6. *Initialisation*: at a small learning rate, Kaiming-normal initialisation leaves a larger barrier
#    after matching than Kaiming-uniform initialisation, and its larger distance between
#    initialisations persists through training.
#
# The `cpu` profile uses notebook 04's small VGG11-BN (1/8 channels, 5k FashionMNIST images, below
# its declared accuracy floor: its rows are counted apart) and its LayerNorm MLP (6 × 128, all 60k
# images, at its floor), the same configs, so the independent pairs come from the shared cache;
# the `paper` profile uses VGG16-BN and ResNet20 (4× width) on CIFAR-10. The unit of every claim is
# a pair (independent pair *i*: seeds 2*i*, 2*i* + 1; retrained pair *i*: model 2*i* and its copy;
# spawned pair *i*: two children of parent *i*). Claims 5 and 6 use a cheap family at the `cpu`
# profile: a 6 × 128 LayerNorm MLP trained by SGD at the small rate 0.01, many models at once
# (the batched trainer); independent pair *i* has the same seeds at every weight decay and
# initialisation, so arms are compared pair by pair. The pruning curves reuse claim 4's models.

# %%
from typing import Optional

from IPython.display import Markdown, display

from lmc_utils import figures, plots, profiles, verdicts
from lmc_utils.device import get_device
from lmc_utils.studies import same_basin

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # independent pair i uses seeds seed + 2i, seed + 2i + 1
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (None: from params/<profile>.yaml)
n_pairs: Optional[dict] = None  # experiment -> pairs of each kind (independent, spawned, retrained copy)
parent_epochs: Optional[int] = None  # epochs of the spawned pairs' parent
retrain_phases: Optional[dict] = None  # experiment -> [[large lr, epochs], [small lr, epochs]] of the retrained copy
n_planted: Optional[int] = None  # random permutations planted per pair
lrs: Optional[dict] = None  # experiment -> learning rates of the learning-rate study
degrade_epochs: Optional[int] = None  # extra epochs at the largest rate (the degrade control)
prune_sparsities: Optional[list] = None  # global magnitude pruning of the learning-rate study's models
wd_experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields of the weight-decay sweep
init_experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields of the initialisation study (small lr)
weight_decays: Optional[list] = None  # the weight-decay sweep (smallest first)
judge_weight_decay: Optional[float] = None  # the moderate weight decay compared with the smallest
bias_pairs: Optional[int] = None  # independent pairs per weight decay and per initialisation
methods: Optional[list] = None  # alignments: naive, weight, activation
eval_subset: Optional[int] = None  # test examples for every barrier
match_samples: Optional[int] = None  # training examples for activation matching and RESET
n_points: Optional[int] = None  # lambdas on [0, 1]

# %%
P = profiles.resolve("07_same_basin", profile, globals())  # the parameters cell's values
figures.setup(P.profile)
dev = get_device(device)
criteria = verdicts.load_criteria("07_same_basin")
print(f"profile {P.profile} on {dev}: pairs of each kind per experiment {P.n_pairs}")

# %% [markdown]
# ## Declared criteria
# Fixed before any result (`params/criteria.yaml`); judged per experiment.

# %%
display(Markdown(verdicts.criteria_markdown(criteria)))

# %% [markdown]
# ## Train, retrain, match, measure
# Independent pairs, spawned pairs and retrained copies; then, per pair, the barriers of every
# alignment with and without RESET, the planted permutations and the distances; then the
# learning-rate study.

# %%
results = same_basin.run_experiments(P.experiments, P.n_pairs, P.parent_epochs, P.retrain_phases, lrs=P.lrs,
                                     eval_subset=P.eval_subset, match_samples=P.match_samples, seed=seed, device=dev,
                                     methods=P.methods, n_planted=P.n_planted, n_points=P.n_points,
                                     degrade_epochs=P.degrade_epochs, prune_sparsities=P.prune_sparsities)
bias = same_basin.run_bias_experiments(P.wd_experiments, P.init_experiments, P.weight_decays, P.bias_pairs,
                                       eval_subset=P.eval_subset, match_samples=P.match_samples,
                                       judge_weight_decay=P.judge_weight_decay, seed=seed, device=dev,
                                       methods=P.methods, n_points=P.n_points)
summary = {**same_basin.tables(results), **same_basin.bias_tables(bias)}
for table_name, frame in summary.items():
    figures.save_table(frame, table_name)
summary["07_barriers"]

# %% [markdown]
# ## Interpolation: re-basin vs spawned children vs retrained copy
# Test accuracy along the line from model A to model B (first pair of each kind), for each
# alignment; with BatchNorm, without and with RESET.

# %%
for name, r in results.items():
    fig = plots.plot_same_basin_curves(r.curves, title=figures.experiment_label(name))
    figures.save_figure(fig, f"07_curves_{name}");

# %% [markdown]
# ## Does matching undo a planted permutation?
# Share of hidden units on which the returned permutation equals the inverse of the planted one,
# and the rate of exact recoveries (every unit), over pairs and planted permutations.

# %%
rec = summary["07_recovery"]
display(rec)
exact = rec.assign(same=rec["kind"] != "independent").groupby(["same", "method"])["exact_rate"].mean()
display(Markdown("Exact recoveries, mean over experiments: " + "; ".join(
    f"{'same-basin' if same else 'independent'} pairs, {method}: {rate:.0%}" for (same, method), rate in exact.items())))

# %% [markdown]
# ## Distances
# Mean L2 distance per kind of pair before (`naive`) and after weight matching, with and without
# the BatchNorm statistics; then the retrained copies' distance to their original per epoch.

# %%
summary["07_distances"]

# %%
for name, r in results.items():
    d = summary["07_distances"]
    ref = d[(d["experiment"] == name) & (d["kind"] == "independent") & (d["alignment"] == "weight")]["l2"].mean()
    fig = plots.plot_retraining_distance(r.retraining, reference=ref, title=figures.experiment_label(name))
    figures.save_figure(fig, f"07_retraining_distance_{name}");

# %% [markdown]
# ## Learning rate
# Barrier after matching (with RESET for BatchNorm) against the training learning rate; open
# markers: the largest rate's pairs after one more epoch at that rate, with worse endpoints.

# %%
for name, r in results.items():
    if not r.lr_barriers.empty:
        lr_table = summary["07_lr"][summary["07_lr"]["experiment"] == name]
        fig = plots.plot_lr_barriers(lr_table, reset=r.has_bn, title=figures.experiment_label(name))
        figures.save_figure(fig, f"07_lr_{name}");

# %% [markdown]
# ## Pruning by learning rate
# Test accuracy of the learning-rate study's models after global magnitude pruning, as pruned
# (dashed) and re-normalised (solid: RESET for BatchNorm), mean over models with 95% bands.

# %%
for name, r in results.items():
    if not r.lr_pruning.empty:
        table = summary["07_lr_pruning"][summary["07_lr_pruning"]["experiment"] == name]
        fig = plots.plot_lr_pruning(table, renorm_label="RESET" if r.has_bn else "REPAIR",
                                    title=figures.experiment_label(name))
        figures.save_figure(fig, f"07_lr_pruning_{name}");

# %% [markdown]
# ## Weight decay
# Barrier after matching and endpoint accuracy against the training weight decay (means over
# pairs, 95% t intervals). *Disclosure:* the value the barrier claim judges (`judge_weight_decay`)
# was chosen after a two-pair pilot at the `cpu` profile (seeds 0–3, trained on 20k images; the
# models below train on 10k, so none is reused) had put the barrier's fall between the sweep's
# second and third values — a choice made after seeing numbers, not declared blind.

# %%
for name in bias:
    if "07_weight_decay" in summary and name in set(summary["07_weight_decay"]["experiment"]):
        table = summary["07_weight_decay"][summary["07_weight_decay"]["experiment"] == name]
        fig = plots.plot_weight_decay(table, title=figures.experiment_label(name))
        figures.save_figure(fig, f"07_weight_decay_{name}");

# %% [markdown]
# ## Initialisation
# Kaiming uniform vs Kaiming normal at a small learning rate: barriers after matching (95%
# intervals over pairs), each model's distance from its initialisation per epoch, and the distance
# between a pair's models at initialisation and after training.

# %%
for name in bias:
    if "07_init" in summary and name in set(summary["07_init"]["experiment"]):
        pick = {k: summary[k][summary[k]["experiment"] == name] for k in ("07_init", "07_init_history",
                                                                          "07_init_distances")}
        fig = plots.plot_init_comparison(pick["07_init"], pick["07_init_history"], pick["07_init_distances"],
                                         title=figures.experiment_label(name))
        figures.save_figure(fig, f"07_init_{name}");

# %% [markdown]
# Mean distances between a pair's models (``init``: the two initialisations), and the barrier
# after matching with Kaiming-normal over Kaiming-uniform initialisation beside the paper's ratio.

# %%
if "07_init_distances" in summary:
    display(summary["07_init_distances"])
init_vs_paper = same_basin.init_comparison(summary)
figures.save_table(init_vs_paper, "07_init_vs_paper")
init_vs_paper

# %% [markdown]
# ## Beside the paper
# The paper's values for VGG16-BN on CIFAR-10 (as text) and ours, per experiment, at this profile's
# much smaller scale.

# %%
comparison = same_basin.paper_comparison(summary)
figures.save_table(comparison, "07_vs_paper")
comparison

# %% [markdown]
# ## Verdicts
# Computed from the pairs above by the declared rules, one row per claim and subject.

# %%
frame = same_basin.verdicts(results, criteria, bias=bias)
display(Markdown(figures.publish_verdicts(frame, criteria, "07_same_basin")))

# %% [markdown]
# ## Closing note
# Which claims did not reproduce here, and on which models. The table of models above the verdicts
# gives each config's test accuracy against its declared floor: the MLPs (all 60k FashionMNIST
# images) reach theirs, so their verdicts test the paper's claims on these small models; the
# VGG11-BN (4 epochs on 5k images) does not, so every VGG row is counted apart and says nothing
# about the paper. All of them are far narrower than the paper's VGG16-BN and ResNet20 (4×) on
# CIFAR-10 after 160 epochs: barriers between independent pairs are smaller, BatchNorm statistics
# drift less, and a few epochs at a large rate move a copy a shorter way. The weight decays of the
# sweep are 10–1000× the paper's, because 5 epochs are a few thousand steps where the paper's 160
# are 64k. The `paper` profile tests the paper's regime (VGG16-BN for weight decay, VGG16-LN at
# lr 0.01 for initialisation).

# %%
missed = frame[frame["verdict"] != "held"]
display(Markdown("Every verdict held." if missed.empty else "Not held here: " + "; ".join(
    f"`{r.claim}` ({r.subject}): {r.verdict}" for r in missed.itertuples()) + "."))
