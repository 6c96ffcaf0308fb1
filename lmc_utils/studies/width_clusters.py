"""Notebook 09's protocol (the talk *LMC up to permutation of hidden neurons*): width, feature
redundancy and clusters of connected networks.

* Model zoo: many one-hidden-layer ReLU MLPs per width (trained together, ``trainer: batched``),
  their train/test loss and accuracy next to the talk's tables (:data:`TALK_ZOO`, numbers only, from ``talk_09.csv``).
* Barriers: per width, disjoint pairs (models ``2p``, ``2p + 1``) interpolated naively, after
  weight matching (WM) and after activation matching (AM); all pairs x lambdas of a width are
  evaluated in a few batched forward passes (:func:`lmc_utils.interpolation.batched_curves`).
* epsilon-loss clusters: all pairs of the first ``cluster_models`` networks of a width, without
  and with weight matching of every network to a reference (network 0); hierarchical clustering
  (``scipy.cluster.hierarchy``, average linkage) of the epsilon-loss, which is not a metric.
* Robustness: initialisation x optimiser grid at one width on Moons; every pair also matched through
  each of two reference networks (the talk's "Ref: SGD", "Ref: RMSprop"; :func:`reference_rows`).
* Decision boundaries (Moons): class-1 probability on a grid for two endpoints, their naive and
  their weight-matched midpoint; near-duplicate hidden units per network.
* Data complexity: deeper LayerNorm MLPs (the talk: 4 layers on CIFAR-10).

:func:`run` returns a :class:`Result` of tidy DataFrames, :func:`tables` the summary tables and
:func:`verdicts` the verdict rows. No plots, no prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from tqdm.auto import tqdm

from ..core import data as data_mod
from .. import permutation as P
from ..claims import verdicts as V
from .. import zoo
from ..core.data import TensorData
from ..measure.evaluation import evaluate
from ..measure.interpolation import batched_curves, curve_barriers
from ..matching import activation_matching, weight_matching
from ..claims.tables import mean_sd_text
from . import quality

NOTEBOOK = "09_width_clusters"
METHODS = ("naive", "weight", "activation")  # no permutation, weight matching (WM), activation matching (AM)
TALK_TABLES = Path(__file__).with_name("talk_09.csv")  # the talk's tables, numbers only (see its header)


def talk_tables(path: Path = TALK_TABLES) -> dict[str, dict]:
    """The talk's tables from ``path`` (CSV: ``table, key`` and the mean and sd of train loss, test loss,
    train accuracy and test accuracy): ``table -> key -> (train loss, sd, test loss, sd, train accuracy, sd,
    test accuracy, sd)``. Keys of ``zoo_*`` tables are widths (int), of ``robustness`` ``(init, optimizer)``."""
    frame = pd.read_csv(path, comment="#", dtype={"key": str})
    values = [c for c in frame.columns if c not in ("table", "key")]
    if len(values) != 8 or frame[values].isna().any().any():
        raise ValueError(f"{path}: every row needs a table, a key and 8 numbers")
    out: dict[str, dict] = {}
    for row in frame.itertuples(index=False):
        key = tuple(row.key.split("; ")) if row.table == "robustness" else int(row.key)
        out.setdefault(row.table, {})[key] = tuple(float(getattr(row, c)) for c in values)
    return out


_TALK = talk_tables()
# "Model zoo: Moons (left) and MNIST (right)" (one hidden layer): dataset -> width -> 8 numbers.
TALK_ZOO = {name[len("zoo_"):]: table for name, table in _TALK.items() if name.startswith("zoo_")}
# "How robust are results to initialization & optimizer?" (Moons; no width stated): (init, optimizer) -> 8 numbers.
TALK_ROBUSTNESS = _TALK["robustness"]
_STATS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


@dataclass
class Result:
    models: pd.DataFrame  # experiment, width, model, train_loss, train_accuracy, test_loss, test_accuracy
    pairs: pd.DataFrame  # experiment, width, pair, method, loss_barrier, epsilon_loss, accuracy_barrier,
    #                      endpoint_loss, midpoint_loss, endpoint_accuracy, midpoint_accuracy
    epsilon: pd.DataFrame  # experiment, width, reference, i, j, epsilon_loss (all pairs, both orders)
    clusters: pd.DataFrame  # experiment, width, reference, model, cluster, cut
    boundaries: pd.DataFrame  # width, panel, x, y, p1 (class-1 probability on a grid, Moons)
    duplicates: pd.DataFrame  # experiment, width, model, duplicate_share
    references: pd.DataFrame = field(default_factory=pd.DataFrame)  # experiment, width, pair, reference,
    #                      loss_barrier, epsilon_loss (both networks weight-matched to a reference network)


def train_zoo(base: zoo.TrainConfig, widths: list[int], n_models: int, seed: int = 0, device="auto",
              progress: bool = True) -> dict[int, list[zoo.Trained]]:
    """``n_models`` networks per width (seeds ``seed .. seed + n_models - 1``), through
    :func:`lmc_utils.zoo.get_many` (batched configs train together and are cached)."""
    if n_models < 2:
        raise ValueError(f"the width study needs at least 2 networks per width, got {n_models}")
    out = {}
    for width in tqdm(widths, desc=f"zoo {base.dataset}", leave=False, disable=not progress):
        cfg = zoo.with_width(base, width)
        out[width] = zoo.get_many([cfg.replace(seed=seed + r) for r in range(n_models)], device=device,
                                  progress=progress)
    return out


def model_rows(experiment: str, width: int, nets: list[zoo.Trained], train_eval: TensorData,
               test: TensorData) -> list[dict]:
    """Train and test loss/accuracy of every network (train: ``train_eval``, a subset of its training data)."""
    rows = []
    for r, t in enumerate(nets):
        tr_loss, tr_acc = evaluate(t.model, train_eval, 1000)
        te_loss, te_acc = evaluate(t.model, test, 1000)
        rows.append({"experiment": experiment, "width": width, "model": r, "train_loss": tr_loss,
                     "train_accuracy": tr_acc, "test_loss": te_loss, "test_accuracy": te_acc})
    return rows


def _matched(method: str, a: zoo.Trained, b: zoo.Trained, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """``b``'s state after matching it to ``a`` (``naive``: unchanged)."""
    if method == "naive":
        return b.state
    spec = P.spec_for(a.model)
    if method == "weight":
        perm = weight_matching(spec, a.state, b.state, seed=0).perm
    elif method == "activation":
        perm = activation_matching(a.model, b.model, inputs, spec).perm
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return P.apply_permutation(spec, perm, b.state)


