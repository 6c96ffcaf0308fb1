"""Notebook 03's protocol: the straight-through estimator (STE) against weight matching, for two
and three models (Ito, Yamada & Kumagai, ICLR 2025, §6 and their answers to the reviews).

For triples ``(a, b, c)`` of independently trained models, ``b`` and ``c`` are each aligned to
``a`` by weight matching (WM, once per random group order: ``n_orders`` repeats), activation
matching (AM) and STE (warm-started from WM's first order). Per method this measures the barriers
``a - pi_b(b)``, ``a - pi_c(c)`` and ``pi_b(b) - pi_c(c)``, the three-model average (the merged
model), the singular-vector alignment between ``a`` and the aligned models, how often the
methods' permutations agree, where STE found its best permutation, and, for the first triple,
the loss landscape on the plane through ``a, pi_b(b), pi_c(c)``.

:func:`run` returns a :class:`Result` of tidy tables; :func:`tables` summarises them and
:func:`verdicts` judges the declared criteria (``params/criteria.yaml``, section
``03_ste_three_models``) with one value per triple (WM group orders as repeats).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core import data as data_mod
from .. import permutation as P
from ..matching import rebasin
from ..measure import spectral
from ..claims import tables as tables_mod, verdicts as V
from .. import zoo
from ..core.data import TensorData
from ..measure.evaluation import evaluate
from ..measure.interpolation import barrier, evaluate_state, has_batchnorm, interpolation_curve, plane_grid
from ..matching import STE_PROTOCOL, activation_matching, permutation_agreement, ste_matching, unit_agreement
from ..matching.rebasin import weight_orders
from . import quality

NOTEBOOK = "03_ste_three_models"
METHODS = ("naive", "weight", "activation", "ste")
SHORT = {"naive": "none", "weight": "WM", "activation": "AM", "ste": "STE"}
PAIRS = ("a–π_b(b)", "a–π_c(c)", "π_b(b)–π_c(c)")
COMPARISONS = (("weight", "activation"), ("weight", "ste"), ("activation", "ste"))
WM_ORDERS = "WM vs WM (another group order)"
WM_STARTS = ("wm", "wm_projected", "a", "projected")  # STE starts that continue from WM's permutation

# Published numbers (Ito et al. 2025; answers to the reviews, ResNet20 on CIFAR-10): share of
# identical rows of the permutation matrices per layer, mean over five runs, range over layers.
PAPER_AGREEMENT = {"WM vs AM": (0.067, 0.286), "WM vs STE": (0.0004, 0.0125)}


def triples(base: zoo.TrainConfig, n_triples: int, seed: int = 0, device="auto") -> list[tuple[zoo.Trained, ...]]:
    """``n_triples`` triples of independently trained models: seeds ``seed + 3i, seed + 3i + 1, seed + 3i + 2``."""
    if n_triples < 1:
        raise ValueError(f"n_triples must be at least 1, got {n_triples}")
    models = zoo.get_many([base.replace(seed=seed + j) for j in range(3 * n_triples)], device=device)
    return [tuple(models[3 * i:3 * i + 3]) for i in range(n_triples)]


@dataclass
class Result:
    """Tidy per-triple tables (every one has an ``experiment`` and a ``triple`` column).

    ``order`` is the WM group order (0 .. n_orders - 1) for ``method == "weight"`` and 0 for the
    other methods, which do not depend on it (STE starts from WM's order 0).
    """

    barriers: pd.DataFrame  # experiment, triple, method, order, pair, loss_barrier, accuracy_barrier
    merged: pd.DataFrame  # experiment, triple, method, order, loss, accuracy, endpoints_accuracy
    agreement: pd.DataFrame  # experiment, triple, pair (a–b | a–c), order, comparison, group, units, share
    #   (comparisons WM vs AM, WM vs STE, AM vs STE and, as a reference, WM order 0 vs order k >= 1)
    alignment: pd.DataFrame  # experiment, triple, pair, method, order, layer, u_top, v_top, u_all, v_all
    ste_history: pd.DataFrame  # experiment, triple, pair, step, held_loss, batch_loss, best_step
    planes: pd.DataFrame  # experiment, method, point, x, y, split, loss, accuracy (first triple)
    # STE at a ladder of training lengths (ste["budgets"]; empty without): experiment, triple, budget
    # ("60", ..., "converged"), steps (the budget, or where the runs stopped), agreement (WM order 0 vs
    # STE, all hidden units, both pairs), near_loss_barrier / near_accuracy_barrier (a-pi_b(b) and
    # a-pi_c(c) averaged), far_loss_barrier / far_accuracy_barrier (pi_b(b)-pi_c(c)), merged_loss,
    # merged_accuracy (the three-model average)
    ste_budgets: pd.DataFrame = None


def _methods_and_orders(n_orders: int) -> list[tuple[str, int]]:
    return [("naive", 0), *[("weight", k) for k in range(n_orders)], ("activation", 0), ("ste", 0)]


def align(model_a: torch.nn.Module, model_b: torch.nn.Module, train: TensorData, match_inputs: torch.Tensor,
          ste: Mapping, n_orders: int = 1, seed: int = 0, matcher: str = "iterative",
          sinkhorn: Mapping | None = None, budgets: list | None = None
          ) -> tuple[dict[tuple[str, int], P.Permutation], pd.DataFrame]:
    """B's permutations onto A: ``{(method, order): perm}`` for no permutation, WM with group-order
    seeds ``seed .. seed + n_orders - 1``, AM and STE (``ste``: keyword arguments of
    :func:`~lmc_utils.matching.ste_matching`; its WM starts continue from WM's first order), and the
    STE history (``step, held_loss, batch_loss, best_step, stopped_step, hit_cap, step_cap, init``).
    ``matcher``: WM's solver (:func:`lmc_utils.rebasin.align`); ``sinkhorn`` has no group order, so
    it gives one WM permutation (order 0) whatever ``n_orders`` says. ``budgets``: a list that receives
    STE's ``(budget steps, permutation)`` at each of ``ste["budgets"]`` and ``("converged", perm)`` last."""
    if n_orders < 1:
        raise ValueError(f"n_orders must be at least 1, got {n_orders}")
    n_orders = weight_orders(matcher, n_orders)
    spec = P.spec_for(model_a)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    perms = {("naive", 0): P.identity(spec)}
    for k in range(n_orders):
        perms[("weight", k)] = rebasin.align("weight", model_a, model_b, seed=seed + k, matcher=matcher,
                                             sinkhorn=sinkhorn)
    perms[("activation", 0)] = activation_matching(model_a, model_b, match_inputs, spec).perm
    ste = dict(ste)
    # the WM starts continue from WM's first order; the other starts do not use WM
    start = {"init_perm": perms[("weight", 0)]} if ste.get("init", "wm") in WM_STARTS else {}
    res = ste_matching(model_a, sa, sb, train, seed=seed, spec=spec, progress=False, **start, **ste)
    perms[("ste", 0)] = res.perm
    if budgets is not None:
        budgets += [(str(b), min(b, res.stopped_step), p) for b, p in zip(res.budget_steps, res.budget_perms)]
        budgets.append(("converged", res.stopped_step, res.perm))
    return perms, pd.DataFrame(res.history).assign(best_step=res.best_step, stopped_step=res.stopped_step,
                                                   hit_cap=res.hit_cap, step_cap=int(ste.get("steps", STE_PROTOCOL["steps"])),
                                                   init=res.init)


def _weight_keys(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """layer -> state key of the matrices :func:`lmc_utils.spectral.layer_matrices` decomposes."""
    return {k.rpartition(".")[0]: k for k, v in state.items() if k.endswith("weight") and v.ndim >= 2}


def permuted_spectra(spec: P.PermutationSpec, perm: P.Permutation, state: Mapping[str, torch.Tensor],
                     svds: Mapping[str, spectral.SVD]) -> dict[str, spectral.SVD]:
    """The SVDs of ``apply_permutation(spec, perm, state)``'s layer matrices from those of ``state``
    (``svds = spectral.spectra(state)``), without decomposing again: permuting the rows (output
    units) of ``W = U S V^T`` permutes the rows of ``U``; permuting the input units permutes the
    rows of ``V`` in blocks of ``prod(kernel)``. Singular values are unchanged."""
    out = {}
    for layer, key in _weight_keys(state).items():
        svd = svds[layer]
        axes = spec.axes.get(key, (None,) * state[key].ndim)
        if any(g is not None for g in axes[2:]):
            raise NotImplementedError(f"{key}: a permuted axis beyond the first two")
        u, v = svd.u, svd.v
        if axes[0] is not None:
            u = u.index_select(0, perm[axes[0]].to(u.device))
        if axes[1] is not None:
            n_in = state[key].shape[1]
            v = v.reshape(n_in, -1, v.shape[1]).index_select(0, perm[axes[1]].to(v.device)).reshape(v.shape)
        out[layer] = spectral.SVD(u=u, s=svd.s, v=v)
    return out


def _alignment_rows(svd_a: Mapping[str, spectral.SVD], svd_b: Mapping[str, spectral.SVD], top_k: int) -> list[dict]:
    """Per layer: mean diagonal alignment |<u_i^a, u_i^b>|, |<v_i^a, v_i^b>| over the top-k ranks and over all."""
    rows = []
    for layer in svd_a:
        d = spectral.diagonal_alignment(svd_a[layer], svd_b[layer])
        k = min(top_k, d["u"].numel())
        rows.append({"layer": layer, "u_top": float(d["u"][:k].mean()), "v_top": float(d["v"][:k].mean()),
                     "u_all": float(d["u"].mean()), "v_all": float(d["v"].mean())})
    return rows


def _merged(model, states, eval_data, reset, reset_data) -> tuple[float, float]:
    """Loss and accuracy of the plain average of ``states`` (RESET first for BatchNorm models)."""
    avg = {k: (sum(s[k] for s in states) / len(states)) if v.is_floating_point() else v.clone()
           for k, v in states[0].items()}
    return evaluate_state(model, avg, eval_data, reset_data if reset else None)


def measure_triple(a: torch.nn.Module, b: torch.nn.Module, c: torch.nn.Module, train: TensorData,
                   eval_data: TensorData, match_inputs: torch.Tensor, ste: Mapping, n_orders: int = 1,
                   n_points: int = 11, top_k: int = 10, seed: int = 0, plane: bool = False,
                   plane_methods: tuple[str, ...] = ("weight", "ste"), plane_resolution: int = 15,
                   plane_margin: float = 0.2, matcher: str = "iterative",
                   sinkhorn: Mapping | None = None) -> dict[str, list | pd.DataFrame]:
    """Every measurement of one triple (see the module docstring): lists of rows for
    ``barriers, merged, agreement, alignment``, the ``ste_history`` frame and, with ``plane``, the
    ``planes`` frame (WM's first order). ``matcher="sinkhorn"``: one WM order (:func:`align`)."""
    n_orders = weight_orders(matcher, n_orders)
    spec = P.spec_for(a)
    reset = has_batchnorm(a)
    sa = a.state_dict()
    svd_a = spectral.spectra(sa)
    states, rows_ag, rows_al, hist = {}, [], [], []
    ladders, wm_first = {}, {}
    for name, other in (("b", b), ("c", c)):
        ladders[name] = [] if ste.get("budgets") else None
        perms, h = align(a, other, train, match_inputs, ste, n_orders, seed, matcher=matcher, sinkhorn=sinkhorn,
                         budgets=ladders[name])
        wm_first[name] = perms[("weight", 0)]
        hist.append(h.assign(pair=f"a–{name}"))
        so = other.state_dict()
        svd_o = spectral.spectra(so)
        states[name] = {key: P.apply_permutation(spec, p, so) for key, p in perms.items()}
        for m1, m2 in COMPARISONS:
            for k in range(n_orders if "weight" in (m1, m2) else 1):
                p1 = perms[(m1, k if m1 == "weight" else 0)]
                p2 = perms[(m2, k if m2 == "weight" else 0)]
                for g, share in permutation_agreement(p1, p2).items():
                    rows_ag.append({"pair": f"a–{name}", "order": k, "comparison": f"{SHORT[m1]} vs {SHORT[m2]}",
                                    "group": g, "units": spec.sizes[g], "share": share})
        for k in range(1, n_orders):  # reference: WM against itself with another group order
            for g, share in permutation_agreement(perms[("weight", 0)], perms[("weight", k)]).items():
                rows_ag.append({"pair": f"a–{name}", "order": k, "comparison": WM_ORDERS, "group": g,
                                "units": spec.sizes[g], "share": share})
        for (m, k), p in perms.items():
            for r in _alignment_rows(svd_a, permuted_spectra(spec, p, so, svd_o), top_k):
                rows_al.append({"pair": f"a–{name}", "method": m, "order": k, **r})
    end_acc = float(np.mean([evaluate(x, eval_data)[1] for x in (a, b, c)]))
    rows_b, rows_m = [], []
    for m, k in _methods_and_orders(n_orders):
        sb, sc = states["b"][(m, k)], states["c"][(m, k)]
        for pair, (s1, s2) in zip(PAIRS, ((sa, sb), (sa, sc), (sb, sc))):
            curve = interpolation_curve(a, s1, s2, eval_data, n_points=n_points, reset_bn=reset, reset_data=train)
            bar = barrier(curve).iloc[0]
            rows_b.append({"method": m, "order": k, "pair": pair, "loss_barrier": float(bar["loss"]),
                           "accuracy_barrier": float(bar["accuracy"])})
        loss, acc = _merged(a, [sa, sb, sc], eval_data, reset, train)
        rows_m.append({"method": m, "order": k, "loss": loss, "accuracy": acc, "endpoints_accuracy": end_acc})
    out = {"barriers": rows_b, "merged": rows_m, "agreement": rows_ag, "alignment": rows_al,
           "ste_history": pd.concat(hist, ignore_index=True), "planes": None,
           "ste_budgets": _budget_rows(a, sa, b.state_dict(), c.state_dict(), ladders, wm_first, spec, eval_data,
                                       n_points, reset, train, _ste_measures(rows_b, rows_m))
           if ste.get("budgets") else None}
    if plane:
        out["planes"] = pd.concat([plane_grid(a, sa, states["b"][(m, 0)], states["c"][(m, 0)], eval_data,
                                              resolution=plane_resolution, margin=plane_margin, reset_bn=reset,
                                              reset_data=train).assign(method=m) for m in plane_methods],
                                  ignore_index=True)
    return out


def _ste_measures(rows_b: list[dict], rows_m: list[dict]) -> dict[str, float]:
    """The ``ste_budgets`` measurements of STE's own result, from :func:`measure_triple`'s barrier and
    merged rows (the near edges averaged, the far edge, the merged model)."""
    bars = {r["pair"]: r for r in rows_b if r["method"] == "ste"}
    merged = next(r for r in rows_m if r["method"] == "ste")
    near, far = [bars[PAIRS[0]], bars[PAIRS[1]]], bars[PAIRS[2]]
    return {"near_loss_barrier": float(np.mean([r["loss_barrier"] for r in near])),
            "near_accuracy_barrier": float(np.mean([r["accuracy_barrier"] for r in near])),
            "far_loss_barrier": far["loss_barrier"], "far_accuracy_barrier": far["accuracy_barrier"],
            "merged_loss": merged["loss"], "merged_accuracy": merged["accuracy"]}


def _budget_rows(a, sa, sb, sc, ladders, wm_first, spec, eval_data, n_points, reset, train,
                 own: dict[str, float]) -> list[dict]:
    """STE's measurements at each budget of its ladder (:func:`measure_triple`): the rows of ``ste_budgets``.
    A budget whose permutations are the runs' own (``own``: measured already, :func:`_ste_measures`) or an
    earlier budget's is not measured again."""
    measured = [(ladders["b"][-1][2], ladders["c"][-1][2], own)]  # (pi_b, pi_c, measurements)
    rows = []
    for (label, steps_b, pb), (_, steps_c, pc) in zip(ladders["b"], ladders["c"]):
        found = next((m for qb, qc, m in measured if unit_agreement(qb, pb) == 1 and unit_agreement(qc, pc) == 1),
                     None)
        if found is None:
            pb_b, pc_c = P.apply_permutation(spec, pb, sb), P.apply_permutation(spec, pc, sc)
            bars = []
            for s1, s2 in ((sa, pb_b), (sa, pc_c), (pb_b, pc_c)):
                curve = interpolation_curve(a, s1, s2, eval_data, n_points=n_points, reset_bn=reset,
                                            reset_data=train)
                bars.append(barrier(curve).iloc[0])
            loss, acc = _merged(a, [sa, pb_b, pc_c], eval_data, reset, train)
            found = {"near_loss_barrier": float(np.mean([bars[0]["loss"], bars[1]["loss"]])),
                     "near_accuracy_barrier": float(np.mean([bars[0]["accuracy"], bars[1]["accuracy"]])),
                     "far_loss_barrier": float(bars[2]["loss"]), "far_accuracy_barrier": float(bars[2]["accuracy"]),
                     "merged_loss": loss, "merged_accuracy": acc}
            measured.append((pb, pc, found))
        agree = np.mean([unit_agreement(wm_first["b"], pb), unit_agreement(wm_first["c"], pc)])
        rows.append({"budget": label, "steps": float(np.mean([steps_b, steps_c])), "agreement": float(agree),
                     **found})
    return rows


def run_experiment(name: str, base: zoo.TrainConfig, n_triples: int, train: TensorData, eval_data: TensorData,
                   match_inputs: torch.Tensor, ste: Mapping, n_orders: int = 1, n_points: int = 11,
                   plane_resolution: int = 15, plane_margin: float = 0.2, top_k: int = 10, seed: int = 0,
                   device="auto", planes: bool = True, matcher: str = "iterative",
                   sinkhorn: Mapping | None = None) -> Result:
    """Ito et al. §6 on one architecture/dataset: :func:`measure_triple` on ``n_triples`` triples
    (seeds ``seed + 3i .. seed + 3i + 2``), the plane for the first (none with ``planes=False``).

    Args:
        train: training examples for STE (its held batch is the first ``ste["held_size"]``) and
            RESET of BatchNorm models; ``match_inputs``: inputs for activation matching.
        eval_data: where barriers, merged models and planes are evaluated (e.g. a test subset).
        ste: keyword arguments of :func:`~lmc_utils.matching.ste_matching` (steps, lr, batch_size, ...).
        n_orders: WM group orders per matched pair (the repeats of every WM measurement).
        top_k: singular-vector ranks averaged in the alignment columns ``u_top``, ``v_top``.
        matcher, sinkhorn: weight matching's solver and the relaxation's options (:func:`align`).
    """
    parts = {k: [] for k in ("barriers", "merged", "agreement", "alignment", "ste_history", "planes", "ste_budgets")}
    trios = triples(base, n_triples, seed, device)
    quality.record(name, [m for trio in trios for m in trio], device=device)
    for t, (a, b, c) in enumerate(tqdm(trios, desc=f"{name}: triples", leave=False)):
        got = measure_triple(a.model, b.model, c.model, train, eval_data, match_inputs, ste, n_orders=n_orders,
                             n_points=n_points, top_k=top_k, seed=seed + t, plane=planes and t == 0,
                             plane_resolution=plane_resolution, plane_margin=plane_margin, matcher=matcher,
                             sinkhorn=sinkhorn)
        for key, rows in got.items():
            if rows is None:
                continue
            frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
            parts[key].append(frame.assign(experiment=name, **({} if key == "planes" else {"triple": t})))

    def tidy(frames: list[pd.DataFrame]) -> pd.DataFrame:
        if not frames:  # planes=False, or no STE budgets
            return pd.DataFrame()
        f = pd.concat(frames, ignore_index=True)
        first = [c for c in ("experiment", "triple") if c in f]
        return f[first + [c for c in f.columns if c not in first]]

    result = Result(**{k: tidy(v) for k, v in parts.items()})
    if not result.ste_history.empty:  # STE's rows are budget-bound where a run stopped at its cap
        quality.ste_budget(ste_runs(result.ste_history)["hit_cap"], int(ste.get("steps", STE_PROTOCOL["steps"])))
    return result


def run(experiments: Mapping[str, Mapping], n_triples: int, n_orders: int, ste: Mapping,
        ste_samples: int | None = None, match_samples: int | None = None, eval_subset: int | None = None,
        n_points: int = 11, plane_resolution: int = 15, plane_margin: float = 0.2, top_k: int = 10,
        seed: int = 0, device="auto", planes: bool = True, matcher: str = "iterative",
        sinkhorn: Mapping | None = None) -> Result:
    """:func:`run_experiment` for every ``name -> TrainConfig`` (or its fields) in ``experiments``, with the
    data each needs (training examples: ``ste_samples`` for STE and RESET, ``match_samples`` for
    AM; ``eval_subset`` test examples), stacked into one :class:`Result`."""
    results = []
    for name, cfg in experiments.items():
        base = cfg if isinstance(cfg, zoo.TrainConfig) else zoo.TrainConfig(**cfg)
        train = data_mod.load(base.dataset, "train", subset=ste_samples, device=device)
        match = data_mod.load(base.dataset, "train", subset=match_samples, device=device)
        test = data_mod.load(base.dataset, "test", subset=eval_subset, device=device)
        results.append(run_experiment(name, base, n_triples, train, test, match.x, ste, n_orders=n_orders,
                                      n_points=n_points, plane_resolution=plane_resolution,
                                      plane_margin=plane_margin, top_k=top_k, seed=seed, device=device,
                                      planes=planes, matcher=matcher, sinkhorn=sinkhorn))
    return Result(**{k: pd.concat([getattr(r, k) for r in results], ignore_index=True)
                     for k in Result.__dataclass_fields__})


# --- summaries ------------------------------------------------------------------------------

def _per_triple(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """``values`` averaged over WM group orders (and anything else not in ``keys``) per triple."""
    return frame.groupby(["experiment", "triple", *keys], sort=False)[values].mean().reset_index()


def barrier_summary(barriers: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over triples (WM orders averaged within a triple) of the loss and accuracy
    barriers, per experiment, method and pair."""
    values = ["loss_barrier", "accuracy_barrier"]
    return tables_mod.mean_std(_per_triple(barriers, ["method", "pair"], values), ["experiment", "method", "pair"],
                               values)


def merged_summary(merged: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over triples of the merged (three-model average) loss and accuracy, per method."""
    values = ["loss", "accuracy", "endpoints_accuracy"]
    return tables_mod.mean_std(_per_triple(merged, ["method"], values), ["experiment", "method"], values)


def agreement_summary(agreement: pd.DataFrame) -> pd.DataFrame:
    """Share of identical rows per group and comparison: mean and std over triples (pairs and WM
    orders averaged within a triple), with the range Ito et al. report for ResNet20
    (``paper_low``, ``paper_high``)."""
    per = _per_triple(agreement, ["comparison", "group"], ["share"])
    out = tables_mod.mean_std(per, ["experiment", "comparison", "group"], ["share"])
    out["paper_low"] = out["comparison"].map(lambda c: PAPER_AGREEMENT.get(c, (np.nan, np.nan))[0])
    out["paper_high"] = out["comparison"].map(lambda c: PAPER_AGREEMENT.get(c, (np.nan, np.nan))[1])
    return out


def alignment_summary(alignment: pd.DataFrame) -> pd.DataFrame:
    """Mean over triples, pairs and WM orders of the top-k and all-rank singular-vector
    alignment, per experiment, method and layer."""
    return (alignment.groupby(["experiment", "method", "layer"], sort=False)[["u_top", "v_top", "u_all", "v_all"]]
            .mean().reset_index())


def ste_runs(history: pd.DataFrame) -> pd.DataFrame:
    """One row per STE run: its start (``init``), its step cap, the step it stopped at and whether it
    ran to the cap (``hit_cap``; a run without a patience rule always does), the step whose
    permutation it returned, whether that was the last evaluation (the budget may have cut the
    search short), and the held midpoint loss at the start (step 0: the WM permutation for the WM
    starts) and at the returned permutation."""
    rows = []
    for (exp, t, pair), h in history.groupby(["experiment", "triple", "pair"], sort=False):
        best = int(h["best_step"].iloc[0])
        last = int(h["step"].max())
        first = h.iloc[0]
        rows.append({"experiment": exp, "triple": t, "pair": pair, "init": first.get("init", "wm"),
                     "steps": int(first.get("step_cap", last)), "stopped_step": int(first.get("stopped_step", last)),
                     "hit_cap": bool(first.get("hit_cap", True)), "best_step": best,
                     "best_at_last_evaluation": best == last and best > 0,
                     "held_loss_start": float(h.loc[h["step"] == 0, "held_loss"].iloc[0]),
                     "held_loss_best": float(h["held_loss"].min())})
    return pd.DataFrame(rows)


def describe_ste(ste: Mapping) -> str:
    """One sentence naming the STE setting a run used (for the notebook's prose)."""
    init = ste.get("init", "wm")
    starts = {"wm": "from θ_a, projection warm-started at the WM permutation (as in the reference code)",
              "a": "from θ_a, projection warm-started at the WM permutation (as in the reference code)",
              "wm_projected": "from π_WM(θ_b)", "projected": "from π_WM(θ_b)",
              "a_identity": "from θ_a, projection warm-started at the identity (no WM start)",
              "identity": "from θ_b unpermuted (no WM)", "random": "from a random permutation of θ_b (seeded)"}
    opt = ste.get("optimizer", STE_PROTOCOL["optimizer"])
    opt_text = (f"{opt} (lr {ste.get('lr', STE_PROTOCOL['lr']):g}"
                + (f", momentum {ste.get('momentum', STE_PROTOCOL['momentum']):g}" if opt == "sgd" else ""))
    opt_text += f", weight decay {ste.get('weight_decay', 0.0):g}) on batches of {ste.get('batch_size', STE_PROTOCOL['batch_size'])}"
    patience = ste.get("patience")
    steps = ste.get("steps", STE_PROTOCOL["steps"])
    stop = (f"a fixed {steps} steps (no patience rule: every run stops at its cap, so its verdicts are "
            "budget-bound)" if patience is None else
            f"until {patience} held evaluations in a row (every {ste.get('eval_every', 50)} steps) bring no "
            f"improvement of more than {ste.get('min_delta', 0.0):g} nats, capped at {steps} steps")
    protocol = all(ste.get(k, v) == v for k, v in STE_PROTOCOL.items() if k not in ("steps", "init"))
    return (f"STE setting: start {starts.get(init, init)}; {opt_text}; {stop}; "
            f"up to {ste.get('wm_sweeps', STE_PROTOCOL['wm_sweeps'])} WM sweep(s) per projection"
            + (" (Ainsworth et al.'s protocol)." if protocol else " (not Ainsworth et al.'s protocol: "
               "`lmc_utils.matching.STE_PROTOCOL`)."))


BUDGET_VALUES = ["steps", "agreement", "near_loss_barrier", "near_accuracy_barrier", "far_loss_barrier",
                 "far_accuracy_barrier", "merged_loss", "merged_accuracy"]


def ste_budget_summary(ste_budgets: pd.DataFrame) -> pd.DataFrame:
    """STE at each budget of its ladder: mean and std over triples of every ``ste_budgets`` measurement,
    per experiment and budget (in ladder order, ``converged`` last); empty without budgets."""
    if ste_budgets is None or ste_budgets.empty:
        return pd.DataFrame()
    return tables_mod.mean_std(ste_budgets, ["experiment", "budget"], BUDGET_VALUES)


def describe_budgets(budgets: pd.DataFrame, barriers: pd.DataFrame, merged: pd.DataFrame,
                     label=lambda name: name) -> str:
    """Markdown, one bullet per experiment of the STE ladder (:func:`ste_budget_summary`): how much of
    its WM start STE keeps at each budget and at convergence, whether that reaches Ito et al.'s
    WM-STE agreement (:data:`PAPER_AGREEMENT`), and at convergence the far edge's accuracy barrier and
    the three-model average's accuracy with STE and with WM (:func:`barrier_summary`,
    :func:`merged_summary`; WM averaged over its group orders). Empty without a ladder."""
    if budgets is None or budgets.empty:
        return ""
    lo, hi = PAPER_AGREEMENT["WM vs STE"]
    far = PAIRS[2]
    lines = []
    for name, b in budgets.groupby("experiment", sort=False):
        conv = b[b["budget"] == "converged"].iloc[0]
        ladder = ", ".join(f"{r.agreement_mean:.0%} of the hidden units after {int(r.budget):,} steps"
                           if i == 0 else f"{r.agreement_mean:.0%} after {int(r.budget):,}"
                           for i, r in enumerate(b[b["budget"] != "converged"].itertuples(index=False)))
        reach = (f"within Ito et al.'s {lo:.2%}–{hi:.2%} (ResNet20)" if conv.agreement_mean <= hi else
                 f"{conv.agreement_mean / hi:.0f} times the top of Ito et al.'s {lo:.2%}–{hi:.2%} (ResNet20)")
        text = (f"- **{label(name)}**: STE agrees with the WM permutation it starts from on {ladder} and on "
                f"{conv.agreement_mean:.0%} at convergence (after {conv.steps_mean:,.0f} steps on average), "
                f"{reach}.")
        wm_far = barriers[(barriers["experiment"] == name) & (barriers["method"] == "weight") & (barriers["pair"] == far)]
        wm_merge = merged[(merged["experiment"] == name) & (merged["method"] == "weight")]
        if not wm_far.empty and not wm_merge.empty:
            text += (f" Converged, the far edge {far} has an accuracy barrier of {conv.far_accuracy_barrier_mean:.1%} "
                     f"with STE and {wm_far['accuracy_barrier_mean'].iloc[0]:.1%} with WM, and the average of the "
                     f"three models is {conv.merged_accuracy_mean:.1%} accurate with STE and "
                     f"{wm_merge['accuracy_mean'].iloc[0]:.1%} with WM (Ito et al.'s Table 5: STE's far edge "
                     "worse by 20+ points); the verdicts judge these gaps.")
        lines.append(text)
    return "\n".join(lines)


def tables(result: Result) -> dict[str, pd.DataFrame]:
    """The summary tables the notebook saves: ``barriers``, ``merged``, ``singular_alignment``,
    ``agreement``, ``ste_runs`` and, with STE budgets, ``ste_budgets``."""
    out = {"barriers": barrier_summary(result.barriers), "merged": merged_summary(result.merged),
           "singular_alignment": alignment_summary(result.alignment), "agreement": agreement_summary(result.agreement),
           "ste_runs": ste_runs(result.ste_history)}
    budgets = ste_budget_summary(result.ste_budgets)
    if not budgets.empty:
        out["ste_budgets"] = budgets
    return out


# --- verdicts -------------------------------------------------------------------------------

def _units_by_order(series: pd.Series, method: str) -> pd.DataFrame:
    """``series`` indexed ``(triple, method, order)`` -> a ``triples x orders`` frame for ``method``."""
    return series.xs(method, level="method").unstack("order").sort_index()


def statistics(result: Result, experiment: str) -> dict[str, tuple[str, np.ndarray]]:
    """Per declared criterion of notebook 03: ``(subject, triples x WM-orders array)`` for one experiment.

    - ``ste_barrier_comparable``: STE's minus WM's accuracy barrier on the two matched edges
      (``a - pi_b(b)``, ``a - pi_c(c)``, averaged);
    - ``ste_aligns_less``: STE's gain in top-k singular-vector alignment over no permutation, as a
      share of WM's (mean over both matched pairs, every layer and both sides u, v);
    - ``ste_far_edge_worse``: STE's minus WM's accuracy barrier on ``pi_b(b) - pi_c(c)``;
    - ``ste_merge_worse``: WM's minus STE's accuracy of the merged model (average of the three);
    - ``wm_am_agree`` / ``wm_ste_disagree``: share of all hidden units (groups weighted by size,
      both pairs averaged) on which WM's permutation agrees with AM's / STE's.
    """
    key = ["triple", "method", "order"]
    bar = result.barriers[result.barriers["experiment"] == experiment]
    near = bar[bar["pair"] != PAIRS[2]].groupby(key)["accuracy_barrier"].mean()
    far = bar[bar["pair"] == PAIRS[2]].groupby(key)["accuracy_barrier"].mean()
    mer = result.merged[result.merged["experiment"] == experiment].groupby(key)["accuracy"].mean()
    al = result.alignment[result.alignment["experiment"] == experiment]
    top = al.assign(top=(al["u_top"] + al["v_top"]) / 2).groupby(key)["top"].mean()
    ag = result.agreement[result.agreement["experiment"] == experiment]
    pooled = (ag.assign(agree=ag["share"] * ag["units"]).groupby(["triple", "comparison", "pair", "order"])
              [["agree", "units"]].sum())
    pooled = (pooled["agree"] / pooled["units"]).groupby(["triple", "comparison", "order"]).mean()

    def vs_wm(series, method, sign=1.0):  # sign * (method - WM), triples x orders
        wm = _units_by_order(series, "weight")
        other = _units_by_order(series, method)[0].reindex(wm.index)
        return sign * (other.to_numpy()[:, None] - wm.to_numpy())

    wm_top, naive_top = _units_by_order(top, "weight"), _units_by_order(top, "naive")[0]
    ste_top = _units_by_order(top, "ste")[0]
    gain_wm = wm_top.to_numpy() - naive_top.reindex(wm_top.index).to_numpy()[:, None]
    gain_ste = (ste_top - naive_top).reindex(wm_top.index).to_numpy()[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(np.abs(gain_wm) > 1e-12, gain_ste / gain_wm, np.nan)
    agree = pooled.unstack("order").sort_index()
    return {
        "ste_barrier_comparable": (f"{experiment} / STE vs WM", vs_wm(near, "ste")),
        "ste_aligns_less": (f"{experiment} / STE vs WM", share),
        "ste_far_edge_worse": (f"{experiment} / STE vs WM", vs_wm(far, "ste")),
        "ste_merge_worse": (f"{experiment} / STE vs WM", vs_wm(mer, "ste", sign=-1.0)),
        "wm_am_agree": (f"{experiment} / WM vs AM", agree.xs("WM vs AM", level="comparison").to_numpy()),
        "wm_ste_disagree": (f"{experiment} / WM vs STE", agree.xs("WM vs STE", level="comparison").to_numpy()),
    }


def verdicts(result: Result, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """One verdict row per declared criterion x experiment (:func:`lmc_utils.verdicts.verdict`,
    one value per triple, WM group orders as repeats); see :func:`statistics` for each statistic.
    Raises :class:`~lmc_utils.verdicts.CriteriaError` if a criterion this study judges is not declared."""
    rows = []
    for experiment in dict.fromkeys(result.barriers["experiment"]):
        stats = statistics(result, experiment)
        missing = sorted(set(stats) - set(criteria))
        if missing:
            raise V.CriteriaError(f"{NOTEBOOK}: criteria {missing} are not declared in params/criteria.yaml")
        for name, (subject, values) in stats.items():
            rows.append(V.verdict(NOTEBOOK, criteria[name], subject, values))
    return V.table(rows)
