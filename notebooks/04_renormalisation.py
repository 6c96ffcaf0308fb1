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
# # 04 — Re-normalisation: REPAIR, RESCALE, RESHIFT, RESET
#
# **Claims** (Qu & Horvath 2024, *Rethink Model Re-Basin*, §4.1–4.2, App. E.5, F.1–F.3; Jordan
# et al. 2023, REPAIR):
#
# 1. Without normalisation layers the matched midpoint of two independent models suffers
#    *variance collapse* — the hidden activation scale shrinks layer by layer; re-normalisation
#    restores it (RESET for BatchNorm models, REPAIR for plain and LayerNorm models).
# 2. The rescaling half of REPAIR does the work: RESCALE ≥ REPAIR, RESCALE with one average target
#    std per layer is close, RESHIFT alone fails (their Table 1, plain VGG16 on CIFAR-10, weight
#    matching: none 14.2%, REPAIR 75.1%, RESCALE 84.3%, RESCALE (avg) 78.2%, RESHIFT 10%). The
#    paper's own ResNet20 tables do not show RESCALE ahead: with weight matching REPAIR 71.3% vs
#    RESCALE 68.4% (Table 6, plain ResNet20) and 63.6% vs 61.9% (Table 7, Fixup ResNet20), within
#    their standard deviations; "RESCALE ≥ REPAIR" rests on the VGG16 of Table 1.
# 3. Without matching, re-normalisation does not help: neurons are dead and the statistics look
#    like those of a random initialisation. Matching retains information that re-normalisation
#    amplifies.
# 4. Sequential REPAIR beats the one-pass version, sequential RESCALE changes little (Table 9);
#    goal statistics from an independent third model still work (Table 8); a data-independent
#    variant comes close (Tables 10–11).
# 5. Removing biases (trained without them, or removed after training and fine-tuned: Fig. 3 (C)),
#    or homogeneous interpolation (Wang et al. 2022), lowers the accuracy barrier after matching
#    much like re-normalisation — but the loss barrier remains.
# 6. The matched midpoint re-trains to high train accuracy in far fewer steps than the naive
#    midpoint or a fresh model ("knowledge retained", Fig. 4C), and keeps more of the endpoints'
#    parameter magnitude (Fig. 4 (D)) and Fisher information (Fig. 42) than the naive midpoint.
# 7. Without normalisation layers, matching alone leaves a barrier that falls only slowly with
#    width: less than 10 points from 2× to 8× width on VGG16 (Fig. 2 (B), Figs. 7–8).
#
# At the `cpu` profile: six-layer plain and LayerNorm MLPs (width 128) on FashionMNIST — deep enough
# for the collapse to show, small enough to train in seconds — and a small BatchNorm VGG11 for
# RESET. The `paper` profile runs the paper's VGG16 / ResNet20 / VGG11 on CIFAR, among them a
# ResNet20 without normalisation trained from Fixup's initialisation (their Table 7).
#
# Each claim is judged by a rule declared in `params/criteria.yaml` before any result (shown
# below): one statistic per independent pair — a paired difference of midpoint accuracies, a
# ratio of scales or barriers — averaged over random group orders of weight matching within the
# pair, and a 95% t interval of its mean over pairs. Claim 4's data-independent and layer-average
# variants are reported in the tables, not judged. A comparison can only show where there is
# something to compare: where the plain weight-matched midpoint is already as good as the
# endpoints, no correction can beat it, and a verdict of *did not hold* there says that the
# regime leaves nothing to repair rather than that the correction fails.
#
# How the corrections are implemented (`lmc_utils.renorm`): each hidden layer's pre-activation
# channels are moved onto goal statistics, `(1-λ)·stats_A + λ·stats_B`, and the per-channel scale
# and shift are folded into the layer's weights and bias (for LayerNorm models into the norm's
# affine parameters, after the norm, as Jordan et al. do), so a corrected model is an ordinary
# model. "One-pass" is Jordan et al.'s statistics pass (every layer corrected batch-wise while its
# statistics are accumulated); "SEQ" measures and corrects one layer at a time on the whole
# statistics set. "Data-independent" evaluates with the statistics of each test batch (BatchNorm
# in train mode); for non-BN models its goal statistics still come from the endpoints on training
# data, since our zoo does not record running statistics during training.

# %%
from typing import Optional

from IPython.display import Markdown, display

from lmc_utils import figures, plots, profiles, verdicts, zoo
from lmc_utils.device import get_device
from lmc_utils.studies import renormalisation

