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
#    It compresses the weights and hidden activations into a smaller range (Fig. 6 (B)); the order
#    survives degrading the larger weight decay's endpoints by more training (App. E.6, Fig. 64); and at
#    a small weight decay RESCALE corrects the matched midpoint better than REPAIR (Fig. 6 (C), Fig. 71).
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
from lmc_utils.studies import implicit_bias, same_basin

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
lr_experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields of experiments with the learning-rate study only
degrade_epochs: Optional[int] = None  # extra epochs of the degrade controls (largest rate; judged weight decay)
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
bias = implicit_bias.run_bias_experiments(P.wd_experiments, P.init_experiments, P.weight_decays, P.bias_pairs,
                                          eval_subset=P.eval_subset, match_samples=P.match_samples,
                                          judge_weight_decay=P.judge_weight_decay, seed=seed, device=dev,
                                          methods=P.methods, n_points=P.n_points, degrade_epochs=P.degrade_epochs)
summary = {**same_basin.tables(results), **implicit_bias.bias_tables(bias)}
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
# ## Learning rate on MNIST: Ainsworth et al.'s failed case
# Ainsworth et al. reported that matching VGG16-LN models trained on MNIST fails; Qu & Horvath (§4.3,
# Fig. 5 (D), App. F.5 Fig. 59) trace it to the small training learning rate. Here only the
# learning-rate study runs on a narrow VGG11-LN on MNIST, with the paper's recipe (SGD, warm-up then
# cosine) at three peak rates: barriers after weight and activation matching, means over pairs with
# 95% t intervals; the endpoints' accuracy beside, against the declared floor.

# %%
lr_results = same_basin.run_lr_experiments(P.lr_experiments, P.lrs, P.n_pairs, eval_subset=P.eval_subset,
                                           match_samples=P.match_samples, methods=P.methods, n_points=P.n_points,
                                           seed=seed, device=dev)
lr_only = same_basin.lr_table(lr_results)
if not lr_only.empty:
    figures.save_table(lr_only, "07_ln_mnist_lr")
for name in lr_results:
    fig = plots.plot_lr_only(lr_only[lr_only["experiment"] == name], title=figures.experiment_label(name))
    figures.save_figure(fig, f"07_lr_{name}");

# %% [markdown]
# The barriers at the ends of the range, per matching method (the verdicts below judge their
# difference pair by pair, beside the models' accuracy against their floor):

# %%
for name, t in lr_only.groupby("experiment", sort=False):
    ends = t[t["lr"].isin([t["lr"].min(), t["lr"].max()])].pivot(index="method", columns="lr", values="accuracy_barrier")
    display(Markdown(f"{figures.experiment_label(name)}, test accuracy barrier after matching: " + "; ".join(
        f"{m} matching {row.iloc[0]:.1%} at lr {ends.columns[0]:g}, {row.iloc[-1]:.1%} at lr {ends.columns[-1]:g}"
        for m, row in ends.iterrows()) + "."))

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
        worse = summary.get("07_weight_decay_degraded")
        worse = worse[worse["experiment"] == name] if worse is not None else None
        fig = plots.plot_weight_decay(table, title=figures.experiment_label(name), degraded=worse)
        figures.save_figure(fig, f"07_weight_decay_{name}");

# %% [markdown]
# ### The degrade control (App. E.6, Fig. 64)
# Is the lower barrier at the judged weight decay only the sign of better endpoints? As for the
# learning rate, the judged weight decay's pairs are trained `degrade_epochs` more epochs at that
# weight decay and the config's learning rate held constant (no annealing), which worsens their
# endpoints: the open markers above. Below, the barrier after matching and the endpoint accuracy at
# the smallest weight decay, at the judged one, and at the judged one degraded (means over pairs, 95%
# intervals). Where the degraded endpoints are no better than the smallest weight decay's and their
# barrier stays lower, better endpoints do not explain the order; `weight_decay_lowers_barrier_degraded`
# judges it pair by pair in the verdicts.

# %%
summary.get("07_weight_decay_degraded")

# %% [markdown]
# ### Compression (Fig. 6 (B), Figs. 69–70)
# The paper's reason for expecting weight decay to help: it compresses the weights and hidden
# activations into a small range, so a mismatched unit costs less. Per weight decay, the density of
# every parameter's magnitude and of each hidden unit's activation averaged over the `match_samples`
# training examples, pooled over the sweep's models (log axis; zeros, such as dead units, at the
# left edge); then each quantity's mean over models.

# %%
for name, r in bias.items():
    if not r.compression_hist.empty:
        fig = plots.plot_weight_decay_compression(r.compression_hist, title=figures.experiment_label(name))
        figures.save_figure(fig, f"07_weight_decay_compression_{name}");
if "07_weight_decay_compression" in summary:
    display(summary["07_weight_decay_compression"].pivot_table(index=["experiment", "quantity"],
                                                               columns="weight_decay", values="mean"))

# %% [markdown]
# A curve to the left of the smallest weight decay's is a compressed one; `weight_decay_compresses`
# judges the judged weight decay's means against the smallest's, model by model (the same seed in both).
#
# ### REPAIR vs RESCALE across weight decay (Fig. 6 (C), Fig. 71)
# The paper finds REPAIR's matched midpoint poor at its default weight decay and much better once the
# weight decay doubles, while RESCALE (scale only) is robust. Test accuracy of each pair's
# weight-matched midpoint with no correction, after REPAIR and after RESCALE (notebook 04's
# re-normalisation, goal statistics from the endpoints), with the endpoints' mean, per weight decay
# (means over pairs, 95% intervals). *Stand-in:* the paper's VGG16 has no normalisation; ours is the
# sweep's LayerNorm MLP, where REPAIR and RESCALE correct each layer after its LayerNorm (through the
# norm's affine parameters), so the two settings need not agree. BatchNorm sweeps (the `paper`
# profile's VGG16-BN) get RESET instead and are not judged here.

# %%
for name in bias:
    rr = summary.get("07_repair_rescale_by_weight_decay")
    if rr is not None and name in set(rr["experiment"]):
        fig = plots.plot_repair_rescale_by_weight_decay(rr[rr["experiment"] == name],
                                                        title=figures.experiment_label(name))
        figures.save_figure(fig, f"07_repair_rescale_by_weight_decay_{name}");
        display(rr[rr["experiment"] == name].pivot_table(index="variant", columns="weight_decay", values="accuracy"))

# %% [markdown]
# Where the RESCALE line lies above the REPAIR line at the smallest weight decay, RESCALE is the better
# correction there; `rescale_robust_to_weight_decay` judges it pair by pair in the verdicts.

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
bias_rows = {name: implicit_bias.bias_verdicts(r, criteria) for name, r in bias.items()}
frame = same_basin.verdicts(results, criteria, bias_rows=bias_rows, lr_only=lr_results)
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
