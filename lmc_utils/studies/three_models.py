"""Merging three models: the straight-through estimator (STE) against weight matching
(Ito, Yamada & Kumagai, ICLR 2025, §6 and their answers to the reviews).

For triples ``(a, b, c)`` of independently trained models, ``b`` and ``c`` are each aligned to
``a`` by weight matching (WM), activation matching (AM) and STE. Per method this measures the
barriers ``a - pi_b(b)``, ``a - pi_c(c)`` and ``pi_b(b) - pi_c(c)``, the three-model average (the
merged model), the singular-vector alignment between ``a`` and the aligned models, and how
often the methods' permutations agree; and, for the first triple, the loss landscape on the
plane through ``a, pi_b(b), pi_c(c)``. :func:`describe_three_models` states which claims held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import permutation as P
from .. import spectral, tables, zoo
from ..data import TensorData
from ..evaluation import evaluate
from ..interpolation import barrier, evaluate_state, has_batchnorm, interpolation_curve, plane_grid
from ..matching import activation_matching, permutation_agreement, ste_matching, weight_matching

METHODS = ("naive", "weight", "activation", "ste")
LABELS = {"naive": "naive", "weight": "WM", "activation": "AM", "ste": "STE"}
PAIRS = ("a–π_b(b)", "a–π_c(c)", "π_b(b)–π_c(c)")


def triples(base: zoo.TrainConfig, n_triples: int, seed: int = 0, device="auto") -> list[tuple[zoo.Trained, ...]]:
    """``n_triples`` triples of independently trained models: seeds ``seed + 3i, seed + 3i + 1, seed + 3i + 2``."""
    if n_triples < 1:
        raise ValueError(f"n_triples must be at least 1, got {n_triples}")
    models = zoo.get_many([base.replace(seed=seed + j) for j in range(3 * n_triples)], device=device)
    return [tuple(models[3 * i:3 * i + 3]) for i in range(n_triples)]


@dataclass
class ThreeModelResult:
    barriers: pd.DataFrame  # triple, method, pair, loss_barrier, accuracy_barrier
    merged: pd.DataFrame  # triple, method, loss, accuracy (the average of a, pi_b(b), pi_c(c)); endpoints_accuracy
    agreement: pd.DataFrame  # triple, pair (b | c), group, comparison, share
    alignment: pd.DataFrame  # triple, pair, method, layer, u_top, v_top, u_all, v_all
    ste_history: pd.DataFrame  # triple, pair, step, held_loss, batch_loss
    planes: pd.DataFrame  # method, point, x, y, split, loss, accuracy (first triple)


def _align_all(model_a, model_b, train: TensorData, match_inputs: torch.Tensor, ste_kwargs: dict,
               seed: int) -> tuple[dict[str, P.Permutation], pd.DataFrame]:
    spec = P.spec_for(model_a)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    wm = weight_matching(spec, sa, sb, seed=seed).perm
    am = activation_matching(model_a, model_b, match_inputs, spec).perm
    ste = ste_matching(model_a, sa, sb, train, seed=seed, spec=spec, init_perm=wm, **ste_kwargs)
    perms = {"naive": P.identity(spec), "weight": wm, "activation": am, "ste": ste.perm}
    return perms, pd.DataFrame(ste.history).assign(best_step=ste.best_step)


def _barrier_row(model, s1, s2, eval_data, n_points, reset, reset_data) -> dict[str, float]:
    curve = interpolation_curve(model, s1, s2, eval_data, n_points=n_points, reset_bn=reset, reset_data=reset_data)
    b = barrier(curve).iloc[0]
    return {"loss_barrier": float(b["loss"]), "accuracy_barrier": float(b["accuracy"])}


def _merged(model, states, eval_data, reset, reset_data) -> tuple[float, float]:
    """Loss and accuracy of the plain average of ``states`` (RESET first for BatchNorm models)."""
    avg = {k: (sum(s[k] for s in states) / len(states)) if v.is_floating_point() else v.clone()
           for k, v in states[0].items()}
    return evaluate_state(model, avg, eval_data, reset_data if reset else None)


def _alignment_rows(state_a, state_b, top_k: int) -> list[dict]:
    """Per layer: mean diagonal alignment |<u_i^a, u_i^b>|, |<v_i^a, v_i^b>| over the top-k ranks and over all."""
    sa, sb = spectral.spectra(state_a), spectral.spectra(state_b)
    rows = []
    for layer in sa:
        d = spectral.diagonal_alignment(sa[layer], sb[layer])
        k = min(top_k, d["u"].numel())
        rows.append({"layer": layer, "u_top": float(d["u"][:k].mean()), "v_top": float(d["v"][:k].mean()),
                     "u_all": float(d["u"].mean()), "v_all": float(d["v"].mean())})
    return rows


def three_model_study(base: zoo.TrainConfig, n_triples: int, train: TensorData, eval_data: TensorData,
                      match_inputs: torch.Tensor, ste_kwargs: dict | None = None, n_points: int = 11,
                      plane_methods: tuple[str, ...] = ("weight", "ste"), plane_resolution: int = 15,
                      plane_margin: float = 0.2, top_k: int = 10, seed: int = 0, device="auto") -> ThreeModelResult:
    """Ito et al. §6 on one architecture/dataset (see the module docstring).

    Args:
        train: training examples for STE (its held batch is the first ``held_size`` of them) and
            RESET of BatchNorm models; ``match_inputs``: inputs for activation matching.
        eval_data: where barriers, merged models and planes are evaluated (e.g. a test subset).
        ste_kwargs: passed to :func:`~lmc_utils.matching.ste_matching` (steps, lr, batch_size, ...).
        top_k: singular-vector ranks averaged in the alignment table.
    """
    ste_kwargs = dict(ste_kwargs or {})
    rows_b, rows_m, rows_ag, rows_al, hist, planes = [], [], [], [], [], []
    for t, (a, b, c) in enumerate(tqdm(triples(base, n_triples, seed, device), desc="triples", leave=False)):
        model = a.model
        spec = P.spec_for(model)
        reset = has_batchnorm(model)
        sa = a.state
        perms, states = {}, {}
        for name, other in (("b", b), ("c", c)):
            perms[name], h = _align_all(model, other.model, train, match_inputs, ste_kwargs, seed + t)
            hist.append(h.assign(triple=t, pair=f"a–{name}"))
            states[name] = {m: P.apply_permutation(spec, p, other.state) for m, p in perms[name].items()}
            for (m1, m2) in (("weight", "activation"), ("weight", "ste"), ("activation", "ste")):
                for g, share in permutation_agreement(perms[name][m1], perms[name][m2]).items():
                    rows_ag.append({"triple": t, "pair": f"a–{name}", "group": g,
                                    "comparison": f"{LABELS[m1]} vs {LABELS[m2]}", "share": share})
            for m in METHODS:
                for r in _alignment_rows(sa, states[name][m], top_k):
                    rows_al.append({"triple": t, "pair": f"a–{name}", "method": m, **r})
        end_acc = np.mean([evaluate(x.model, eval_data)[1] for x in (a, b, c)])
        for m in METHODS:
            sb, sc = states["b"][m], states["c"][m]
            for pair, (s1, s2) in zip(PAIRS, ((sa, sb), (sa, sc), (sb, sc))):
                rows_b.append({"triple": t, "method": m, "pair": pair,
                               **_barrier_row(model, s1, s2, eval_data, n_points, reset, train)})
            loss, acc = _merged(model, [sa, sb, sc], eval_data, reset, train)
            rows_m.append({"triple": t, "method": m, "loss": loss, "accuracy": acc, "endpoints_accuracy": end_acc})
        if t == 0:
            for m in plane_methods:
                g = plane_grid(model, sa, states["b"][m], states["c"][m], eval_data, resolution=plane_resolution,
                               margin=plane_margin, reset_bn=reset, reset_data=train)
                planes.append(g.assign(method=m))
    return ThreeModelResult(pd.DataFrame(rows_b), pd.DataFrame(rows_m), pd.DataFrame(rows_ag), pd.DataFrame(rows_al),
                            pd.concat(hist, ignore_index=True), pd.concat(planes, ignore_index=True))


# Published numbers (Ito et al. 2025; answers to the reviews, ResNet20 on CIFAR-10): share of
# identical rows of the permutation matrices per layer, mean over five runs, range over layers.
PAPER_AGREEMENT = {"WM vs AM": (0.067, 0.286), "WM vs STE": (0.0004, 0.0125)}


def barrier_summary(barriers: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over triples of the loss and accuracy barriers, per method and pair."""
    return tables.mean_std(barriers, ["method", "pair"], ["loss_barrier", "accuracy_barrier"])


