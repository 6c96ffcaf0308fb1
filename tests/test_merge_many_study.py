"""Notebook 08's protocol: merges of permuted copies, the parameters, and verdicts that follow
the numbers of synthetic tables."""

import pandas as pd
import pytest
import torch

from lmc_utils import models, profiles, verdicts, zoo
from lmc_utils import permutation as P
from lmc_utils.data import TensorData
from lmc_utils.evaluation import evaluate
from lmc_utils.studies import merge_many
from conftest import fit_briefly

CRITERIA = verdicts.load_criteria("08_merge_many")


def _data(n=400, shape=(20,), seed=0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g), 10, "synthetic",
                      "train")


BUILDERS = {
    "mlp": (lambda: models.mlp(in_features=20, num_classes=10, width=24, depth=2), (20,)),
    "vgg11-batchnorm": (lambda: models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.0625),
                        (1, 28, 28)),
}


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_permuted_copies_merge_back_into_the_model_under_every_matcher_and_regime(arch):
    build, shape = BUILDERS[arch]
    data = _data(200, shape)
    torch.manual_seed(0)
    base = fit_briefly(build(), data, steps=15)
    spec = P.spec_for(base)
    copies = []
    for i in range(4):
        m = build()
        m.load_state_dict(P.apply_permutation(spec, P.random_permutation(spec, seed=i), base.state_dict())
                          if i else base.state_dict())
        copies.append(m.eval())
    loss, acc = evaluate(base, data)
    jobs = {"weight": ["reference", "sequential", "iterative"], "activation": ["reference"]}
    rows, trace, ends = merge_many.measure_group(copies, [2, 4], jobs, data, data, max_iterations=5)
    frame = pd.DataFrame(rows)
    matched = frame[frame["matcher"] != merge_many.NAIVE]
    plain = matched[matched["renorm"] == "none"]
    assert len(plain) == 2 * 4 and plain["accuracy"].eq(acc).all()
    assert plain["loss"].sub(loss).abs().max() < 1e-4
    assert set(frame["renorm"]) == {"none", "RESET" if arch.endswith("batchnorm") else "REPAIR"}
    if arch == "mlp":  # REPAIR towards the statistics the merge already has changes nothing
        repaired = matched[matched["renorm"] == "REPAIR"]
        assert repaired["loss"].sub(loss).abs().max() < 1e-3 and repaired["accuracy"].sub(acc).abs().max() < 0.01
    naive = frame[(frame["matcher"] == merge_many.NAIVE) & (frame["renorm"] == "none") & (frame["n"] == 4)]
    assert float(naive["loss"].iloc[0]) > loss + 0.05  # unmatched averaging of permuted copies is not the model
    it = frame[frame["regime"] == "iterative"]
    assert it["converged"].all() and set(pd.DataFrame(trace)["n"]) == {2, 4}
    assert all(e["accuracy"] == acc for e in ends)


def test_a_matcher_stops_at_its_largest_n_and_repair_reuses_the_endpoints_statistics():
    build, shape = BUILDERS["mlp"]
    data = _data(200, shape)
    torch.manual_seed(1)
    nets = [fit_briefly(build(), data, steps=10).eval() for _ in range(4)]
    jobs = {"weight": ["reference"], "activation": ["reference"]}
    rows, _, _ = merge_many.measure_group(nets, [2, 3, 4], jobs, data, data, max_n_by_matcher={"activation": 3})
    frame = pd.DataFrame(rows)
    assert set(frame[frame["matcher"] == "activation"]["n"]) == {2, 3}
    assert set(frame[frame["matcher"] == "weight"]["n"]) == {2, 3, 4}
    # statistics measured once for all four serve every prefix: as measured for the prefix alone
    states = [n.state_dict() for n in nets]
    once = merge_many.endpoint_statistics(nets[0], states, data)
    for n in (2, 3):
        assert merge_many.evaluate_merge(nets[0], states[:n], data, data, once) == \
            merge_many.evaluate_merge(nets[0], states[:n], data, data)
    with pytest.raises(ValueError, match="max_n_by_matcher"):
        merge_many.run({}, {}, {}, {}, 1, [2], jobs, max_n_by_matcher={"sinkhorn": 2})


def test_groups_are_disjoint_and_spawned_groups_share_a_parent():
    base = zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 8, "depth": 1}, epochs=3)
    groups = merge_many.group_configs(base, 3, 4, seed=5)
    seeds = [c.seed for g in groups for c in g]
    assert seeds == list(range(5, 17))
    spawned = merge_many.spawned_configs(base, 2, 3, parent_epochs=1)
    assert [len(g) for g in spawned] == [3, 3]
    assert len({c.parent.key for c in spawned[0]}) == 1 and spawned[0][0].parent.key != spawned[1][0].parent.key
    assert [c.data_seed for c in spawned[0]] == [1, 2, 3]
    with pytest.raises(ValueError):
        merge_many.group_configs(base, 0, 4)
    with pytest.raises(ValueError, match="unknown regimes"):
        merge_many.check_jobs({"weight": ["star"]})
    with pytest.raises(ValueError, match="unknown matcher"):
        merge_many.check_jobs({"sinkhorn": ["reference"]})


