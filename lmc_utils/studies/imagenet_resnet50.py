"""The ImageNet sections of notebooks 02 and 05 (paper profile, on ImageNet and ResNet50 weight
files the user provides; :mod:`lmc_utils.imagenet`).

* :func:`run_merge` (notebook 02; Ito et al., ICLR 2025, App. H.8): pairs of torchvision ResNet50s
  (files ``0-1, 2-3, ...``). Model B of each pair is aligned to A with no permutation, a random
  permutation and weight matching (``n_orders`` random group orders; the traced spec of
  :func:`lmc_utils.permutation.spec_for`); per layer the diagonal alignment of the singular vectors
  by rank, summarised as the top-``top`` ranks against the bottom half; per model and layer how
  strongly the top right singular vectors point along the layer's inputs (relative to all ranks,
  :func:`lmc_utils.spectral.streamed_input_alignment`); the ImageNet validation accuracy of the
  endpoints and of the naive and weight-matched midpoints, without and with RESET.
* :func:`run_pruning` (notebook 05; Qu & Horvath, ICML 2024, Fig. 6D and App. G): one-shot
  magnitude pruning of pretrained ResNet50s at every sparsity (the first conv left dense), each
  evaluated as pruned and after RESET (BatchNorm statistics recomputed on training images).

:func:`merge_tables` / :func:`pruning_tables` give the summary tables (with the papers' numbers in
``paper_value`` columns), :func:`merge_verdicts` / :func:`pruning_verdicts` the verdict rows for the
claims declared in ``params/criteria.yaml``'s sections ``02_imagenet`` and ``05_imagenet``, and
:func:`with_verdicts` adds them to a notebook's own rows. No plots, no prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core import imagenet
from .. import permutation as P
from ..measure import pruning, renorm, spectral
from ..claims import verdicts as V
from ..core.device import get_device
from ..measure.evaluation import evaluate
from ..measure.interpolation import evaluate_state, interpolate
from ..matching import weight_matching
from .singular_vectors import permuted_spectra

NOTEBOOKS = {"merge": "02_singular_vectors", "pruning": "05_pruning"}
CRITERIA = {"merge": "02_imagenet", "pruning": "05_imagenet"}  # sections of params/criteria.yaml
# The papers' numbers (numbers only; see each table's paper_value column):
ITO_ENDPOINT_ACCURACY = 0.75  # Ito et al., authors' answer on App. H.8 / Table 6(a): the ResNet50s' test accuracy
QU_GAIN = {0.8: 0.5}  # Qu & Horvath §5 (Fig. 6D): about +50 points of ImageNet accuracy from RESET at 80% sparsity
MAGNITUDE_METHODS = ("global_magnitude", "layer_magnitude")
MIN_EFFECT = 0.05  # as notebook 05: a model pruning moved by less than 5 points has nothing to recover


def _pairs(weights: Sequence) -> int:
    if len(weights) < 2 or len(weights) % 2:
        raise ValueError(f"weight matching needs pairs of models: give an even number (>= 2) of weight files, "
                         f"got {len(weights)}")
    return len(weights) // 2


# --- merging (notebook 02) -----------------------------------------------------------------

@dataclass
class MergeResult:
    """Tidy tables of the merge study (``pair``: files ``2 * pair`` and ``2 * pair + 1``)."""

    endpoints: pd.DataFrame  # pair, model (a | b), weights, loss, accuracy
    midpoints: pd.DataFrame  # pair, method (naive | weight), order, reset, loss, accuracy
    alignment: pd.DataFrame  # pair, method (naive | random | weight), order, layer, top, bottom
    inputs: pd.DataFrame  # pair, model, layer, top_alignment, mean_alignment, ratio
    top: int = 5
    layers: list = field(default_factory=list)  # the layers analysed, in order (the fc last when analysed)
    output_layer: str = "fc"
    arch: str = "resnet50"


def hidden(result: MergeResult) -> list[str]:
    """The analysed layers but the output layer."""
    return [layer for layer in result.layers if layer != result.output_layer]


def _top_bottom(da: spectral.SVD, db: spectral.SVD, top: int) -> tuple[float, float]:
    """Mean diagonal alignment ``(|<u_i^a, u_i^b>| + |<v_i^a, v_i^b>|) / 2`` of the top-``top`` ranks
    and of the bottom half (ranks above ``r / 2``), as notebook 02 summarises it."""
    d = spectral.diagonal_alignment(da, db)
    uv = (d["u"] + d["v"]) / 2
    ranks = torch.arange(1, len(uv) + 1)
    return float(uv[:top].mean()), float(uv[ranks > len(uv) / 2].mean())


def run_merge(weights: Sequence[str], n_orders: int = 3, max_sweeps: int = 100, val_examples: int | None = None,
              reset_examples: int = 5000, input_examples: int = 256, input_rows: int | None = 4096, top: int = 5,
              resolution: int = imagenet.RESOLUTION, batch_size: int = 128, workers: int = 8, arch: str = "resnet50",
              layers: Sequence[str] | None = None, fake: bool = False, seed: int = 0, device="auto",
              progress: bool = True) -> MergeResult:
    """The merge study on pairs of ``weights`` files (:func:`lmc_utils.imagenet.torchvision_model`).

    Args:
        n_orders, max_sweeps: weight matching's random group orders per pair and its sweep cap.
        val_examples: ImageNet validation images for every accuracy (``None``: all 50,000).
        reset_examples: training images for RESET of the midpoints (one fixed subset, seed ``seed + 7``).
        input_examples, input_rows: training images for the layer inputs (seed ``seed + 11``), and the
            rows (patches) per layer and batch kept (:func:`lmc_utils.spectral.streamed_input_alignment`).
        top: the "large" singular values: the top-``top`` ranks.
        layers: the Conv/Linear layers whose SVDs are analysed (``None``: every one; tests pass a few).
        fake: FakeData instead of ImageNet (tests; :func:`lmc_utils.imagenet.load`).
    """
    n_pairs = _pairs(weights)
    dev = get_device(device)
    kw = dict(resolution=resolution, fake=fake, workers=workers)
    val = imagenet.load("val", subset=val_examples, seed=seed, **kw)
    reset_data = imagenet.load("train", subset=reset_examples, seed=seed + 7, **kw)
    inputs = imagenet.load("train", subset=input_examples, seed=seed + 11, **kw)
    out: dict[str, list] = {"endpoints": [], "midpoints": [], "alignment": [], "inputs": []}
    analysed: list[str] = []
    for p in tqdm(range(n_pairs), desc="ImageNet pairs", leave=False, disable=not progress):
        a, b = (imagenet.torchvision_model(weights[2 * p + k], arch, seed=seed + 2 * p + k, device=dev) for k in (0, 1))
        spec = P.spec_for(a)
        sa, sb = ({k: v.detach().clone() for k, v in m.state_dict().items()} for m in (a, b))  # not views of the models
        mats_a, mats_b = spectral.layer_matrices(sa), spectral.layer_matrices(sb)
        unknown = sorted(set(layers or ()) - set(mats_a))
        if unknown:
            raise ValueError(f"layers {unknown[:3]} are not Conv/Linear layers of {arch}")
        analysed = [n for n in mats_a if layers is None or n in layers]
        svd_a = {n: spectral.svd(mats_a[n]) for n in tqdm(analysed, desc="SVD (A)", leave=False, disable=not progress)}
        svd_b = {n: spectral.svd(mats_b[n]) for n in tqdm(analysed, desc="SVD (B)", leave=False, disable=not progress)}
        for model, net, w, sv in (("a", a, weights[2 * p], svd_a), ("b", b, weights[2 * p + 1], svd_b)):
            loss, acc = evaluate(net, val, batch_size)
            out["endpoints"].append({"pair": p, "model": model, "weights": str(w), "loss": loss, "accuracy": acc})
            got = spectral.streamed_input_alignment(net, {n: d.v for n, d in sv.items()},
                                                    (x for x, _ in inputs.batches(batch_size)), input_rows, seed=seed)
            for layer, align in got.items():
                t, m = float(align[:top].mean()), float(align.mean())
                out["inputs"].append({"pair": p, "model": model, "layer": layer, "top_alignment": t,
                                      "mean_alignment": m, "ratio": t / m if m > 0 else float("nan")})
        aligned = [("naive", 0, P.identity(spec)), ("random", 0, P.random_permutation(spec, seed + p))]
        aligned += [("weight", k, weight_matching(spec, sa, sb, max_sweeps=max_sweeps, seed=k).perm)
                    for k in tqdm(range(n_orders), desc="weight matching", leave=False, disable=not progress)]
        for method, order, perm in aligned:
            pb = permuted_spectra(spec, perm, svd_b)
            for layer in analysed:
                t, bottom = _top_bottom(svd_a[layer], pb[layer], top)
                out["alignment"].append({"pair": p, "method": method, "order": order, "layer": layer, "top": t,
                                         "bottom": bottom})
            if method == "random":
                continue
            mid = interpolate(sa, P.apply_permutation(spec, perm, sb), 0.5)
            for reset in (False, True):
                loss, acc = evaluate_state(a, mid, val, reset_data if reset else None, batch_size)
                out["midpoints"].append({"pair": p, "method": method, "order": order, "reset": reset, "loss": loss,
                                         "accuracy": acc})
    return MergeResult(**{k: pd.DataFrame(v) for k, v in out.items()}, top=top, layers=analysed, arch=arch)


def merge_tables(result: MergeResult) -> dict[str, pd.DataFrame]:
    """The merge study's tables:

    - ``02_imagenet_merge``: validation accuracy and loss of the endpoints (mean over models) and
      of the naive and weight-matched midpoints (mean over pairs and group orders), without and with
      RESET, with Ito et al.'s endpoint accuracy as ``paper_value``;
    - ``02_imagenet_alignment``: per method and layer, the top-k and bottom-half diagonal alignment;
    - ``02_imagenet_input_alignment``: per layer, the top-k right singular vectors' input alignment
      over that of all ranks (mean over models; 1: no preference for the top).
    """
    e = result.endpoints
    rows = [{"model": "endpoints", "reset": False, "accuracy": e["accuracy"].mean(), "loss": e["loss"].mean(),
             "n": len(e), "paper_value": ITO_ENDPOINT_ACCURACY}]
    m = result.midpoints
    for (method, reset), g in m.groupby(["method", "reset"], sort=False):
        rows.append({"model": f"{method} midpoint", "reset": bool(reset), "accuracy": g["accuracy"].mean(),
                     "loss": g["loss"].mean(), "n": len(g), "paper_value": float("nan")})
    align = (result.alignment.groupby(["method", "layer"], sort=False)[["top", "bottom"]].mean()
             .rename(columns={"top": f"top{result.top}_alignment", "bottom": "bottom_half_alignment"}).reset_index())
    inputs = result.inputs.groupby("layer", sort=False)[["top_alignment", "mean_alignment", "ratio"]].mean().reset_index()
    return {"02_imagenet_merge": pd.DataFrame(rows), "02_imagenet_alignment": align,
            "02_imagenet_input_alignment": inputs}


def merge_statistics(result: MergeResult) -> dict[str, dict[str, np.ndarray]]:
    """``claim -> {subject: values}`` for the ``02_imagenet`` claims: per pair x group order (a 2-D
    array) for the matching claims, per model for the input claim."""
    subject = result.arch
    h = hidden(result)
    al = result.alignment[result.alignment["layer"].isin(h)]
    per = al.groupby(["pair", "method", "order"], sort=False)[["top", "bottom"]].mean().reset_index()
    rnd = per[per["method"] == "random"].set_index("pair")["top"]
    wm = per[per["method"] == "weight"].copy()
    wm["margin"] = np.minimum(wm["top"] - wm["bottom"], wm["top"] - rnd.loc[wm["pair"]].to_numpy())
    mids = result.midpoints[result.midpoints["reset"]]
    naive = mids[mids["method"] == "naive"].set_index("pair")["accuracy"]
    wmid = mids[mids["method"] == "weight"].copy()
    ends = result.endpoints.groupby("pair")["accuracy"].mean()
    wmid["gain"] = wmid["accuracy"].to_numpy() - naive.loc[wmid["pair"]].to_numpy()
    wmid["drop"] = ends.loc[wmid["pair"]].to_numpy() - wmid["accuracy"].to_numpy()
    units = lambda f, v: f.pivot_table(index="pair", columns="order", values=v, aggfunc="mean").to_numpy()  # noqa: E731
    inp = result.inputs[result.inputs["layer"].isin(h)]
    share = inp.assign(above=inp["ratio"] > 1).groupby(["pair", "model"], sort=False)["above"].mean()
    return {"imagenet_wm_aligns_top_singular_vectors": {subject: units(wm, "margin")},
            "imagenet_wm_beats_naive_midpoint": {subject: units(wmid, "gain")},
            "imagenet_wm_midpoint_below_endpoints": {subject: units(wmid, "drop")},
            "imagenet_top_inputs_not_consistent": {subject: share.to_numpy(dtype=float)}}


def merge_verdicts(result: MergeResult, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One verdict row per declared ``02_imagenet`` claim (:func:`lmc_utils.verdicts.verdict`)."""
    stats = merge_statistics(result)
    return V.table([V.verdict(NOTEBOOKS["merge"], c, s, v) for name, c in criteria.items()
                    for s, v in stats.get(name, {}).items()])


