"""Notebook 07's implicit-bias studies (Qu & Horvath 2024, §4.3, App. E.5-E.6): weight decay and
initialisation.

Independent pairs of one base config per weight decay of a sweep and per initialisation (Kaiming
uniform / normal) at a small learning rate (:func:`run_bias`), with their barriers after matching,
endpoint accuracies, L2 distances at initialisation and after training, and each model's distance
from its initialisation per epoch; on the weight-decay sweep also the compression of weights and
activations (Fig. 6 (B), Figs. 69-70), the matched midpoint with REPAIR and RESCALE (Fig. 6 (C),
Fig. 71) and the degrade control (Fig. 64). The same-basin protocol and the learning-rate study are
:mod:`lmc_utils.studies.same_basin`'s. Data only: no plots, no prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..claims import verdicts as V
from .. import zoo
from ..measure.activations import layer_statistics
from ..core.data import TensorData
from ..measure.interpolation import has_batchnorm
from ..matching.rebasin import compare_methods
from . import quality
from .renormalisation import midpoint_ablation
from .same_basin import NOTEBOOK, experiment_data, pair_barriers, pair_distances, with_interval

INITS = ("kaiming_uniform", "kaiming_normal")  # the initialisation study's arms (lmc_utils.models.INITS)


@dataclass
class BiasResult:
    """The implicit-bias studies of one base config (:func:`run_bias`). ``study`` is
    ``weight_decay`` (``value``: the weight decay) or ``init`` (``value``: the initialisation)."""

    barriers: pd.DataFrame  # study, value, pair, method, reset, split, loss/accuracy barrier, accuracy_a, accuracy_b
    distances: pd.DataFrame  # study, value, pair, stage (init | trained), alignment (naive | weight), l2
    history: pd.DataFrame  # study, value, pair, model (a | b), epoch, train_loss, train_accuracy, l2_from_start
    has_bn: bool
    judge_weight_decay: float | None  # the moderate weight decay the barrier claim compares with the smallest
    # the weight-decay sweep's extras (Fig. 6 (B, C), Figs. 64, 69, 71; empty where not run):
    compression: pd.DataFrame = field(default_factory=pd.DataFrame)  # value, model, seed, quantity, mean, q05..q95, n
    compression_hist: pd.DataFrame = field(default_factory=pd.DataFrame)  # value, quantity, bin_low, bin_high, count
    renorm: pd.DataFrame = field(default_factory=pd.DataFrame)  # value, pair, method, variant, loss, accuracy
    degraded: pd.DataFrame = field(default_factory=pd.DataFrame)  # value, pair, method, reset, barriers (as barriers)


def bias_configs(base: zoo.TrainConfig, weight_decays: Sequence[float],
                 inits: Sequence[str] = INITS) -> dict[tuple[str, object], zoo.TrainConfig]:
    """The configs of the implicit-bias studies: ``("weight_decay", wd)`` is ``base`` at that weight
    decay, ``("init", name)`` is ``base`` (at its own weight decay) with that initialisation. An arm
    equal to ``base`` is ``base`` itself (same cache key): the weight decay of ``base`` and its
    initialisation (``model.init``, default ``kaiming_uniform``) are shared by both studies."""
    from ..core.models import INITS as KNOWN

    if not weight_decays and not inits:
        raise ValueError("bias_configs needs weight decays or initialisations")
    if any(float(w) < 0 for w in weight_decays):
        raise ValueError(f"weight decays must be non-negative, got {list(weight_decays)}")
    bad = [i for i in inits if i not in KNOWN]
    if bad:
        raise ValueError(f"unknown init(s) {bad}; choose from {', '.join(KNOWN)}")
    base = base.replace(weight_decay=float(base.weight_decay))  # 0 and 0.0 are one config
    own_init = base.model.get("init", "kaiming_uniform")
    out: dict[tuple[str, object], zoo.TrainConfig] = {}
    for wd in weight_decays:
        out[("weight_decay", float(wd))] = base if float(wd) == base.weight_decay else base.replace(weight_decay=float(wd))
    for init in inits:
        out[("init", init)] = base if init == own_init else base.replace(model={**base.model, "init": init})
    return out


# --- the weight-decay sweep's extras: compression, REPAIR vs RESCALE, the degrade control ----------

COMPRESSION_QUANTITIES = ("parameter magnitude", "channel activation")
COMPRESSION_BINS = np.logspace(-7, 2, 55)  # 6 bins a decade; smaller values (zeros: dead units) in the first
RENORM_VARIANTS = ("none", "REPAIR", "RESCALE")  # lmc_utils.studies.renormalisation.PLAIN_VARIANTS names


def compression_values(model: nn.Module, inputs: torch.Tensor) -> dict[str, np.ndarray]:
    """The two distributions of Qu & Horvath's Figs. 69-70 for one model: ``parameter magnitude``, ``|w|`` of
    every parameter (weights, biases, norm affine parameters), and ``channel
    activation``, each hidden unit's post-ReLU activation averaged over ``inputs`` (one value per
    channel and layer; :func:`lmc_utils.measure.activations.layer_statistics`)."""
    weights = torch.cat([p.detach().abs().flatten().cpu().double() for p in model.parameters()])
    acts = torch.cat([s.post_mean.flatten().cpu().double() for s in layer_statistics(model.eval(), inputs).values()])
    return dict(zip(COMPRESSION_QUANTITIES, (weights.numpy(), acts.abs().numpy())))


def compression_summary(values: np.ndarray) -> dict[str, float]:
    """Mean, quantiles (5, 25, 50, 75, 95%) and count of one model's values of one quantity."""
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"mean": float(values.mean()), **{f"q{int(round(100 * p)):02d}": float(v)
                                              for p, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), q)}, "n": int(values.size)}