def _result(drop: float, iterative_gain: float, spawned_gap: float, ste_gap: float, arch: str = "vgg",
            groups: int = 4, noise: float = 0.004) -> merge_many.Result:
    """Synthetic ``merged`` rows: the WM merge loses ``drop`` accuracy from n = 2 to n = 4, the
    iterative regime adds ``iterative_gain`` at n = 4, re-normalisation adds 0.1, STE is
    ``ste_gap`` below WM, spawned averages ``spawned_gap`` below their endpoints."""
    rows = []
    rn = "RESET" if arch == "vgg" else "REPAIR"
    for g in range(groups):
        eps = noise * ((g % 3) - 1)
        for n in (2, 3, 4):
            for matcher, regimes in (("weight", ("reference", "sequential", "iterative")), ("ste", ("reference",))):
                for regime in regimes:
                    acc = 0.8 - drop * (n - 2) / 2 + eps
                    acc += iterative_gain * (n == 4) * (regime == "iterative")
                    acc -= ste_gap * (matcher == "ste")
                    for r, bonus in (("none", 0.0), (rn, 0.1)):
                        rows.append({"experiment": "x", "kind": "independent", "group": g, "arch": arch, "n": n,
                                     "matcher": matcher, "regime": regime, "renorm": r,
                                     "default": r == (rn if arch == "vgg" else "none"), "loss": 1.0,
                                     "accuracy": acc + bonus, "endpoints_accuracy": 0.9, "iterations": 1,
                                     "converged": True})
            rows.append({"experiment": "x", "kind": "spawned", "group": g, "arch": arch, "n": n, "matcher": "naive",
                         "regime": "none", "renorm": "none", "default": True, "loss": 1.0,
                         "accuracy": 0.9 - spawned_gap + eps, "endpoints_accuracy": 0.9, "iterations": 0,
                         "converged": None})
    return merge_many.Result(pd.DataFrame(rows), pd.DataFrame(columns=["experiment", "group", "n", "matcher",
                                                                       "iteration", "objective", "cosine",
                                                                       "converged"]),
                             pd.DataFrame())


def _outcomes(frame):
    return {(r.claim, r.subject.split(" / ")[1]): r.verdict for r in frame.itertuples()}


def test_verdicts_follow_the_numbers():
    held = _outcomes(merge_many.verdicts(_result(drop=0.2, iterative_gain=0.0, spawned_gap=-0.01, ste_gap=0.05),
                                         CRITERIA))
    assert held[("cnn_merge_degrades", "WM reference (n 2 → 4)")] == "held"
    assert held[("iterative_gains_little", "WM (n = 4)")] == "held"
    assert held[("renorm_changes_merge", "WM sequential + RESET (n = 4)")] == "held"
    assert held[("same_basin_merges_well", "spawned (n ≤ 4)")] == "held"
    assert held[("wm_merges_better_than_ste", "WM vs STE (reference, n ≥ 3)")] == "held"
    assert not any(c == "mlp_merge_suffices" for c, _ in held)  # a conv net: claim 2 is about MLPs
    failed = _outcomes(merge_many.verdicts(_result(drop=0.0, iterative_gain=0.1, spawned_gap=0.1, ste_gap=-0.05),
                                           CRITERIA))
    assert failed[("cnn_merge_degrades", "WM iterative (n 2 → 4)")] == "did not hold"
    assert failed[("iterative_gains_little", "WM (n = 4)")] == "did not hold"
    assert failed[("same_basin_merges_well", "spawned (n ≤ 4)")] == "did not hold"
    assert failed[("wm_merges_better_than_ste", "WM vs STE (reference, n ≥ 3)")] == "did not hold"


def test_mlp_verdicts_judge_claim_two_on_the_plain_merge():
    good = _outcomes(merge_many.verdicts(_result(drop=-0.2, iterative_gain=0.0, spawned_gap=0.0, ste_gap=0.0,
                                                 arch="mlp"), CRITERIA))
    # endpoints 0.9, WM merge at n = 4 is 0.9 (0.8 + 0.1): within 2 points
    assert good[("mlp_merge_suffices", "WM reference (n = 4)")] == "held"
    assert not any(c == "cnn_merge_degrades" for c, _ in good)
    bad = _outcomes(merge_many.verdicts(_result(drop=0.2, iterative_gain=0.0, spawned_gap=0.0, ste_gap=0.0,
                                                arch="mlp"), CRITERIA))
    assert bad[("mlp_merge_suffices", "WM sequential (n = 4)")] == "did not hold"


def test_verdicts_need_every_criterion_declared():
    partial = {k: v for k, v in CRITERIA.items() if k != "iterative_gains_little"}
    with pytest.raises(verdicts.CriteriaError):
        merge_many.verdicts(_result(0.2, 0.0, 0.0, 0.0), partial)


def test_tables_summarise_over_groups():
    t = merge_many.tables(_result(0.2, 0.0, 0.0, 0.0, groups=3))
    m = t["08_merged"]
    assert {"groups", "n", "accuracy_mean", "accuracy_std", "endpoints_accuracy_mean"} <= set(m.columns)
    assert m["groups"].eq(3).all()


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_every_profile_defines_the_groups_of_every_experiment(profile):
    p = profiles.resolve("08_merge_many", profile)
    for name in p.experiments:
        assert p.group_size[name] >= max(min(p.ns), 2) and p.n_groups[name] >= 2
        assert name in p.spawned_groups
        zoo.TrainConfig(**p.experiments[name])
    merge_many.check_jobs(p.jobs)
    for jobs in (p.jobs_by_experiment or {}).values():
        merge_many.check_jobs(jobs)