def pair_rows(experiment: str, width: int, nets: list[zoo.Trained], test: TensorData, inputs: torch.Tensor,
              methods: tuple[str, ...] = METHODS, n_points: int = 11) -> list[dict]:
    """Disjoint pairs ``(2p, 2p + 1)`` of ``nets`` under each method: loss barrier, epsilon-loss and
    accuracy barrier on ``test``, and the midpoint (lambda 1/2, or the grid point nearest) against
    the endpoints' mean. All pairs x methods x lambdas in one :func:`batched_curves` call."""
    keys, a_states, b_states = [], [], []
    for p in range(len(nets) // 2):
        a, b = nets[2 * p], nets[2 * p + 1]
        for method in methods:
            keys.append((p, method))
            a_states.append(a.state)
            b_states.append(_matched(method, a, b, inputs))
    curves = batched_curves(nets[0].model, a_states, b_states, test, n_points=n_points)
    loss, acc, lam = curves["loss"], curves["accuracy"], curves["lam"]
    lb, ab = curve_barriers(loss, lam), curve_barriers(-acc, lam)
    mid = int(np.argmin(np.abs(lam - 0.5)))
    rows = []
    for k, (p, method) in enumerate(keys):
        rows.append({"experiment": experiment, "width": width, "pair": p, "method": method,
                     "loss_barrier": lb["barrier"][k], "epsilon_loss": lb["epsilon"][k],
                     "accuracy_barrier": ab["barrier"][k], "endpoint_loss": 0.5 * (loss[k, 0] + loss[k, -1]),
                     "midpoint_loss": loss[k, mid], "endpoint_accuracy": 0.5 * (acc[k, 0] + acc[k, -1]),
                     "midpoint_accuracy": acc[k, mid]})
    return rows


def epsilon_matrix(nets: list[zoo.Trained], test: TensorData, n_points: int = 5,
                   reference: int | None = None) -> np.ndarray:
    """``[n, n]`` symmetric matrix of epsilon-losses on ``test`` between all pairs of ``nets``
    (zero diagonal); with ``reference``, every other network is first weight-matched to
    ``nets[reference]`` (the talk's "reference" clustering)."""
    states = [t.state for t in nets]
    if reference is not None:
        spec = P.spec_for(nets[0].model)
        ref = states[reference]
        states = [s if i == reference else P.apply_permutation(spec, weight_matching(spec, ref, s, seed=0).perm, s)
                  for i, s in enumerate(states)]
    n = len(states)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    curves = batched_curves(nets[0].model, [states[i] for i, _ in pairs], [states[j] for _, j in pairs], test,
                            n_points=n_points)
    eps = curve_barriers(curves["loss"], curves["lam"])["epsilon"]
    out = np.zeros((n, n))
    for (i, j), e in zip(pairs, eps):
        out[i, j] = out[j, i] = e
    return out


def cluster_labels(eps: np.ndarray, cut: float) -> np.ndarray:
    """Average-linkage clusters of an epsilon-loss matrix (negative values, a midpoint better than the
    worse endpoint, count as 0), cut at dissimilarity ``cut``: labels ``1..k`` per network. The
    epsilon-loss has no triangle inequality; average linkage only needs a symmetric dissimilarity."""
    d = np.clip((eps + eps.T) / 2, 0, None)
    np.fill_diagonal(d, 0.0)
    if len(d) < 2:
        return np.ones(len(d), dtype=int)
    return fcluster(linkage(squareform(d, checks=False), method="average"), t=cut, criterion="distance")


@torch.no_grad()
def duplicate_share(model: torch.nn.Module, tol: float = 0.01) -> float:
    """Share of the first hidden layer's units whose incoming vector ``(w, b)`` has cosine similarity
    ``>= 1 - tol`` with another unit's (a near-duplicate: ReLU makes them compute the same feature up
    to scale, what :func:`lmc_utils.pruning.remove_redundant_units` merges)."""
    lin = model.hidden[0]
    v = torch.cat([lin.weight.double(), lin.bias.double()[:, None]], 1) if lin.bias is not None \
        else lin.weight.double()
    u = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    cos = u @ u.T
    cos.fill_diagonal_(-2.0)
    return float((cos.max(1).values >= 1 - tol).double().mean()) if len(v) > 1 else 0.0


@torch.no_grad()
def boundary_rows(width: int, a: zoo.Trained, b: zoo.Trained, resolution: int = 60,
                  box: tuple[float, float, float, float] = (-1.5, 2.5, -1.0, 1.5)) -> list[dict]:
    """Class-1 probability on a ``resolution x resolution`` grid over ``box`` (Moons inputs) for the
    endpoints, their naive midpoint and their weight-matched midpoint."""
    xs, ys = np.linspace(box[0], box[1], resolution), np.linspace(box[2], box[3], resolution)
    gx, gy = np.meshgrid(xs, ys)
    dev = next(a.model.parameters()).device
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32, device=dev)
    spec = P.spec_for(a.model)
    sb_wm = P.apply_permutation(spec, weight_matching(spec, a.state, b.state, seed=0).perm, b.state)
    panels = {"endpoint A": a.state, "endpoint B": b.state,
              "naive midpoint": {k: (a.state[k] + b.state[k]) / 2 for k in a.state},
              "WM midpoint": {k: (a.state[k] + sb_wm[k]) / 2 for k in a.state}}
    from torch.func import functional_call

    rows = []
    for panel, state in panels.items():
        p1 = torch.softmax(functional_call(a.model, state, (grid,)), 1)[:, 1].cpu().numpy()
        rows += [{"width": width, "panel": panel, "x": float(x), "y": float(y), "p1": float(p)}
                 for x, y, p in zip(gx.ravel(), gy.ravel(), p1)]
    return rows