# --- pruning (notebook 05) -----------------------------------------------------------------

@dataclass
class PruningResult:
    """Tidy tables of the pruning study (``model``: index of the weights file)."""

    dense: pd.DataFrame  # model, weights, loss, accuracy
    accuracy: pd.DataFrame  # model, method, sparsity, achieved, excluded_sparsity, reset, loss, accuracy
    judge_sparsity: float = 0.8
    exclude: list = field(default_factory=list)
    arch: str = "resnet50"


def run_pruning(weights: Sequence[str], sparsities: Sequence[float], judge_sparsity: float = 0.8,
                methods: Sequence[str] = MAGNITUDE_METHODS, exclude: Sequence[str] = ("conv1",),
                val_examples: int | None = None, reset_examples: int = 5000, resolution: int = imagenet.RESOLUTION,
                batch_size: int = 128, workers: int = 8, arch: str = "resnet50", fake: bool = False, seed: int = 0,
                device="auto", progress: bool = True) -> PruningResult:
    """One-shot pruning of every model in ``weights`` at every sparsity and magnitude method
    (:func:`lmc_utils.pruning.prune_model`; the layers in ``exclude`` stay dense, and the sparsity is
    the share of the other Conv/Linear weights), evaluated on ``val_examples`` validation images as
    pruned and after RESET on ``reset_examples`` training images (seed ``seed + 7``; batches of
    ``batch_size``)."""
    if not weights:
        raise ValueError("the pruning study needs at least one weights file")
    bad = sorted(set(methods) - set(MAGNITUDE_METHODS))
    if bad:
        raise ValueError(f"ImageNet pruning supports {', '.join(MAGNITUDE_METHODS)}, not {bad}")
    if not any(np.isclose(judge_sparsity, s) for s in sparsities):
        raise ValueError(f"judge_sparsity {judge_sparsity} is not one of the sparsities {list(sparsities)}")
    dev = get_device(device)
    kw = dict(resolution=resolution, fake=fake, workers=workers)
    val = imagenet.load("val", subset=val_examples, seed=seed, **kw)
    reset_data = imagenet.load("train", subset=reset_examples, seed=seed + 7, **kw)
    dense_rows, rows = [], []
    for k, w in enumerate(tqdm(weights, desc="ImageNet models", leave=False, disable=not progress)):
        model = imagenet.torchvision_model(w, arch, seed=seed + k, device=dev)
        loss, acc = evaluate(model, val, batch_size)
        dense_rows.append({"model": k, "weights": str(w), "loss": loss, "accuracy": acc})
        for method in methods:
            for s in tqdm(sparsities, desc=pruning.METHOD_LABELS[method], leave=False, disable=not progress):
                pruned = pruning.prune_model(model, s, method, exclude=exclude, threshold=True)
                achieved = pruning.sparsity(pruned, exclude)
                kept = pruning.sparsity_table(pruned)
                kept = kept[kept["layer"].isin(exclude)]
                excluded = float(kept["zeros"].sum() / kept["weights"].sum()) if len(kept) else float("nan")
                for reset in (False, True):
                    net = renorm.reset(pruned, reset_data, batch_size=batch_size) if reset else pruned
                    loss, acc = evaluate(net, val, batch_size)
                    rows.append({"model": k, "method": method, "sparsity": float(s), "achieved": achieved,
                                 "excluded_sparsity": excluded, "reset": reset, "loss": loss, "accuracy": acc})
    return PruningResult(pd.DataFrame(dense_rows), pd.DataFrame(rows), float(judge_sparsity), list(exclude), arch)