# %% tags=["parameters"]
profile: str = "cpu"  # smoke | cpu | paper
device: str = "auto"  # auto | cpu | cuda
seed: int = 0  # pair i uses seeds seed + 2i, seed + 2i + 1
experiments: Optional[dict] = None  # name -> zoo.TrainConfig fields (None: from params/<profile>.yaml)
n_pairs: Optional[int] = None  # independent pairs per experiment, at least 2
pairs_by_experiment: Optional[dict] = None  # experiment -> pairs, overriding n_pairs (e.g. fewer for a CNN)
n_orders: Optional[int] = None  # random group orders of weight matching per pair (seeds 0 .. n_orders - 1)
n_points: Optional[int] = None  # lambdas of the interpolation curves
eval_subset: Optional[int] = None  # test examples for every accuracy and loss (null: all)
stats_samples: Optional[int] = None  # training examples for goal statistics, activation matching, RESET
methods: Optional[list] = None  # alignments in the ablation table: weight | activation | naive
curve_methods: Optional[list] = None  # alignments of the interpolation curves
bias_experiment: Optional[str] = None  # experiment whose pairs are compared with bias-free pairs
bias_pairs: Optional[int] = None  # pairs in the bias study
retrain_experiment: Optional[str] = None  # experiment whose pairs are re-trained from their midpoints
retrain_pairs: Optional[int] = None  # pairs re-trained
retrain: Optional[dict] = None  # zoo.TrainConfig changes for re-training
target_accuracy: Optional[float] = None  # train accuracy to reach when re-training
bias_finetune_pairs: Optional[int] = None  # bias-experiment pairs whose biases are removed after training, then fine-tuned
bias_finetune: Optional[dict] = None  # zoo.TrainConfig changes for that fine-tuning
info_pairs: Optional[int] = None  # bias-experiment pairs measured layer by layer (magnitude, Fisher information)
fisher_batches: Optional[int] = None  # mini-batches of 16 training examples for the diagonal Fisher
width_experiment: Optional[str] = None  # experiment of the width sweep of matching alone
widths: Optional[list] = None  # its widths (the verdicts compare the narrowest with the widest)
width_pairs: Optional[int] = None  # independent pairs per width

# %%
P = profiles.resolve("04_renormalisation", profile, globals())  # the parameters cell's values
figures.setup(P.profile)
dev = get_device(device)
bases = {name: zoo.TrainConfig(**cfg) for name, cfg in P.experiments.items()}
pairs_per = {name: (P.pairs_by_experiment or {}).get(name, P.n_pairs) for name in bases}
print(f"profile {P.profile} on {dev}: pairs {pairs_per}, {P.n_orders} group orders of weight matching")

# %% [markdown]
# ## The declared criteria
# Accuracies are fractions; "per pair" means the statistic is computed for each independent pair
# (averaged over its group orders when weight matching is involved), and the interval is over pairs.

# %%
criteria = verdicts.load_criteria("04_renormalisation")
display(Markdown(verdicts.criteria_markdown(criteria)))

# %% [markdown]
# ## Training and measuring
# Each experiment trains `2 n_pairs` models that differ only in their seed (cached by config
# hash). Goal statistics, activation matching and RESET use a fixed subset of the training set;
# every accuracy and loss is measured on the test set. For each pair, method and group order:
# the midpoint under every re-normalisation variant (for "indep." the goal statistics come from a
# third model, model A of the next pair, aligned by the same method), and the midpoint's
# per-layer activation scale. Then the first pair's curves and activation profiles, the bias study
# and the re-training runs.

# %%
result = renormalisation.run(bases, pairs_per, seed=seed, device=dev, n_orders=P.n_orders, n_points=P.n_points,
                             eval_subset=P.eval_subset, stats_samples=P.stats_samples, methods=P.methods,
                             curve_methods=P.curve_methods, bias_experiment=P.bias_experiment,
                             bias_pairs=P.bias_pairs, retrain_experiment=P.retrain_experiment,
                             retrain=P.retrain, retrain_pairs=P.retrain_pairs, target_accuracy=P.target_accuracy,
                             bias_finetune=P.bias_finetune, bias_finetune_pairs=P.bias_finetune_pairs,
                             info_pairs=P.info_pairs, fisher_batches=P.fisher_batches,
                             width_experiment=P.width_experiment, widths=P.widths, width_pairs=P.width_pairs)
T = renormalisation.tables(result)
for name, frame in T.items():
    figures.save_table(frame, name)

# %% [markdown]
# ## The ablation table: midpoint test accuracy per re-normalisation variant
# Mean ± std over pairs (group orders averaged within each pair) of the midpoint (λ = 0.5) after
# weight matching (WM), activation matching (AM) and no matching (naive). One-pass REPAIR
# accumulates its statistics in batches of 500 while it corrects; when the statistics set fits in
# one batch it coincides exactly with sequential REPAIR, and their comparison cannot show.

# %%
s = T["04_ablation"]
s.assign(acc=[f"{100 * m:.1f} ± {100 * d:.1f}" for m, d in zip(s["accuracy_mean"], s["accuracy_std"])]).pivot_table(
    index="variant", columns=["experiment", "method"], values="acc", aggfunc="first", sort=False)