def reference_rows(experiment: str, width: int, nets: list[zoo.Trained], references: Mapping[str, zoo.Trained],
                   test: TensorData, n_points: int = 11) -> list[dict]:
    """Disjoint pairs ``(2p, 2p + 1)`` of ``nets`` with both networks weight-matched to each reference
    network (label -> network; the talk's "Ref: SGD", "Ref: RMSprop"): the test loss barrier and
    epsilon-loss between the two matched networks. A pair holding a reference network is left out (it
    would be matched to itself). All pairs x references in one :func:`batched_curves` call."""
    spec = P.spec_for(nets[0].model)
    keys, a_states, b_states = [], [], []
    for label, ref in references.items():
        for p in range(len(nets) // 2):
            a, b = nets[2 * p], nets[2 * p + 1]
            if ref is a or ref is b or ref.key in (a.key, b.key):
                continue
            keys.append((p, label))
            a_states.append(P.apply_permutation(spec, weight_matching(spec, ref.state, a.state, seed=0).perm, a.state))
            b_states.append(P.apply_permutation(spec, weight_matching(spec, ref.state, b.state, seed=0).perm, b.state))
    if not keys:
        return []
    curves = batched_curves(nets[0].model, a_states, b_states, test, n_points=n_points)
    lb = curve_barriers(curves["loss"], curves["lam"])
    return [{"experiment": experiment, "width": width, "pair": p, "reference": label,
             "loss_barrier": lb["barrier"][k], "epsilon_loss": lb["epsilon"][k]} for k, (p, label) in enumerate(keys)]


def run(experiments: Mapping[str, zoo.TrainConfig], widths: Mapping[str, list[int]], n_models: int,
        cluster_widths: Mapping[str, list[int]], cluster_models: int, boundary_widths: list[int],
        eval_subset: int | None = 2000, match_samples: int = 1000, n_points: int = 11, cluster_points: int = 5,
        duplicate_tol: float = 0.01, methods: tuple[str, ...] = METHODS, seed: int = 0, device="auto",
        progress: bool = True, references: Mapping[str, str] | None = None, quality_as: str = "") -> Result:
    """For every experiment (name -> base config, width filled in) and each of its widths: train
    ``n_models`` networks; their train/test loss and accuracy; the disjoint pairs' barriers under each
    method; the epsilon-loss matrices of the first ``cluster_models`` networks (naive and weight-matched
    to network 0) at ``cluster_widths`` with their clusters cut at the mean test loss of those networks
    (the talk scales its colours to it); near-duplicate unit shares (plain MLPs); and, for Moons
    experiments at ``boundary_widths``, the decision boundaries of pair 0. ``references`` (label ->
    experiment name): the last network of that experiment at a width is a reference every experiment's
    pairs of that width are also weight-matched to (:func:`reference_rows`). The networks' test accuracies
    are recorded per experiment and width (:func:`lmc_utils.studies.quality.record`), judged against the
    floors declared for the experiment (for every experiment under ``quality_as`` when given: the
    robustness grid's)."""
    references = dict(references or {})
    unknown = sorted(set(references.values()) - set(experiments))
    if unknown:
        raise ValueError(f"references name experiments not in this run: {unknown}; choose from {sorted(experiments)}")
    rows_m, rows_p, rows_e, rows_c, rows_b, rows_d, rows_r = [], [], [], [], [], [], []
    kept: dict[str, tuple[dict[int, list[zoo.Trained]], TensorData]] = {}
    for name, base in experiments.items():
        test = data_mod.load(base.dataset, "test", subset=eval_subset, device=device)
        n_train = eval_subset if base.train_subset is None or eval_subset is None else min(eval_subset,
                                                                                           base.train_subset)
        train_eval = data_mod.load(base.dataset, "train", subset=n_train, seed=base.subset_seed, device=device)
        inputs = train_eval.x[:match_samples]
        nets_by_width = train_zoo(base, widths[name], n_models, seed=seed, device=device, progress=progress)
        for width, nets in nets_by_width.items():
            quality.record(name, nets, arm=f"width {width}", device=device, declared_as=quality_as)
        if references:
            kept[name] = (nets_by_width, test)
        for width, nets in tqdm(nets_by_width.items(), desc=f"measure {name}", leave=False, disable=not progress):
            rows_m += model_rows(name, width, nets, train_eval, test)
            rows_p += pair_rows(name, width, nets, test, inputs, methods, n_points)
            if base.model.get("norm", "none") == "none":
                rows_d += [{"experiment": name, "width": width, "model": r,
                            "duplicate_share": duplicate_share(t.model, duplicate_tol)} for r, t in enumerate(nets)]
            if width in cluster_widths.get(name, []):
                chosen = nets[:cluster_models]
                cut = float(np.mean([evaluate(t.model, test, 1000)[0] for t in chosen]))
                for reference, ref in (("none", None), ("WM to network 0", 0)):
                    eps = epsilon_matrix(chosen, test, cluster_points, reference=ref)
                    labels = cluster_labels(eps, cut)
                    rows_e += [{"experiment": name, "width": width, "reference": reference, "i": i, "j": j,
                                "epsilon_loss": eps[i, j]} for i in range(len(eps)) for j in range(len(eps))]
                    rows_c += [{"experiment": name, "width": width, "reference": reference, "model": i,
                                "cluster": int(c), "cut": cut} for i, c in enumerate(labels)]
            if base.dataset == "moons" and width in boundary_widths:
                rows_b += boundary_rows(width, nets[0], nets[1])
    for name, (nets_by_width, test) in tqdm(kept.items(), desc="references", leave=False, disable=not progress):
        for width, nets in nets_by_width.items():
            refs = {label: kept[ref_name][0][width][-1] for label, ref_name in references.items()
                    if width in kept[ref_name][0]}
            rows_r += reference_rows(name, width, nets, refs, test, n_points)
    return Result(pd.DataFrame(rows_m), pd.DataFrame(rows_p), pd.DataFrame(rows_e), pd.DataFrame(rows_c),
                  pd.DataFrame(rows_b), pd.DataFrame(rows_d, columns=["experiment", "width", "model", "duplicate_share"]),
                  pd.DataFrame(rows_r, columns=["experiment", "width", "pair", "reference", "loss_barrier",
                                                "epsilon_loss"]))


def robustness_configs(base: zoo.TrainConfig, inits: list[str], optimizers: Mapping[str, Mapping]) -> dict[str, zoo.TrainConfig]:
    """The grid ``init x optimizer`` as named experiments (``"<init>, <optimizer>"``): ``base`` with
    ``model.init`` and the optimiser's fields (``optimizers``: name -> TrainConfig fields, e.g. ``lr``)."""
    return {f"{init}, {opt}": base.replace(model={**base.model, "init": init}, optimizer=opt, **dict(fields))
            for init in inits for opt, fields in optimizers.items()}


def zoo_table(result: Result, talk: Mapping[str, Mapping[int, tuple]] | None = None) -> pd.DataFrame:
    """Per experiment and width: mean ± std over networks of the four statistics, beside the talk's
    (``talk``: experiment -> width -> 8 numbers, as :data:`TALK_ZOO`; missing: blank)."""
    talk = TALK_ZOO if talk is None else talk
    rows = []
    for (name, width), g in result.models.groupby(["experiment", "width"], sort=False):
        row = {"experiment": name, "width": width, "n": len(g)}
        ref = talk.get(name, {}).get(width)
        for k, stat in enumerate(_STATS):
            row[stat] = mean_sd_text(g[stat].mean(), g[stat].std(ddof=1))
            row[f"talk_{stat}"] = mean_sd_text(ref[2 * k], ref[2 * k + 1]) if ref else ""
        rows.append(row)
    return pd.DataFrame(rows)


def barrier_table(result: Result) -> pd.DataFrame:
    """Per experiment, width and method: mean and sd over pairs of the loss barrier, epsilon-loss,
    accuracy barrier, and the midpoint's test loss/accuracy against the endpoints' mean."""
    cols = ["loss_barrier", "epsilon_loss", "accuracy_barrier", "endpoint_loss", "midpoint_loss",
            "endpoint_accuracy", "midpoint_accuracy"]
    g = result.pairs.groupby(["experiment", "width", "method"], sort=False)
    out = g[cols].mean()
    out["loss_barrier_sd"] = g["loss_barrier"].std(ddof=1)
    out["n_pairs"] = g.size()
    return out.reset_index()


def triangle_violations(eps: np.ndarray) -> float:
    """Share of ordered triples ``(i, j, k)`` of distinct networks with ``d(i, k) > d(i, j) + d(j, k)``
    for the clipped, symmetrised epsilon-loss ``d`` (0 for a metric)."""
    d = np.clip((eps + eps.T) / 2, 0, None)
    n = len(d)
    if n < 3:
        return 0.0
    worse = d[:, None, :] > d[:, :, None] + d[None, :, :]  # [i, j, k]: d(i,k) > d(i,j) + d(j,k)
    distinct = ~(np.eye(n, dtype=bool)[:, :, None] | np.eye(n, dtype=bool)[:, None, :] | np.eye(n, dtype=bool)[None])
    return float(worse[distinct].mean())


def cluster_table(result: Result) -> pd.DataFrame:
    """Per experiment, width and reference: networks, clusters at the cut, the cut, the largest
    cluster's share, the adjusted Rand index between the naive and the matched clustering, and the
    share of triples violating the triangle inequality (:func:`triangle_violations`)."""
    from sklearn.metrics import adjusted_rand_score

    rows = []
    c, e = result.clusters, result.epsilon
    for (name, width), g in c.groupby(["experiment", "width"], sort=False):
        naive = g[g["reference"] == "none"].sort_values("model")["cluster"].to_numpy()
        for reference, h in g.groupby("reference", sort=False):
            labels = h.sort_values("model")["cluster"].to_numpy()
            sub = e[(e["experiment"] == name) & (e["width"] == width) & (e["reference"] == reference)]
            m = np.zeros((len(labels), len(labels)))
            m[sub["i"].to_numpy(), sub["j"].to_numpy()] = sub["epsilon_loss"].to_numpy()
            rows.append({"experiment": name, "width": width, "reference": reference, "networks": len(labels),
                         "clusters": len(set(labels)), "cut": float(h["cut"].iloc[0]),
                         "largest_cluster_share": float(np.bincount(labels).max() / len(labels)),
                         "rand_vs_naive": float(adjusted_rand_score(naive, labels)),
                         "triangle_violations": triangle_violations(m)})
    return pd.DataFrame(rows)


def tables(result: Result, prefix: str = "09") -> dict[str, pd.DataFrame]:
    """``<prefix>_zoo`` (with the talk's numbers), ``<prefix>_barriers`` and, where measured,
    ``<prefix>_clusters`` and ``<prefix>_duplicates``."""
    out = {f"{prefix}_zoo": zoo_table(result), f"{prefix}_barriers": barrier_table(result)}
    if not result.clusters.empty:
        out[f"{prefix}_clusters"] = cluster_table(result)
    if not result.duplicates.empty:
        out[f"{prefix}_duplicates"] = (result.duplicates.groupby(["experiment", "width"], sort=False)["duplicate_share"]
                                       .agg(["mean", "std", "count"]).reset_index())
    return out


def robustness_table(result: Result) -> pd.DataFrame:
    """The grid: per configuration, mean ± std of the four statistics beside the talk's (where it has
    one), the mean naive and WM loss barriers and, where ``result.references`` has them, the mean barrier
    after weight-matching both networks of a pair to each reference (``ref_<label>_loss_barrier``)."""
    talk = {f"{i}, {o}": v for (i, o), v in TALK_ROBUSTNESS.items()}
    table = zoo_table(result, talk={name: {w: talk[name] for w in result.models["width"].unique()}
                                    for name in talk})
    b = barrier_table(result).pivot_table(index="experiment", columns="method", values="loss_barrier")
    for method in b.columns:
        table[f"{method}_loss_barrier"] = table["experiment"].map(b[method])
    if not result.references.empty:
        refs = result.references.pivot_table(index="experiment", columns="reference", values="loss_barrier")
        for label in dict.fromkeys(result.references["reference"]):
            table[f"ref_{label}_loss_barrier"] = table["experiment"].map(refs[label])
    return table


def _values(pairs: pd.DataFrame, name: str, width, method: str, column: str) -> pd.Series:
    sub = pairs[(pairs["experiment"] == name) & (pairs["width"] == width) & (pairs["method"] == method)]
    return sub.set_index("pair")[column]


def cluster_changes(clusters: pd.DataFrame, experiment: str, width: int, reference: str = "WM to network 0") -> np.ndarray:
    """Per disjoint pair ``(2p, 2p + 1)`` of the clustered networks: 1 if the two share a cluster in the
    naive clustering and not in the one after matching to ``reference``, or the other way round; else 0."""
    c = clusters[(clusters["experiment"] == experiment) & (clusters["width"] == width)]
    naive = c[c["reference"] == "none"].set_index("model")["cluster"]
    matched = c[c["reference"] == reference].set_index("model")["cluster"]
    models = sorted(set(naive.index) & set(matched.index))
    return np.array([float((naive[i] == naive[j]) != (matched[i] == matched[j]))
                     for i, j in zip(models[0::2], models[1::2])])


def reference_statistics(result: Result) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Per (experiment, width) with two references in ``result.references``: ``(experiment, subject,
    change, agree)``, per disjoint pair: ``change = |b1 - b2| / ((b1 + b2) / 2)`` (0 where both are 0) of
    the barriers after matching both networks to reference 1 and to reference 2, and ``agree`` = the naive
    barrier minus the larger of the two. Fewer or more than two references: no rows."""
    r, out = result.references, []
    if r.empty:
        return out
    for (name, width), g in r.groupby(["experiment", "width"], sort=False):
        labels = list(dict.fromkeys(g["reference"]))
        if len(labels) != 2:
            continue
        b = g.pivot_table(index="pair", columns="reference", values="loss_barrier")[labels].dropna()
        b1, b2 = b[labels[0]].to_numpy(), b[labels[1]].to_numpy()
        mean = (b1 + b2) / 2
        change = np.divide(np.abs(b1 - b2), mean, out=np.zeros_like(mean), where=mean > 0)
        naive = _values(result.pairs, name, width, "naive", "loss_barrier").reindex(b.index).to_numpy()
        out.append((name, f"{name}: Ref {labels[0]} vs {labels[1]}", change, naive - np.maximum(b1, b2)))
    return out


def verdicts(result: Result, criteria: Mapping[str, V.Criterion], compare_widths: Mapping[str, list[int]],
             robustness: Result | None = None, deep: Result | None = None) -> pd.DataFrame:
    """Verdict rows (``params/criteria.yaml``, section ``09_width_clusters``); units are disjoint pairs
    of networks (across widths: pair ``p`` of one width against pair ``p`` of another, independent
    networks). ``compare_widths``: experiment -> ``[narrow, wide]`` for the width trends. A declared
    claim this run did not measure gets one row with no units (*inconclusive*)."""
    pairs, rows = result.pairs, []

    def add(claim: str, subject: str, values) -> None:
        if claim in criteria:
            rows.append(V.verdict(NOTEBOOK, criteria[claim], subject, np.asarray(values, dtype=float)))

    for name in pairs["experiment"].unique():
        widths = sorted(pairs.loc[pairs["experiment"] == name, "width"].unique())
        narrow, wide = compare_widths.get(name, [widths[0], widths[-1]])
        for width in dict.fromkeys([narrow, wide]):
            talk = TALK_ZOO.get(name, {}).get(width)
            if talk is not None and not result.models.empty:
                m = result.models[(result.models["experiment"] == name) & (result.models["width"] == width)]
                add("zoo_as_accurate_as_talk", f"{name} / width {width}", talk[6] - m["test_accuracy"])
        a, b = _values(pairs, name, narrow, "naive", "loss_barrier"), _values(pairs, name, wide, "naive", "loss_barrier")
        add("naive_barrier_falls_with_width", f"{name} / width {narrow} vs {wide}", (a - b).dropna())
        for width in widths:
            naive = _values(pairs, name, width, "naive", "loss_barrier")
            for method, claim in (("weight", "wm_lowers_barrier"), ("activation", "am_lowers_barrier")):
                matched = _values(pairs, name, width, method, "loss_barrier")
                if matched.empty:
                    continue
                add(claim, f"{name} / width {width}", (naive - matched).dropna())
        mid = pairs[(pairs["experiment"] == name) & (pairs["width"] == wide) & (pairs["method"] == "naive")]
        drop = mid["endpoint_accuracy"] - mid["midpoint_accuracy"]
        add("wide_midpoint_worse", f"{name} / width {wide}", mid["midpoint_loss"] - mid["endpoint_loss"])
        add("wide_midpoint_not_much_worse", f"{name} / width {wide}", drop)
    for name in result.clusters["experiment"].unique() if not result.clusters.empty else []:
        cw = sorted(result.clusters.loc[result.clusters["experiment"] == name, "width"].unique())
        for claim, width in (("narrow_not_epsilon_connected", cw[0]), ("wide_epsilon_connected", cw[-1])):
            p = pairs[(pairs["experiment"] == name) & (pairs["width"] == width) & (pairs["method"] == "naive")]
            cut = result.clusters.loc[(result.clusters["experiment"] == name) & (result.clusters["width"] == width),
                                      "cut"].iloc[0]
            add(claim, f"{name} / width {width}", p["epsilon_loss"] / cut)
        for width in cw:
            add("reference_matching_changes_clusters", f"{name} / width {width}",
                cluster_changes(result.clusters, name, width))
    if not result.duplicates.empty:
        d = result.duplicates
        for name in d["experiment"].unique():
            dn = d[d["experiment"] == name]
            narrow, wide = compare_widths.get(name, [dn["width"].min(), dn["width"].max()])
            a = dn[dn["width"] == wide].set_index("model")["duplicate_share"]
            b = dn[dn["width"] == narrow].set_index("model")["duplicate_share"]
            add("duplicates_grow_with_width", f"{name} / width {narrow} vs {wide}", (a - b).dropna())
    if robustness is not None:
        rp = robustness.pairs
        for name in rp["experiment"].unique():
            width = rp.loc[rp["experiment"] == name, "width"].iloc[0]
            add("robust_wm_lowers_barrier", name, (_values(rp, name, width, "naive", "loss_barrier")
                                                   - _values(rp, name, width, "weight", "loss_barrier")).dropna())
        for name in rp["experiment"].unique():
            init, opt = name.split(", ")
            other = f"{init}, adamw"
            if opt != "rmsprop" or other not in set(rp["experiment"]):
                continue
            width = rp.loc[rp["experiment"] == name, "width"].iloc[0]
            add("rmsprop_less_connected", f"{init}: rmsprop vs adamw",
                (_values(rp, name, width, "naive", "loss_barrier") - _values(rp, other, width, "naive", "loss_barrier")).dropna())
        for name, subject, change, agree in reference_statistics(robustness):
            add("reference_changes_barrier", subject, change)
            add("reference_agrees_qualitatively", subject, agree)
    if deep is not None:
        dp = deep.pairs
        for name in dp["experiment"].unique():
            for width in sorted(dp.loc[dp["experiment"] == name, "width"].unique()):
                add("deep_wm_lowers_barrier", f"{name} / width {width}",
                    (_values(dp, name, width, "naive", "loss_barrier") - _values(dp, name, width, "weight", "loss_barrier")).dropna())
    judged = {r["claim"] for r in rows}
    rows += [V.verdict(NOTEBOOK, c, "not measured in this run", []) for name, c in criteria.items() if name not in judged]
    return V.table(rows)


def closing_table(result: Result) -> pd.DataFrame:
    """Per experiment, at its narrowest and widest width: mean test accuracy and loss beside the
    talk's (:data:`TALK_ZOO`), mean naive and weight-matched loss barriers, and the naive midpoint's
    accuracy drop (the talk shows barriers as figures only: no talk numbers for them)."""
    rows = []
    models, pairs = result.models, result.pairs
    for name in models["experiment"].unique():
        ws = sorted(models.loc[models["experiment"] == name, "width"].unique())
        for width in dict.fromkeys([ws[0], ws[-1]]):
            m = models[(models["experiment"] == name) & (models["width"] == width)]
            p = pairs[(pairs["experiment"] == name) & (pairs["width"] == width)]
            talk = TALK_ZOO.get(name, {}).get(width)
            naive, wm = p[p["method"] == "naive"], p[p["method"] == "weight"]
            rows.append({"experiment": name, "width": width, "test_accuracy": m["test_accuracy"].mean(),
                         "talk_test_accuracy": talk[6] if talk else np.nan, "test_loss": m["test_loss"].mean(),
                         "talk_test_loss": talk[2] if talk else np.nan,
                         "naive_loss_barrier": naive["loss_barrier"].mean(),
                         "wm_loss_barrier": wm["loss_barrier"].mean() if not wm.empty else np.nan,
                         "naive_midpoint_accuracy_drop": (naive["endpoint_accuracy"] - naive["midpoint_accuracy"]).mean()})
    return pd.DataFrame(rows)