def merged_summary(merged: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over triples of the merged (three-model average) loss and accuracy, per method."""
    return tables.mean_std(merged, ["method"], ["loss", "accuracy", "endpoints_accuracy"])


def agreement_summary(agreement: pd.DataFrame) -> pd.DataFrame:
    """Share of identical rows per group and comparison: mean and std over triples and pairs,
    with the range Ito et al. report for ResNet20 (``paper_low``, ``paper_high``)."""
    out = tables.mean_std(agreement, ["comparison", "group"], ["share"])
    out["paper_low"] = out["comparison"].map(lambda c: PAPER_AGREEMENT.get(c, (np.nan, np.nan))[0])
    out["paper_high"] = out["comparison"].map(lambda c: PAPER_AGREEMENT.get(c, (np.nan, np.nan))[1])
    return out


def alignment_summary(alignment: pd.DataFrame) -> pd.DataFrame:
    """Mean over triples and pairs of the top-k and all-rank singular-vector alignment, per method and layer."""
    return (alignment.groupby(["method", "layer"], sort=False)[["u_top", "v_top", "u_all", "v_all"]]
            .mean().reset_index())


def describe_three_models(experiment: str, barriers: pd.DataFrame, merged: pd.DataFrame,
                          agreement: pd.DataFrame, alignment: pd.DataFrame,
                          ste_history: pd.DataFrame | None = None) -> str:
    """Markdown bullets with the verdict on each of Ito et al.'s three claims, computed from the
    per-triple tables of :func:`three_model_study` (``barriers``, ``merged``, ``agreement``,
    ``alignment``) of one experiment. Criteria (fixed, not tuned): claim 1 holds if STE's
    ``a - pi(b)`` loss barrier is at most WM's *and* STE's mean top-k singular-vector alignment
    is below WM's; claim 2 if the ``pi_b(b) - pi_c(c)`` accuracy barrier is larger with STE than
    with WM (paired t-test over triples reported); claim 3 if WM agrees with AM on more units than
    with STE."""
    lines = [f"**{experiment}**"]
    b = barriers.groupby(["method", "pair"], sort=False)[["loss_barrier", "accuracy_barrier"]].mean()
    ab = barriers[barriers["pair"] != PAIRS[2]].groupby("method")[["loss_barrier", "accuracy_barrier"]].mean()
    al = alignment.groupby("method")[["u_top", "v_top"]].mean().mean(axis=1)
    per_pair = (alignment.assign(top=(alignment["u_top"] + alignment["v_top"]) / 2)
                .pivot_table(index=["triple", "pair"], columns="method", values="top", aggfunc="mean").reset_index())
    t1 = tables.paired_ttest(per_pair.assign(all="all"), ["all"], "ste", "weight").iloc[0]
    low = ab.loc["ste", "loss_barrier"] <= ab.loc["weight", "loss_barrier"]
    less_aligned = al["ste"] < al["weight"] and bool(t1["significant"])
    c1 = "held" if low and less_aligned else "did not hold"
    why = []
    if not low:
        why.append("STE's barrier is above WM's")
    if not less_aligned:
        why.append("STE's singular-vector alignment is not significantly below WM's "
                   f"(paired t-test over {int(t1['n'])} matched pairs, p = {t1['p_value']:.3g})")
    c1 += f" ({'; '.join(why)})" if why else f" (alignment below WM's, paired t-test p = {t1['p_value']:.3g})"
    lines.append(
        f"- Claim 1 (STE finds a low barrier but does not align the large singular vectors) {c1}: "
        f"a–π(b) loss barrier {ab.loc['ste', 'loss_barrier']:.4f} nats with STE vs {ab.loc['weight', 'loss_barrier']:.4f} "
        f"with WM, {ab.loc['activation', 'loss_barrier']:.4f} with AM and {ab.loc['naive', 'loss_barrier']:.4f} naive "
        f"(accuracy barriers {100 * ab.loc['ste', 'accuracy_barrier']:.1f}, {100 * ab.loc['weight', 'accuracy_barrier']:.1f}, "
        f"{100 * ab.loc['activation', 'accuracy_barrier']:.1f}, {100 * ab.loc['naive', 'accuracy_barrier']:.1f} points); mean "
        f"top-k singular-vector alignment {al['ste']:.3f} after STE vs {al['weight']:.3f} after WM "
        f"({al['activation']:.3f} AM, {al['naive']:.3f} naive)"
        + (f"; in size, STE keeps {100 * (al['ste'] - al['naive']) / (al['weight'] - al['naive']):.0f}% of WM's "
           f"alignment gain over naive." if al["weight"] != al["naive"] else "."))
    if ste_history is not None and len(ste_history):
        runs = ste_history.groupby(["triple", "pair"])
        moved = int((runs["best_step"].first() > 0).sum())
        start = runs.apply(lambda h: h.loc[h["step"] == 0, "held_loss"].iloc[0]).mean()
        best = runs["held_loss"].min().mean()
        steps = int(ste_history["step"].max())
        best_steps = runs["best_step"].first()
        last_eval = runs["step"].max()
        at_end = int((best_steps == last_eval).sum())
        lines.append(f"  STE ({steps} steps per pair) returned a permutation other than its WM start in {moved} of "
                     f"{runs.ngroups} runs; the held midpoint loss went from {start:.4f} (WM) to {best:.4f} nats on average. "
                     f"The best permutation was found at step {int(best_steps.min())}–{int(best_steps.max())} "
                     f"(median {best_steps.median():.0f}); "
                     + (f"in {at_end} of {runs.ngroups} runs at the last evaluation, so more steps might still improve them."
                        if at_end else "in no run at the last evaluation, so the step budget did not cut the search short."))
    far = barriers[barriers["pair"] == PAIRS[2]].pivot(index="triple", columns="method", values="accuracy_barrier")
    test = tables.paired_ttest(far.reset_index().assign(all="all"), ["all"], "ste", "weight").iloc[0]
    gap = 100 * (far["ste"] - far["weight"]).mean()
    if gap > 0 and bool(test["significant"]):
        c2 = "held"
    elif gap > 0:
        c2 = "pointed the same way but the gap is not significant"
    else:
        c2 = "did not hold"
    sig = (f"paired t-test over {len(far)} triples p = {test['p_value']:.3g}" if test["p_value"] == test["p_value"]
           else f"{len(far)} triple(s), no test")
    m = merged.groupby("method")[["accuracy", "loss"]].mean()
    lines.append(
        f"- Claim 2 (the π_b(b)–π_c(c) barrier is larger with STE than with WM) {c2}: accuracy barrier "
        f"{100 * b.loc[('ste', PAIRS[2]), 'accuracy_barrier']:.1f} points with STE vs "
        f"{100 * b.loc[('weight', PAIRS[2]), 'accuracy_barrier']:.1f} with WM, a gap of {gap:+.1f} points ({sig}; "
        f"Ito et al. report gaps of 20+ points for ResNet20 and VGG11 on CIFAR-10); loss barrier "
        f"{b.loc[('ste', PAIRS[2]), 'loss_barrier']:.4f} vs {b.loc[('weight', PAIRS[2]), 'loss_barrier']:.4f} nats. "
        f"The merged model (average of a, π_b(b), π_c(c)) reaches {100 * m.loc['weight', 'accuracy']:.1f}% with WM, "
        f"{100 * m.loc['ste', 'accuracy']:.1f}% with STE, {100 * m.loc['activation', 'accuracy']:.1f}% with AM and "
        f"{100 * m.loc['naive', 'accuracy']:.1f}% naive (endpoints {100 * merged['endpoints_accuracy'].mean():.1f}%).")
    ag = agreement.groupby("comparison")["share"].mean()
    per_group = agreement.groupby(["comparison", "group"])["share"].mean()
    c3 = "held" if ag["WM vs AM"] > ag["WM vs STE"] else "did not hold"
    wm_am, wm_ste = per_group.loc["WM vs AM"], per_group.loc["WM vs STE"]
    lines.append(
        f"- Claim 3 (WM agrees with AM on far more units than with STE) {c3}: WM and AM agree on "
        f"{100 * wm_am.min():.1f}–{100 * wm_am.max():.1f}% of the units per layer, WM and STE on "
        f"{100 * wm_ste.min():.1f}–{100 * wm_ste.max():.1f}% (Ito et al., ResNet20: 6.7–28.6% and 0.04–1.25%).")
    return "\n".join(lines)


def summary_tables(results: dict[str, ThreeModelResult]) -> dict[str, pd.DataFrame]:
    """The summaries of several experiments' results stacked, with an ``experiment`` column:
    ``barriers``, ``merged``, ``alignment`` and ``agreement``."""
    funcs = {"barriers": barrier_summary, "merged": merged_summary, "alignment": alignment_summary,
             "agreement": agreement_summary}
    return {key: pd.concat([f(getattr(r, key)).assign(experiment=name) for name, r in results.items()],
                           ignore_index=True)[lambda d: ["experiment"] + [c for c in d.columns if c != "experiment"]]
            for key, f in funcs.items()}