# %% [markdown]
# ## Interpolation curves with each variant
# First pair of each experiment, first group order; at every λ the goal statistics are
# `(1-λ)·stats_A + λ·stats_B`. REPAIR is the wide pale line, sequential REPAIR the narrow one
# on top of it.

# %%
for n in bases:
    figures.save_figure(plots.plot_variant_curves(result.curves[result.curves["experiment"] == n],
                                                  title=figures.experiment_label(n)),
                        f"04_{n}_curves")
T["04_curve_barriers"]

# %% [markdown]
# ## Variance collapse and dead neurons: per-layer activation statistics
# First pair; statistics on the training subset. Pre-activation std (channel mean), post-activation
# std and the share of exactly-zero post-activations, for the endpoints, the naive and WM midpoints
# with and without REPAIR / RESCALE (RESET for BatchNorm), and a random initialisation. The
# verdict on the collapse uses every pair and group order (table `04_variance_collapse`).

# %%
for n in bases:
    figures.save_figure(plots.plot_activation_profiles(result.activations[result.activations["experiment"] == n],
                                                       title=figures.experiment_label(n)),
                        f"04_{n}_activation_stats")
T["04_variance_collapse"].groupby(["experiment", "method"], sort=False)[["first_layer_ratio", "last_layer_ratio"]].mean()

# %% [markdown]
# ## Matching alone on plain networks, against width (Qu & Horvath Fig. 2 (B), Figs. 7–8)
# Without normalisation layers, does width alone close the gap? Independent pairs of the width
# experiment at a four-fold range of widths (the main width in between), the midpoint after weight
# matching, activation matching or none, with no re-normalisation. The barrier here is the
# endpoints' mean test accuracy minus the midpoint's. The paper saw it fall by less than 10 points
# from 2× to 8× width on VGG16.

# %%
if len(result.widths):
    figures.save_figure(plots.plot_width_sweep(result.widths, title=f"{figures.experiment_label(P.width_experiment)}: "
                                                                    "the same network at each width"), "04_width_sweep")
T["04_width_sweep"]

# %% [markdown]
# ## What the midpoint keeps, layer by layer (Qu & Horvath Figs. 4 (D), 42, 43)
# For the first pairs of the bias experiment: each weight layer's mean parameter magnitude and mean
# diagonal empirical Fisher information (squared loss gradients on mini-batches of training data)
# of the endpoints, the naive midpoint and the matched midpoints, before any re-normalisation. The
# paper reads a larger magnitude and more Fisher information after matching as knowledge retained.

# %%
if len(result.layer_info):
    figures.save_figure(plots.plot_layer_information(result.layer_info,
                                                     title=figures.experiment_label(P.bias_experiment)),
                        "04_layer_information")
T["04_layer_information_ratios"].groupby("model", sort=False)[["magnitude_ratio", "log10_fisher_vs_naive"]].mean()

# %% [markdown]
# ## Bias removal and homogeneous interpolation
# Weight-matched pairs of the bias experiment, trained with biases (plain interpolation, + RESCALE,
# and homogeneous interpolation: the bias of layer `l` weighted by `(1-λ)^l` and `λ^l`), the
# same configuration trained without biases (same seeds), and (Fig. 3 (C), Figs. 17–18) the first
# pairs with their biases removed after training and then fine-tuned without them (the paper: SGD,
# learning rate 0.01, momentum 0.9, no weight decay). Curves: mean over pairs and orders.

# %%
figures.save_figure(plots.plot_bias_curves(result.bias_curves, title=figures.experiment_label(P.bias_experiment)),
                    "04_bias_curves")
T["04_bias_barriers"].groupby("curve", sort=False)[["accuracy_barrier", "loss_barrier", "midpoint_accuracy"]].mean()

# %% [markdown]
# ## Knowledge retained: re-training from the midpoints
# Each re-trained pair's naive, WM (every group order) and AM midpoints and a fresh initialisation
# are re-trained with a small learning rate; the running train accuracy per epoch against
# optimisation steps (faint: each run; bold: the mean). A start that never reaches the target
# within the budget is counted as the budget plus one epoch in the verdict, which understates
# its gap to a start that does.

# %%
figures.save_figure(plots.plot_retraining(result.retraining, P.target_accuracy), "04_retraining")
T["04_retraining"].groupby("start", sort=False)[["steps_to_target", "first_epoch_accuracy", "final_accuracy"]].mean()

# %% [markdown]
# ## Verdicts
# Each row judges one declared claim for one subject (experiment / alignment method / variant)
# with the rule shown above.

# %%
display(Markdown(figures.publish_verdicts(renormalisation.verdicts(result, criteria), criteria, "04_renormalisation")))
