"""Measurement protocols that a notebook runs per experiment, each returning tidy DataFrames.

A protocol trains (or loads) the models it needs through :mod:`lmc_utils.zoo`, aligns them
through :mod:`lmc_utils.rebasin` and measures; the notebook only chooses the experiments,
saves the tables and plots them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from tqdm import tqdm

from . import permutation as P
from . import zoo
from .data import TensorData
from .distance import l2_distance, layer_distances
from .interpolation import barrier, evaluate_state, has_batchnorm, interpolation_curve
from .matching import unit_agreement, weight_matching
from .rebasin import aligned_states
from .taylor import taylor_barrier, taylor_curve


def independent_pairs(base: zoo.TrainConfig, n_pairs: int, seed: int = 0, device="auto") -> list[tuple[zoo.Trained, zoo.Trained]]:
    """``n_pairs`` pairs of independently trained models: seeds ``(seed + 2i, seed + 2i + 1)``."""
    configs = [base.replace(seed=seed + j) for j in range(2 * n_pairs)]
    models = zoo.get_many(configs, device=device)
    return [(models[2 * i], models[2 * i + 1]) for i in range(n_pairs)]


def spawned_pairs(base: zoo.TrainConfig, n_pairs: int, parent_epochs: int, seed: int = 0,
                  device="auto") -> list[tuple[zoo.Trained, zoo.Trained]]:
    """``n_pairs`` pairs of children spawned from their own parent (parent seeds ``seed + 1000 + i``)."""
    pairs = []
    for i in range(n_pairs):
        a, b = zoo.get_many(zoo.spawn(base.replace(seed=seed + 1000 + i), parent_epochs), device=device)
        pairs.append((a, b))
    return pairs


@dataclass
class DistanceTaylorResult:
    distances: pd.DataFrame  # kind, pair, method, distance
    layers: pd.DataFrame  # kind, pair, method, layer, distance
    taylor: pd.DataFrame  # kind, pair, method, loss_a, loss_b, loss_mid, actual, estimate, ...
    curves: pd.DataFrame  # kind, method, source (actual | taylor), lam, loss


def distance_and_taylor(base: zoo.TrainConfig, n_pairs: int, parent_epochs: int, loss_data: TensorData,
                        match_inputs: torch.Tensor, n_points: int = 11, seed: int = 0,
                        device="auto") -> DistanceTaylorResult:
    """Ito et al. (2025) §3 on one architecture/dataset.

    For ``n_pairs`` independent pairs: L2 distances (whole model, per layer; parameters only)
    with B as trained (``naive``), after weight matching, after activation matching, and after a
    random permutation (control); the actual and Taylor-estimated midpoint barrier of the loss on
    ``loss_data`` for naive, weight and activation. For ``n_pairs`` spawned pairs (same basin):
    distances and barriers as trained. Curves (actual and quadratic) for the first pair of each kind.
    """
    kinds = {"independent": (independent_pairs(base, n_pairs, seed, device), ("naive", "weight", "activation", "random")),
             "spawned": (spawned_pairs(base, n_pairs, parent_epochs, seed, device), ("naive",))}
    dist_rows, layer_rows, taylor_rows, curve_frames = [], [], [], []
    jobs = [(kind, i, a, b, methods) for kind, (pairs, methods) in kinds.items() for i, (a, b) in enumerate(pairs)]
    for kind, i, a, b, methods in tqdm(jobs, desc="pairs", leave=False):
        spec = P.spec_for(a.model)
        state_a = a.model.state_dict()
        states = aligned_states(a.model, b.model, methods, match_inputs, seed=seed + i)
        for method, state_b in states.items():
            key = {"kind": kind, "pair": i, "method": method}
            dist_rows.append({**key, "distance": l2_distance(state_a, state_b, spec.buffers)})
            for layer, d in layer_distances(state_a, state_b, spec.buffers).items():
                layer_rows.append({**key, "layer": layer, "distance": d})
            if method == "random":
                continue
            t = taylor_barrier(a.model, state_a, state_b, loss_data)
            taylor_rows.append({**key, **t})
            if i == 0:
                actual = interpolation_curve(a.model, state_a, state_b, loss_data, n_points=n_points)
                curve_frames.append(actual[["lam", "loss"]].assign(source="actual", **key))
                curve_frames.append(taylor_curve(t).assign(source="taylor", **key))
    distances = pd.DataFrame(dist_rows)
    naive = distances[distances["method"] == "naive"].set_index(["kind", "pair"])["distance"]
    distances["relative_to_naive"] = [d / naive[(k, p)] for k, p, d in
                                      zip(distances["kind"], distances["pair"], distances["distance"])]
    return DistanceTaylorResult(distances, pd.DataFrame(layer_rows), pd.DataFrame(taylor_rows),
                                pd.concat(curve_frames, ignore_index=True))


def describe_distance_taylor(distances: pd.DataFrame, taylor: pd.DataFrame, barriers: pd.DataFrame) -> str:
    """Markdown bullets computed from the summary tables of :func:`distance_and_taylor` (with an
    ``experiment`` column): distance reduction next to barrier reduction, and where the Taylor
    estimate differs significantly from the actual barrier."""
    lines = []
    for exp, d in distances[distances["kind"] == "independent"].groupby("experiment", sort=False):
        rel = d.set_index("method")["relative_to_naive_mean"]
        bar = barriers[(barriers["experiment"] == exp) & (barriers["kind"] == "independent")].set_index("method")
        b_naive, b_wm = bar.loc["naive", "actual_mean"], bar.loc["weight", "actual_mean"]
        lines.append(f"- **{exp}**: weight matching shortens the distance between independent models by "
                     f"{100 * (1 - rel['weight']):.1f}% and activation matching by {100 * (1 - rel['activation']):.1f}% "
                     f"(a random permutation: {100 * (rel['random'] - 1):+.1f}%), while the midpoint loss barrier "
                     f"goes from {b_naive:.3f} to {b_wm:.3f} nats with weight matching.")
    for (exp, kind, method), t in taylor.groupby(["experiment", "kind", "method"], sort=False):
        r = t.iloc[0]
        verdict = ("differs significantly from" if r["significant"] else "is not significantly different from")
        rel_err = abs(r["diff_mean"]) / max(abs(r["actual_mean"]), 1e-12)
        lines.append(f"- {exp}, {kind} pairs, {method}: the Taylor estimate {r['estimate_mean']:.4f} {verdict} the "
                     f"actual midpoint barrier {r['actual_mean']:.4f} (paired t-test p = {r['p_value']:.3g}, "
                     f"n = {int(r['n'])}; mean error {100 * rel_err:.0f}% of the barrier).")
    lines.append("")
    lines.append("**Verdicts at this scale** (criteria: the paper's own paired t-test at p < 0.05):")
    for exp, t in taylor.groupby("experiment", sort=False):
        rel = distances[(distances["experiment"] == exp) & (distances["kind"] == "independent")].set_index("method")
        bar = barriers[(barriers["experiment"] == exp) & (barriers["kind"] == "independent")].set_index("method")
        dist_cut = 1 - rel.loc["weight", "relative_to_naive_mean"]
        bar_cut = 1 - bar.loc["weight", "actual_mean"] / bar.loc["naive", "actual_mean"]
        c1 = "held" if bar_cut > dist_cut else "did not hold"
        sig = t.set_index(["kind", "method"])["significant"]
        spawned_ok = not sig.get(("spawned", "naive"), True)
        matched_fail = [m for m in ("weight", "activation") if sig.get(("independent", m), False)]
        matched_ok = [m for m in ("weight", "activation") if m not in matched_fail]
        if spawned_ok and not matched_ok:
            c2 = "held: accurate for spawned pairs, significantly off after both matchings"
        else:
            parts = []
            if not spawned_ok:
                parts.append("the estimate is significantly off even for spawned pairs")
            if matched_ok:
                parts.append(f"it is not significantly off after {' and '.join(matched_ok)} matching")
            c2 = "did not hold (" + "; ".join(parts) + ")"
        lines.append(f"- **{exp}**: claim 1 (distance barely shrinks while the barrier collapses) {c1}: weight "
                     f"matching removed {100 * bar_cut:.0f}% of the midpoint barrier but only {100 * dist_cut:.0f}% "
                     f"of the distance. Claim 2 (Taylor estimate) {c2}.")
    return "\n".join(lines)


@dataclass
class SWAResult:
    samples: pd.DataFrame  # width, i, j, loss_barrier, accuracy_barrier, identity_share (SWA sample pairs)
    independent: pd.DataFrame  # width, i, j, loss_barrier, accuracy_barrier, identity_share (independent models)
    averages: pd.DataFrame  # width, model (sample k | SWA average), loss, accuracy


def _pair_measures(model, state_a, state_b, eval_data, reset_data, n_points, seed) -> dict[str, float]:
    """Naive barrier between two states and the share of units weight matching leaves in place."""
    spec = P.spec_for(model)
    reset = has_batchnorm(model)
    curve = interpolation_curve(model, state_a, state_b, eval_data, n_points=n_points, reset_bn=reset,
                                reset_data=reset_data)
    b = barrier(curve).iloc[0]
    perm = weight_matching(spec, state_a, state_b, seed=seed).perm
    share = unit_agreement(perm, P.identity(spec))
    return {"loss_barrier": float(b["loss"]), "accuracy_barrier": float(b["accuracy"]), "identity_share": share}


def with_width(config: zoo.TrainConfig, width: float) -> zoo.TrainConfig:
    """``config`` with its hidden width set: ``width`` for MLPs, ``width_multiplier`` for conv nets."""
    key = "width" if config.arch == "mlp" else "width_multiplier"
    return config.replace(model={**config.model, key: width})


def swa_alignment(base: zoo.TrainConfig, widths: list[int], eval_data: TensorData, reset_data: TensorData,
                  n_independent: int = 2, sample_stride: int = 1, n_points: int = 11, seed: int = 0,
                  device="auto") -> SWAResult:
    """The talk's SWA study. For each hidden width: train ``base`` (which has ``swa_epochs``) from
    ``seed``, and from ``n_independent`` further seeds. Among the SWA samples of the first run
    (every ``sample_stride``-th): pairwise naive barriers and the share of units weight matching
    leaves in place; the same between the final iterates of independently seeded runs; and the
    loss/accuracy of each sample next to the SWA average (``AveragedModel``, ``update_bn``)."""
    if base.swa_epochs < 2:
        raise ValueError("the SWA study needs base.swa_epochs >= 2")
    rows_s, rows_i, rows_a = [], [], []
    for width in tqdm(widths, desc="widths", leave=False):
        cfg = with_width(base, width)
        runs = zoo.get_many([cfg.replace(seed=seed + k) for k in range(n_independent + 1)], device=device)
        scratch = runs[0].model
        chosen = list(range(0, len(runs[0].samples), sample_stride))
        for a_i, i in enumerate(chosen):
            for j in chosen[a_i + 1:]:
                m = _pair_measures(scratch, runs[0].samples[i], runs[0].samples[j], eval_data, reset_data, n_points, seed)
                rows_s.append({"width": width, "i": i + 1, "j": j + 1, **m})
        finals = [r.samples[-1] for r in runs]
        for i in range(len(finals)):
            for j in range(i + 1, len(finals)):
                m = _pair_measures(scratch, finals[i], finals[j], eval_data, reset_data, n_points, seed)
                rows_i.append({"width": width, "i": i, "j": j, **m})
        for k, state in enumerate(runs[0].samples):
            loss, acc = evaluate_state(scratch, state, eval_data)
            rows_a.append({"width": width, "model": f"sample {k + 1}", "loss": loss, "accuracy": acc})
        loss, acc = evaluate_state(scratch, runs[0].swa_state, eval_data)
        rows_a.append({"width": width, "model": "SWA average", "loss": loss, "accuracy": acc})
    return SWAResult(pd.DataFrame(rows_s), pd.DataFrame(rows_i), pd.DataFrame(rows_a))


def swa_summary(result: SWAResult) -> pd.DataFrame:
    """Per width: mean barrier and identity share among SWA samples and between independent
    runs, and the SWA average's loss/accuracy next to the samples' mean and best."""
    rows = []
    for width in result.averages["width"].unique():
        s = result.samples[result.samples["width"] == width]
        ind = result.independent[result.independent["width"] == width]
        av = result.averages[result.averages["width"] == width].set_index("model")
        samples = av.drop(index="SWA average")
        rows.append({"width": width,
                     "swa_pairs_loss_barrier": s["loss_barrier"].mean(),
                     "swa_pairs_max_loss_barrier": s["loss_barrier"].max(),
                     "independent_loss_barrier": ind["loss_barrier"].mean(),
                     "swa_pairs_identity_share": s["identity_share"].mean(),
                     "independent_identity_share": ind["identity_share"].mean(),
                     "swa_average_loss": av.loc["SWA average", "loss"],
                     "samples_mean_loss": samples["loss"].mean(),
                     "samples_best_loss": samples["loss"].min(),
                     "swa_average_accuracy": av.loc["SWA average", "accuracy"],
                     "samples_mean_accuracy": samples["accuracy"].mean(),
                     "samples_best_accuracy": samples["accuracy"].max()})
    return pd.DataFrame(rows)


def describe_swa(summary: pd.DataFrame) -> str:
    """Markdown bullets computed from :func:`swa_summary`, one per width, and the verdicts."""
    lines = []
    for r in summary.itertuples():
        lines.append(f"- width {r.width}: SWA samples have a mean loss barrier of {r.swa_pairs_loss_barrier:.3g} "
                     f"(max {r.swa_pairs_max_loss_barrier:.3g}) against {r.independent_loss_barrier:.3g} between "
                     f"independent runs; weight matching keeps {100 * r.swa_pairs_identity_share:.1f}% of units in "
                     f"place between samples and {100 * r.independent_identity_share:.1f}% between independent runs; "
                     f"the SWA average has test loss {r.swa_average_loss:.4f} (samples: mean "
                     f"{r.samples_mean_loss:.4f}, best {r.samples_best_loss:.4f}).")
    lower = summary["swa_pairs_loss_barrier"] < summary["independent_loss_barrier"]
    ident = summary["swa_pairs_identity_share"] > summary["independent_identity_share"]
    better = summary["swa_average_loss"] <= summary["samples_mean_loss"]
    lines += ["", "**Verdicts at this scale:**",
              f"- SWA samples are closer to linearly connected than independent runs at "
              f"{int(lower.sum())} of {len(summary)} widths (widths where not: "
              f"{', '.join(map(str, summary.loc[~lower, 'width'])) or 'none'}).",
              f"- Weight matching between SWA samples leaves more units in place than between independent runs at "
              f"{int(ident.sum())} of {len(summary)} widths.",
              f"- The SWA average is at least as good (test loss) as the average sample at {int(better.sum())} of "
              f"{len(summary)} widths; it beats the best sample at "
              f"{int((summary['swa_average_loss'] <= summary['samples_best_loss']).sum())}."]
    return "\n".join(lines)
