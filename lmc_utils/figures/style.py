"""One style for every figure: the house matplotlib settings, one label and one colour-blind-safe look per
method (the Okabe-Ito palette, a line style and a marker each, so that no two methods differ by colour
alone), and every other colour, label and marker table the notebooks' plots use.

:func:`setup` applies the style and chooses the profile whose labels name experiments in titles
(:func:`experiment_label`); figures and tables then go to ``figures/<profile>/``
(:mod:`lmc_utils.figures.output`).
"""

from __future__ import annotations

from functools import lru_cache


_state = {"profile": None}


# One name and one look per method, for every figure: the Okabe-Ito colour-blind-safe palette, and
# a line style and marker each, so that no two methods differ by colour alone.
METHOD_LABELS = {
    "naive": "no permutation", "weight": "weight matching", "activation": "activation matching",
    "ste": "straight-through estimator", "random": "random permutation", "sinkhorn": "Sinkhorn matching",
    "none": "no re-normalisation", "reset": "RESET", "repair": "REPAIR", "rescale": "RESCALE",
    "reshift": "RESHIFT", "seq_repair": "sequential REPAIR",
    "global_magnitude": "global magnitude", "layer_magnitude": "layer-wise magnitude", "fisher": "diagonal Fisher",
}


_OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


METHOD_STYLES = {
    "naive": {"color": "#7f7f7f", "linestyle": ":", "marker": "x"},
    "weight": {"color": _OKABE_ITO[0], "linestyle": "-", "marker": "o"},
    "activation": {"color": _OKABE_ITO[1], "linestyle": "--", "marker": "s"},
    "ste": {"color": _OKABE_ITO[3], "linestyle": "-.", "marker": "^"},
    "random": {"color": _OKABE_ITO[7], "linestyle": (0, (1, 3)), "marker": "d"},
    "sinkhorn": {"color": _OKABE_ITO[4], "linestyle": (0, (5, 2, 1, 2)), "marker": "v"},
    "none": {"color": "#7f7f7f", "linestyle": ":", "marker": "x"},
    "reset": {"color": _OKABE_ITO[2], "linestyle": "-", "marker": "o"},
    "repair": {"color": _OKABE_ITO[0], "linestyle": "-", "marker": "o"},
    "rescale": {"color": _OKABE_ITO[1], "linestyle": "--", "marker": "s"},
    "reshift": {"color": _OKABE_ITO[3], "linestyle": "-.", "marker": "^"},
    "seq_repair": {"color": _OKABE_ITO[5], "linestyle": (0, (3, 1, 1, 1)), "marker": "D"},
    "global_magnitude": {"color": _OKABE_ITO[0], "linestyle": "-", "marker": "o"},
    "layer_magnitude": {"color": _OKABE_ITO[1], "linestyle": "--", "marker": "s"},
    "fisher": {"color": _OKABE_ITO[3], "linestyle": "-.", "marker": "^"},
}


def method_label(method: str) -> str:
    """The display name of a method (the key itself when it has none)."""
    return METHOD_LABELS.get(method, method)


@lru_cache(maxsize=None)
def _profile_labels(profile: str) -> dict[str, str]:
    """The ``labels`` section of a profile, read once per profile (empty for a name that is not a profile)."""
    from ..core import params as profiles

    return profiles.labels(profile) if profile in profiles.PROFILES else {}


def experiment_label(name: str) -> str:
    """The display label of experiment ``name`` for figure titles, e.g. ``"plain MLP 6×128,
    FashionMNIST"`` for ``mlp_plain``: from the ``labels`` section of the profile chosen by
    :func:`setup` (``params/<profile>.yaml``, read once per profile). The name itself when that
    profile has no label for it, or when :func:`setup` has not been called; a name ``"<experiment> / <rest>"``
    (a rung and width) gets its experiment's label. File names of saved figures keep the code names."""
    profile = _state["profile"]
    if profile is None:
        return name
    labels = _profile_labels(profile)
    if name not in labels and " / " in name:  # a rung's experiment, e.g. "mlp_plain / width 128"
        head, rest = name.split(" / ", 1)
        return f"{labels.get(head, head)} / {rest}"
    return labels.get(name, name)


def method_style(method: str) -> dict:
    """Matplotlib keyword arguments (colour, line style, marker) for a method's line."""
    return dict(METHOD_STYLES.get(method, {"color": _OKABE_ITO[6], "linestyle": "-", "marker": "."}))


STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
}


def setup(profile: str | None = None) -> None:
    """Apply the house matplotlib style; figures and tables then go to ``figures/<profile>/``."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    _state["profile"] = profile


SPLIT_STYLES = {"train": "-", "test": "--"}


SPAWNED_STYLE = {"color": "#009E73", "marker": "o"}  # spawned pairs (same basin): Okabe-Ito green


# variant name -> key of figures.METHOD_STYLES / METHOD_LABELS
VARIANT_KEYS = {"none": "none", "REPAIR": "repair", "RESCALE": "rescale", "RESHIFT": "reshift",
                "SEQ REPAIR": "seq_repair", "RESET": "reset"}


def variant_style(variant: str) -> dict:
    """Line style of a re-normalisation variant: the house style of its method
    (:func:`figures.method_style`); RESCALE (avg) is RESCALE's colour, dotted, open marker.
    REPAIR is drawn wide and SEQ REPAIR narrow on top of it, so that both show where they agree."""
    if variant == "RESCALE (avg)":
        style = {**method_style("rescale"), "linestyle": ":", "marker": "s", "markerfacecolor": "white"}
    else:
        style = method_style(VARIANT_KEYS.get(variant, variant))
    if variant == "REPAIR":
        style.update(linewidth=3.2, alpha=0.55, zorder=2)
    elif variant == "SEQ REPAIR":
        style.update(linewidth=1.2, markersize=3, markerfacecolor="white", zorder=3)
    return style


def variant_label(variant: str) -> str:
    return method_label(VARIANT_KEYS[variant]) if variant in VARIANT_KEYS else variant


BIAS_CURVE_STYLES = {"with biases: WM": "weight", "with biases: WM + RESCALE": "rescale",
                     "with biases: WM, homogeneous": "seq_repair", "no biases: WM": "reshift",
                     "biases removed after training, fine-tuned: WM": "sinkhorn"}


STE_START_LABELS = {"wm": "weight-matching permutation", "wm_projected": "weight-matching permutation",
                    "a_identity": "θ_a, identity permutation", "identity": "identity permutation",
                    "random": "a random permutation"}


RETRAIN_STYLES = {"naive midpoint": "naive", "WM midpoint": "weight", "AM midpoint": "activation",
                  "fresh init": "random"}


KIND_LABELS = {"independent": "independent pair", "spawned": "spawned children", "retrained": "retrained copy"}


INIT_LABELS = {"kaiming_uniform": "Kaiming uniform", "kaiming_normal": "Kaiming normal"}


INIT_COLORS = {"kaiming_uniform": "#0072B2", "kaiming_normal": "#D55E00"}


REGIME_LINES = {"reference": "-", "sequential": "--", "iterative": ":", "none": "-"}


REGIME_MARKERS = {"reference": "o", "sequential": "s", "iterative": "^", "none": "x"}


VERDICT_MARKERS = {"held": {"marker": "o"}, "did not hold": {"marker": "X"}, "inconclusive": {"marker": "o", "mfc": "white"}}
