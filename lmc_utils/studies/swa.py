"""Notebook 06's protocol (the talk): SWA samples are implicitly aligned — pairwise barriers and
the share of units weight matching leaves in place, among SWA samples vs independent runs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from tqdm import tqdm

from .. import permutation as P
from .. import zoo
from ..data import TensorData
from ..interpolation import barrier, evaluate_state, has_batchnorm, interpolation_curve
from ..matching import unit_agreement, weight_matching


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
        cfg = zoo.with_width(base, width)
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
