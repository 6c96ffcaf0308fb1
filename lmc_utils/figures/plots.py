"""Every notebook's plots under one name (``from lmc_utils import plots``); each notebook's own are in
the module of its study's name (:mod:`lmc_utils.figures.swa` for notebook 06, ...), the style in
:mod:`lmc_utils.figures.style`."""

from .rebasin_basics import plot_interpolation  # noqa: F401
from .distance_taylor import plot_distance_over_sweeps, plot_taylor_curves  # noqa: F401
from .singular_vectors import plot_spectra, plot_alignment_matrices, plot_diagonal_alignment, plot_top_k_contribution, plot_input_alignment, plot_large_vs_merged  # noqa: F401
from .three_models import plot_planes, plot_three_model_barriers, plot_singular_alignment, plot_ste_budgets, plot_ste_history  # noqa: F401
from .renormalisation import (plot_variant_curves, plot_activation_profiles, plot_bias_curves,  # noqa: F401
                              plot_retraining, plot_layer_information, plot_width_sweep)
from .pruning import plot_pruning, plot_samples, plot_scale, plot_redundancy  # noqa: F401
from .swa import plot_swa_barriers, plot_identity_share  # noqa: F401
from .same_basin import plot_same_basin_curves, plot_retraining_distance, plot_lr_barriers, plot_lr_only, plot_weight_decay, plot_weight_decay_compression, plot_repair_rescale_by_weight_decay, plot_init_comparison, plot_lr_pruning  # noqa: F401
from .merge_many import plot_merge_many, plot_merge_convergence  # noqa: F401
from .width_clusters import plot_width_barriers, plot_midpoints, plot_epsilon_clusters, plot_decision_boundaries, plot_duplicates, plot_robustness  # noqa: F401
from .regime_ladder import plot_claim_vs_width  # noqa: F401