def pruning_tables(result: PruningResult) -> dict[str, pd.DataFrame]:
    """``05_imagenet_pruning``: per method and sparsity, the achieved sparsity, the sparsity of the
    excluded layers (0: left dense), validation accuracy unpruned, as pruned and after RESET, the
    gain, and Qu & Horvath's gain as ``paper_gain`` where they give one (means over models)."""
    acc = result.accuracy
    wide = (acc.pivot_table(index=["method", "sparsity"], columns="reset", values="accuracy", aggfunc="mean", sort=False)
            .rename(columns={False: "pruned", True: "reset"}).reset_index())
    wide.columns.name = None
    extra = acc.groupby(["method", "sparsity"], sort=False)[["achieved", "excluded_sparsity"]].mean().reset_index()
    t = extra.merge(wide, on=["method", "sparsity"])
    t.insert(4, "dense", result.dense["accuracy"].mean())
    t["gain"] = t["reset"] - t["pruned"]
    t["paper_gain"] = [QU_GAIN.get(round(float(s), 6), float("nan")) for s in t["sparsity"]]
    t["method"] = t["method"].map(pruning.METHOD_LABELS)
    return {"05_imagenet_pruning": t}


def pruning_statistics(result: PruningResult) -> dict[str, dict[str, np.ndarray]]:
    """``claim -> {subject: values}`` for the ``05_imagenet`` claims, one value per model at the
    judged sparsity (NaN where pruning cost less than :data:`MIN_EFFECT`: nothing to recover)."""
    acc = result.accuracy[np.isclose(result.accuracy["sparsity"], result.judge_sparsity)]
    dense = result.dense.set_index("model")["accuracy"]
    stats: dict[str, dict[str, np.ndarray]] = {"imagenet_reset_recovers_pruning_loss": {}, "imagenet_reset_gain": {}}
    for method, g in acc.groupby("method", sort=False):
        w = g.pivot_table(index="model", columns="reset", values="accuracy")
        pruned, reset = w[False], w[True]
        lost = dense.loc[w.index] - pruned
        subject = f"{result.arch} / {pruning.METHOD_LABELS[method]}"
        stats["imagenet_reset_recovers_pruning_loss"][subject] = ((reset - pruned) / lost).where(lost >= MIN_EFFECT).to_numpy()
        stats["imagenet_reset_gain"][subject] = (reset - pruned).to_numpy()
    return stats


def pruning_verdicts(result: PruningResult, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One verdict row per declared ``05_imagenet`` claim and method."""
    stats = pruning_statistics(result)
    return V.table([V.verdict(NOTEBOOKS["pruning"], c, s, v) for name, c in criteria.items()
                    for s, v in stats.get(name, {}).items()])


# --- both ----------------------------------------------------------------------------------

def with_verdicts(frame: pd.DataFrame, criteria: Mapping[str, V.Criterion],
                  result: MergeResult | PruningResult | None) -> tuple[pd.DataFrame, dict[str, V.Criterion]]:
    """A notebook's verdict rows and criteria with the ImageNet section's added: unchanged when the
    section did not run (``result`` is ``None``), so the smoke and cpu verdicts stay as they are."""
    if result is None:
        return frame, dict(criteria)
    kind = "merge" if isinstance(result, MergeResult) else "pruning"
    extra = V.load_criteria(CRITERIA[kind])
    rows = merge_verdicts(result, extra) if kind == "merge" else pruning_verdicts(result, extra)
    return V.table([*frame.to_dict("records"), *rows.to_dict("records")]), {**criteria, **extra}