def compression_histogram(values: np.ndarray, bins: np.ndarray = COMPRESSION_BINS) -> np.ndarray:
    """Counts of ``values`` in the log-spaced ``bins``, values below the first edge (zeros included) in
    the first bin and above the last in the last: ``len(bins) - 1`` counts summing to ``values.size``."""
    return np.histogram(np.clip(values, bins[0], np.nextafter(bins[-1], 0)), bins=bins)[0]


def weight_decay_compression(arms: Mapping[float, Sequence[tuple[zoo.Trained, zoo.Trained]]], inputs: torch.Tensor,
                             bins: np.ndarray = COMPRESSION_BINS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per weight decay (``arms``: weight decay -> its pairs) and model (``model`` ``2i``, ``2i + 1``:
    pair ``i``'s, so model ``k`` has the same seed at every weight decay), the summary of
    :func:`compression_values` on ``inputs``. Returns ``(summary, histogram)``: ``value, model, seed,
    quantity, mean, q05, q25, q50, q75, q95, n`` and, summed over the models of a weight decay,
    ``value, quantity, bin_low, bin_high, count``."""
    rows, counts = [], {}
    for wd, pairs in arms.items():
        for k, t in enumerate(m for p in pairs for m in p):
            for quantity, v in compression_values(t.model, inputs).items():
                rows.append({"value": float(wd), "model": k, "seed": t.config.seed, "quantity": quantity,
                             **compression_summary(v)})
                counts[(float(wd), quantity)] = counts.get((float(wd), quantity), 0) + compression_histogram(v, bins)
    hist = [{"value": wd, "quantity": q, "bin_low": float(lo), "bin_high": float(hi), "count": int(c)}
            for (wd, q), cs in counts.items() for lo, hi, c in zip(bins[:-1], bins[1:], cs)]
    return pd.DataFrame(rows), pd.DataFrame(hist)


def weight_decay_renorm(arms: Mapping[float, Sequence[tuple[zoo.Trained, zoo.Trained]]], eval_data: TensorData,
                        stats_x: torch.Tensor, reset_data: TensorData) -> pd.DataFrame:
    """Test loss and accuracy of every pair's weight-matched midpoint, plain, after REPAIR and after
    RESCALE (:data:`RENORM_VARIANTS`; notebook 04's :func:`lmc_utils.studies.renormalisation.midpoint_ablation`,
    goal statistics from the endpoints on ``stats_x``), per weight decay (``arms``: weight decay -> its
    pairs, at least two; models without BatchNorm). Rows: ``value, pair, method, order, variant, loss,
    accuracy``, with the endpoints as method ``-`` (Qu & Horvath 2024, Fig. 6 (C), Fig. 71)."""
    frames = [midpoint_ablation(list(pairs), eval_data, stats_x, reset_data, methods=("weight",), n_orders=1,
                                progress=False, variants=RENORM_VARIANTS)[0].assign(value=float(wd))
              for wd, pairs in arms.items()]
    return pd.concat(frames, ignore_index=True)[["value", "pair", "method", "order", "variant", "loss", "accuracy"]]


def degrade_pairs(pairs: Sequence[tuple[zoo.Trained, zoo.Trained]], epochs: int, device="auto",
                  progress: bool = True) -> list[tuple[zoo.Trained, zoo.Trained]]:
    """Both models of every pair trained ``epochs`` more at their own config's learning rate, held
    constant, and weight decay (:func:`lmc_utils.zoo.retrain_config`; data order ``seed + 700``, as the
    learning-rate study's degrade control): Qu & Horvath's 'degrade' (App. F.5, E.6)."""
    flat = zoo.get_many([zoo.retrain_config(t.config, [(float(t.config.lr), int(epochs))],
                                            data_seed=t.config.seed + 700) for p in pairs for t in p],
                        device=device, progress=progress)
    return [(flat[2 * i], flat[2 * i + 1]) for i in range(len(pairs))]


def run_bias(base: zoo.TrainConfig, weight_decays: Sequence[float], n_pairs: int, eval_data: TensorData,
             reset_data: TensorData, match_inputs: torch.Tensor, methods: Sequence[str] = ("weight", "activation"),
             inits: Sequence[str] = INITS, judge_weight_decay: float | None = None,
             n_points: int = 11, seed: int = 0, device="auto", progress: bool = True, name: str = "",
             degrade_epochs: int = 0) -> BiasResult:
    """The implicit-bias studies (Qu & Horvath 2024, Sec. 4.3 and App. E.5-E.6) on ``base``: ``n_pairs``
    independent pairs (seeds ``seed + 2i``, ``+ 1``, the same at every arm, so arms pair by ``i``)
    for each arm of :func:`bias_configs`. Per pair: test barriers after each matching method of
    ``methods`` (RESET for BatchNorm only), L2 distances
    (:func:`lmc_utils.studies.same_basin.pair_distances`) of the two initialisations and of the
    trained models, and both models' per-epoch history (``l2_from_start``: distance from their
    initialisation). A config shared by two arms is trained and measured once.
    ``judge_weight_decay`` (default: the median of ``weight_decays``) is recorded for the verdicts.
    The weight-decay sweep's extras (where it has arms): every model's parameter and activation
    magnitudes (:func:`weight_decay_compression`, on ``match_inputs``); without BatchNorm and with two
    or more pairs, each pair's weight-matched midpoint plain, with REPAIR and with RESCALE
    (:func:`weight_decay_renorm`); and, for ``degrade_epochs`` > 0, the judged weight decay's pairs
    trained that many more epochs (:func:`degrade_pairs`) and their barriers (``degraded``)."""
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    if judge_weight_decay is not None and float(judge_weight_decay) not in {float(w) for w in weight_decays}:
        raise ValueError(f"judge_weight_decay {judge_weight_decay} is not one of weight_decays {list(weight_decays)}")
    arms = bias_configs(base, weight_decays, inits)
    matchers = [m for m in methods if m != "naive"] or ["weight"]
    has_bn = has_batchnorm(zoo.build_model(base))
    unique = list({c.key: c for c in arms.values()}.values())
    trained = zoo.get_many([c.replace(seed=seed + k) for c in unique for k in range(2 * n_pairs)], device=device,
                           progress=progress)
    by_key = {c.key: [(trained[u * 2 * n_pairs + 2 * i], trained[u * 2 * n_pairs + 2 * i + 1]) for i in range(n_pairs)]
              for u, c in enumerate(unique)}
    if name:  # arms as the verdict subjects name them: "wd 0.05", "Kaiming normal"
        for (kind, value), c in arms.items():
            arm = f"wd {value:g}" if kind == "weight_decay" else str(value).replace("kaiming_", "Kaiming ")
            quality.record(name, [m for p in by_key[c.key] for m in p], arm=arm, device=device)
    measured: dict[str, tuple[list, list, list]] = {}
    for c in tqdm(unique, desc="implicit-bias arms", disable=not progress, leave=False):
        b_rows, d_rows, h_rows = [], [], []
        for i, (a, b) in enumerate(by_key[c.key]):
            cm = compare_methods(a.model, b.model, {"test": eval_data}, matchers, match_inputs=match_inputs,
                                 reset_bn=[has_bn], reset_data=reset_data, n_points=n_points, progress=False)
            b_rows += [{"pair": i, **r} for r in pair_barriers(cm)]
            starts = (zoo.build_model(a.config).eval(), zoo.build_model(b.config).eval())
            for stage, (ma, mb) in (("init", starts), ("trained", (a.model, b.model))):
                d_rows += [{"pair": i, "stage": stage, "alignment": r["alignment"], "l2": r["l2"]}
                           for r in pair_distances(ma, mb)]
            for side, t in (("a", a), ("b", b)):
                h_rows += [{"pair": i, "model": side, **{k: h[k] for k in ("epoch", "train_loss", "train_accuracy",
                                                                            "l2_from_start")}} for h in t.history]
        measured[c.key] = (b_rows, d_rows, h_rows)
    frames: list[list[dict]] = [[], [], []]
    for (study, value), c in arms.items():
        for out, rows in zip(frames, measured[c.key]):
            out += [{"study": study, "value": value, **r} for r in rows]
    wds = sorted(float(w) for w in weight_decays)
    judge = (float(judge_weight_decay) if judge_weight_decay is not None
             else wds[len(wds) // 2] if len(wds) > 2 else None)
    extras = {}
    wd_arms = {value: by_key[c.key] for (study, value), c in arms.items() if study == "weight_decay"}
    if wd_arms:
        extras["compression"], extras["compression_hist"] = weight_decay_compression(wd_arms, match_inputs)
        if not has_bn and n_pairs >= 2:
            extras["renorm"] = weight_decay_renorm(wd_arms, eval_data, match_inputs, reset_data)
    if wd_arms and judge is not None and degrade_epochs > 0:
        worse = degrade_pairs(wd_arms[judge], degrade_epochs, device=device, progress=progress)
        if name:
            quality.record(name, [m for p in worse for m in p], arm=f"wd {judge:g} degraded", device=device)
        rows = []
        for i, (a, b) in enumerate(worse):
            cm = compare_methods(a.model, b.model, {"test": eval_data}, matchers, match_inputs=match_inputs,
                                 reset_bn=[has_bn], reset_data=reset_data, n_points=n_points, progress=False)
            rows += [{"value": judge, "pair": i, **r} for r in pair_barriers(cm)]
        extras["degraded"] = pd.DataFrame(rows)
    return BiasResult(*(pd.DataFrame(f) for f in frames), has_bn=has_bn, judge_weight_decay=judge, **extras)


def run_bias_experiments(wd_experiments: Mapping[str, Mapping] | None, init_experiments: Mapping[str, Mapping] | None,
                         weight_decays: Sequence[float], n_pairs: int, eval_subset: int | None = None,
                         match_samples: int = 2000, judge_weight_decay: float | None = None, seed: int = 0,
                         device="auto", progress: bool = True, **kwargs) -> dict[str, BiasResult]:
    """:func:`run_bias` for each experiment (name -> :class:`lmc_utils.zoo.TrainConfig` fields) of
    ``wd_experiments`` (the weight-decay sweep) and ``init_experiments`` (Kaiming uniform vs normal);
    a name in both (with the same fields) runs both studies in one call, sharing the arm equal to its
    base config. Data as :func:`lmc_utils.studies.same_basin.run_experiments` loads it; ``kwargs`` go to
    :func:`run_bias`."""
    wd_experiments, init_experiments = dict(wd_experiments or {}), dict(init_experiments or {})
    clash = [n for n in set(wd_experiments) & set(init_experiments) if wd_experiments[n] != init_experiments[n]]
    if clash:
        raise ValueError(f"experiment(s) {sorted(clash)} have different configs in wd_experiments and "
                         f"init_experiments; give them different names")
    out = {}
    for name, fields in {**wd_experiments, **init_experiments}.items():
        cfg, test, train = experiment_data(fields, eval_subset, match_samples, device)
        out[name] = run_bias(cfg, weight_decays if name in wd_experiments else (), n_pairs, test, train, train.x,
                             inits=INITS if name in init_experiments else (),
                             judge_weight_decay=judge_weight_decay if name in wd_experiments else None,
                             seed=seed, device=device, progress=progress, name=name, **kwargs)
    return out


def bias_tables(results: Mapping[str, BiasResult]) -> dict[str, pd.DataFrame]:
    """The implicit-bias tables, stacked over experiments (an ``experiment`` column first):
    ``07_weight_decay`` and ``07_init``: per arm and method the mean test accuracy barrier after
    matching over pairs with its 95% t interval, and the mean endpoint accuracy with its interval;
    ``07_init_distances``: per initialisation, stage (init | trained) and alignment the mean L2
    distance between a pair's models; ``07_init_history``: per initialisation and epoch the mean
    distance of a model from its initialisation, with its interval (the units: models)."""
    out: dict[str, list[pd.DataFrame]] = {"07_weight_decay": [], "07_init": [], "07_init_distances": [],
                                          "07_init_history": []}
    for name, r in results.items():
        bar = r.barriers.assign(endpoint_accuracy=(r.barriers["accuracy_a"] + r.barriers["accuracy_b"]) / 2)
        for study, table in (("weight_decay", "07_weight_decay"), ("init", "07_init")):
            sub = bar[bar["study"] == study]
            if sub.empty:
                continue
            a = with_interval(sub, ["value", "method", "reset"], "accuracy_barrier")
            e = with_interval(sub, ["value", "method", "reset"], "endpoint_accuracy").rename(
                columns={"ci_low": "endpoint_ci_low", "ci_high": "endpoint_ci_high"}).drop(columns="n")
            t = a.merge(e, on=["value", "method", "reset"]).rename(columns={"value": study})
            out[table].append(t.assign(experiment=name))
        d = r.distances[r.distances["study"] == "init"]
        if not d.empty:
            out["07_init_distances"].append(d.groupby(["value", "stage", "alignment"], sort=False)["l2"].mean()
                                            .reset_index().rename(columns={"value": "init"}).assign(experiment=name))
        h = r.history[r.history["study"] == "init"]
        if not h.empty:
            out["07_init_history"].append(with_interval(h, ["value", "epoch"], "l2_from_start")
                                          .rename(columns={"value": "init"}).assign(experiment=name))
    return {**{k: pd.concat(v, ignore_index=True).pipe(lambda f: f[["experiment", *[c for c in f if c != "experiment"]]])
               for k, v in out.items() if v}, **weight_decay_tables(results)}


def _endpoint_rows(barriers: pd.DataFrame) -> pd.DataFrame:
    """``barriers`` with ``endpoint_accuracy``: the mean of a pair's two endpoint accuracies."""
    return barriers.assign(endpoint_accuracy=(barriers["accuracy_a"] + barriers["accuracy_b"]) / 2)


def weight_decay_tables(results: Mapping[str, BiasResult]) -> dict[str, pd.DataFrame]:
    """The weight-decay sweep's extra tables, stacked over experiments (``experiment`` first; a table
    no experiment ran is left out): ``07_weight_decay_compression``, per weight decay, model and
    quantity the mean and quantiles of its parameter magnitudes and channel activations;
    ``07_repair_rescale_by_weight_decay``, per weight decay and correction (``none``, ``REPAIR``,
    ``RESCALE``, and the ``endpoints``' mean) the weight-matched midpoint's mean test accuracy over
    pairs with its 95% t interval; ``07_weight_decay_degraded``, per method the test accuracy barrier
    after matching and the endpoint accuracy (95% intervals over pairs) at the smallest weight decay,
    at the judged one and at the judged one after its degrading epochs (``variant`` trained | degraded)."""
    out: dict[str, list[pd.DataFrame]] = {"07_weight_decay_compression": [], "07_repair_rescale_by_weight_decay": [],
                                          "07_weight_decay_degraded": []}
    for name, r in results.items():
        if not r.compression.empty:
            out["07_weight_decay_compression"].append(r.compression.rename(columns={"value": "weight_decay"})
                                                      .assign(experiment=name))
        if not r.renorm.empty:
            rn = r.renorm
            mids = rn[rn["method"] == "weight"].groupby(["value", "variant", "pair"], sort=False)["accuracy"].mean()
            ends = rn[rn["method"] == "-"].groupby(["value", "pair"], sort=False)["accuracy"].mean()
            per_pair = pd.concat([mids.reset_index(), ends.reset_index().assign(variant="endpoints")], ignore_index=True)
            t = with_interval(per_pair, ["value", "variant"], "accuracy").rename(columns={"value": "weight_decay"})
            out["07_repair_rescale_by_weight_decay"].append(t.sort_values("weight_decay", kind="stable")
                                                            .assign(experiment=name))
        if not r.degraded.empty:
            bar = r.barriers[r.barriers["study"] == "weight_decay"]
            lo = float(bar["value"].min())
            arms = pd.concat([bar[bar["value"].isin([lo, r.judge_weight_decay])].assign(variant="trained"),
                              r.degraded.assign(variant="degraded")], ignore_index=True).pipe(_endpoint_rows)
            by = ["value", "variant", "method", "reset"]
            a = with_interval(arms, by, "accuracy_barrier")
            e = with_interval(arms, by, "endpoint_accuracy").rename(
                columns={"ci_low": "endpoint_ci_low", "ci_high": "endpoint_ci_high"}).drop(columns="n")
            out["07_weight_decay_degraded"].append(a.merge(e, on=by).rename(columns={"value": "weight_decay"})
                                                   .assign(experiment=name))
    return {k: pd.concat(v, ignore_index=True).pipe(lambda f: f[["experiment", *[c for c in f if c != "experiment"]]])
            for k, v in out.items() if v}


def _per_pair(frame: pd.DataFrame, study: str, value, method: str, column: str = "accuracy_barrier") -> pd.Series:
    """``column`` per pair of one arm and method of a :class:`BiasResult`'s barriers (indexed by pair)."""
    sub = frame[(frame["study"] == study) & (frame["value"] == value) & (frame["method"] == method)]
    return sub.set_index("pair")[column].sort_index()


def bias_verdicts(result: BiasResult, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """Verdict rows of the implicit-bias claims (``params/criteria.yaml``, section ``07_same_basin``).
    Arms pair by index ``i`` (the same seeds at every arm). Weight decay (needs three or more
    values): the smallest minus the judged moderate one (barrier), and the endpoint accuracy of the
    largest below that of the best of the others (the one with the highest mean endpoint accuracy
    over pairs). Initialisation: Kaiming normal minus Kaiming uniform (barrier), and the ratio of
    their trained pairs' L2 distance after weight matching."""
    rows = []

    def add(claim: str, subject: str, values) -> None:
        if claim in criteria:
            rows.append(V.verdict(NOTEBOOK, criteria[claim], subject, values))

    bar, dist = result.barriers, result.distances
    bar = bar.assign(endpoint_accuracy=(bar["accuracy_a"] + bar["accuracy_b"]) / 2)
    matchers = list(dict.fromkeys(bar["method"]))
    wds = sorted(set(bar.loc[bar["study"] == "weight_decay", "value"]))
    if len(wds) >= 3 and result.judge_weight_decay is not None:
        lo, mid, top = wds[0], float(result.judge_weight_decay), wds[-1]
        for m in matchers:
            add("weight_decay_lowers_barrier", f"wd {lo:g} - wd {mid:g}, {m}",
                _per_pair(bar, "weight_decay", lo, m) - _per_pair(bar, "weight_decay", mid, m))
        ends = {w: _per_pair(bar, "weight_decay", w, matchers[0], "endpoint_accuracy") for w in wds}
        best = max(wds[:-1], key=lambda w: float(ends[w].mean()))
        add("too_much_weight_decay_degrades", f"wd {best:g} (best) - wd {top:g} (largest), endpoint accuracy",
            ends[best] - ends[top])
    rows += weight_decay_extra_verdicts(result, criteria).to_dict("records")
    inits = set(bar.loc[bar["study"] == "init", "value"])
    if {"kaiming_uniform", "kaiming_normal"} <= inits:
        for m in matchers:
            add("init_changes_barrier", f"Kaiming normal - uniform, {m}",
                _per_pair(bar, "init", "kaiming_normal", m) - _per_pair(bar, "init", "kaiming_uniform", m))
        d = dist[(dist["study"] == "init") & (dist["stage"] == "trained") & (dist["alignment"] == "weight")]
        l2 = {i: d[d["value"] == i].set_index("pair")["l2"].sort_index() for i in ("kaiming_normal", "kaiming_uniform")}
        add("init_distance_persists", "Kaiming normal / uniform, trained, after WM",
            l2["kaiming_normal"] / l2["kaiming_uniform"])
    return V.table(rows)


def weight_decay_extra_verdicts(result: BiasResult, criteria: Mapping[str, V.Criterion]) -> pd.DataFrame:
    """Verdict rows of the weight-decay sweep's extras (``params/criteria.yaml``, section ``07_same_basin``),
    each at the smallest weight decay and the judged one: ``weight_decay_compresses`` (per model ``k``,
    the same seed in both arms: the ratio of its mean parameter magnitude, and of its mean channel
    activation), ``rescale_robust_to_weight_decay`` (per pair, at the smallest weight decay: the
    weight-matched midpoint's test accuracy after RESCALE minus after REPAIR) and
    ``weight_decay_lowers_barrier_degraded`` (per pair and method: the barrier at the smallest weight
    decay minus the judged weight decay's after degrading, the learning-rate control's mirror)."""
    rows = []

    def add(claim: str, subject: str, values) -> None:
        if claim in criteria:
            rows.append(V.verdict(NOTEBOOK, criteria[claim], subject, values))

    judge, comp, rn, worse = result.judge_weight_decay, result.compression, result.renorm, result.degraded
    bar = result.barriers
    wds = sorted(set(bar.loc[bar["study"] == "weight_decay", "value"])) if len(bar) else []
    lo = wds[0] if wds else None
    if judge is not None and not comp.empty and judge != min(comp["value"]):
        c_lo = min(comp["value"])
        for q in COMPRESSION_QUANTITIES:
            per = comp[comp["quantity"] == q].pivot_table(index="model", columns="value", values="mean")
            add("weight_decay_compresses", f"wd {judge:g} / wd {c_lo:g}, {q}", per[judge] / per[c_lo])
    if not rn.empty:
        r_lo = min(rn["value"])
        mid = rn[(rn["method"] == "weight") & (rn["value"] == r_lo)].pivot_table(index="pair", columns="variant",
                                                                                 values="accuracy")
        add("rescale_robust_to_weight_decay", f"wd {r_lo:g}, WM midpoint: RESCALE - REPAIR",
            mid["RESCALE"] - mid["REPAIR"])
    if judge is not None and not worse.empty and lo is not None and judge != lo:
        for m in dict.fromkeys(worse["method"]):
            deg = worse[worse["method"] == m].set_index("pair")["accuracy_barrier"].sort_index()
            add("weight_decay_lowers_barrier_degraded", f"wd {lo:g} - wd {judge:g} degraded, {m}",
                _per_pair(bar, "weight_decay", lo, m) - deg)
    return V.table(rows)
