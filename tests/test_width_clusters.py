"""Notebook 09's study: width, epsilon-loss clusters, near-duplicate units, verdicts."""

import numpy as np
import pandas as pd
import pytest
import torch

from lmc_utils import data, verdicts, zoo
from lmc_utils import permutation as P
from lmc_utils.models import mlp
from lmc_utils.studies import width_clusters as W

BASE = zoo.TrainConfig(dataset="moons", arch="mlp", model={"depth": 1}, optimizer="adam", lr=0.01, batch_size=100,
                       epochs=2, trainer="batched")


def test_cluster_labels_recover_planted_groups():
    # two groups of three networks: small epsilon within, large across; the cut splits them
    eps = np.full((6, 6), 1.0)
    for g in (range(3), range(3, 6)):
        for i in g:
            for j in g:
                eps[i, j] = 0.01
    np.fill_diagonal(eps, 0)
    labels = W.cluster_labels(eps, cut=0.5)
    assert len(set(labels)) == 2 and len(set(labels[:3])) == 1 and labels[0] != labels[3]
    assert len(set(W.cluster_labels(eps, cut=2.0))) == 1
    # negative epsilon-losses (midpoint better than the worse endpoint) count as 0, not as closer than self
    assert len(set(W.cluster_labels(eps - 0.05, cut=0.5))) == 2


def test_triangle_violations():
    # a metric (distances of points on a line) has none; 0 - 1 - 2 with d(0, 2) = 5 > 1 + 1 violates it
    x = np.array([0.0, 1.0, 3.0, 4.0])
    assert W.triangle_violations(np.abs(x[:, None] - x[None])) == 0.0
    d = np.array([[0, 1, 5], [1, 0, 1], [5, 1, 0]], dtype=float)
    assert W.triangle_violations(d) == pytest.approx(2 / 6)  # (0, 1, 2) and (2, 1, 0) of the 6 ordered triples


def test_duplicate_share_counts_scaled_copies():
    net = mlp(in_features=2, num_classes=2, width=4, depth=1)
    with torch.no_grad():
        net.hidden[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [-1.0, 1.0]]))
        net.hidden[0].bias.copy_(torch.tensor([0.5, 0.0, 1.0, 0.3]))
    assert W.duplicate_share(net, tol=1e-6) == pytest.approx(0.5)  # units 0 and 2 (positive multiples)
    with torch.no_grad():
        net.hidden[0].weight[2] *= -1
        net.hidden[0].bias[2] *= -1
    assert W.duplicate_share(net, tol=1e-6) == 0.0  # a negative multiple is a different ReLU feature


def test_epsilon_matrix_invariant_to_permuting_a_network(tmp_path, monkeypatch):
    monkeypatch.setenv("LMC_CACHE_DIR", str(tmp_path))
    nets = W.train_zoo(BASE, [8], 3, device="cpu", progress=False)[8]
    test = data.load("moons", "test", subset=200, device="cpu")
    eps = W.epsilon_matrix(nets, test, n_points=3)
    assert np.allclose(eps, eps.T) and np.all(np.diag(eps) == 0)
    # a permuted copy of network 0 matched back to network 0 is the same network: epsilon 0 after matching
    spec = P.spec_for(nets[0].model)
    twin = zoo.Trained(model=mlp(in_features=2, num_classes=2, width=8, depth=1), config=nets[0].config,
                       key="twin", history=[])
    twin.model.load_state_dict(P.apply_permutation(spec, P.random_permutation(spec, 7), nets[0].state))
    matched = W.epsilon_matrix([nets[0], twin, nets[1]], test, n_points=3, reference=0)
    assert matched[0, 1] == pytest.approx(0, abs=1e-6)


def test_study_runs_and_verdicts_on_moons(tmp_path, monkeypatch):
    monkeypatch.setenv("LMC_CACHE_DIR", str(tmp_path))
    res = W.run({"moons": BASE}, {"moons": [4, 16]}, n_models=4, cluster_widths={"moons": [4, 16]}, cluster_models=4,
                boundary_widths=[4], eval_subset=200, match_samples=100, n_points=3, cluster_points=3, device="cpu",
                progress=False)
    assert len(res.models) == 8 and len(res.pairs) == 2 * 2 * 3  # 2 widths x 2 pairs x 3 methods
    assert set(res.boundaries["panel"]) == {"endpoint A", "endpoint B", "naive midpoint", "WM midpoint"}
    t = W.tables(res)
    zt = t["09_zoo"]
    assert list(zt["width"]) == [4, 16] and zt["talk_test_accuracy"].iloc[0] == "0.903 ± 0.049"
    assert set(t["09_clusters"]["reference"]) == {"none", "WM to network 0"}
    criteria = verdicts.load_criteria("09_width_clusters")
    frame = W.verdicts(res, criteria, {"moons": [4, 16]})
    verdicts.check_declared(frame, criteria)
    measured = frame[frame["subject"] != "not measured in this run"]
    assert "naive_barrier_falls_with_width" in set(measured["claim"]) and measured["n"].min() >= 2
    # claims of the robustness grid and the deep MLPs were not measured by this call: inconclusive rows
    missing = frame[frame["subject"] == "not measured in this run"]
    assert set(missing["claim"]) == {"robust_wm_lowers_barrier", "rmsprop_less_connected", "deep_wm_lowers_barrier",
                                     "reference_changes_barrier", "reference_agrees_qualitatively"}
    assert {"zoo_as_accurate_as_talk", "reference_matching_changes_clusters"} <= set(measured["claim"])
    assert set(missing["verdict"]) == {"inconclusive"}
    grid = W.robustness_configs(BASE.replace(model={"depth": 1, "width": 8}), ["kaiming_normal"],
                                {"rmsprop": {"lr": 0.001}, "adamw": {"lr": 0.01}})
    assert set(grid) == {"kaiming_normal, rmsprop", "kaiming_normal, adamw"}
    assert grid["kaiming_normal, rmsprop"].model["init"] == "kaiming_normal"
    with pytest.raises(ValueError, match="at least 2"):
        W.train_zoo(BASE, [4], 1)


def test_width_verdict_on_synthetic_pairs():
    # barriers 0.3 at width 8 and 0.01 at width 512 for 8 pairs: the width trend holds
    rng = np.random.default_rng(0)
    rows = [{"experiment": "moons", "width": w, "pair": p, "method": m,
             "loss_barrier": (b if m == "naive" else b / 4) + 0.005 * rng.standard_normal(), "epsilon_loss": 0.0,
             "accuracy_barrier": 0.0, "endpoint_loss": 0.1, "midpoint_loss": 0.1 + b,
             "endpoint_accuracy": 0.99, "midpoint_accuracy": 0.99 - b / 10}
            for w, b in ((8, 0.3), (512, 0.01)) for p in range(8) for m in ("naive", "weight")]
    empty = pd.DataFrame()
    res = W.Result(pd.DataFrame(), pd.DataFrame(rows), empty, empty, empty, empty)
    frame = W.verdicts(res, verdicts.load_criteria("09_width_clusters"), {"moons": [8, 512]}).set_index(["claim", "subject"])
    assert frame.loc[("naive_barrier_falls_with_width", "moons / width 8 vs 512"), "verdict"] == "held"
    assert frame.loc[("wm_lowers_barrier", "moons / width 8"), "verdict"] == "held"
    assert frame.loc[("wide_midpoint_not_much_worse", "moons / width 512"), "verdict"] == "held"


def test_talk_tables_read_and_reject_a_short_row(tmp_path):
    assert W.TALK_ZOO["moons"][2] == (0.264, 0.088, 0.284, 0.084, 0.879, 0.074, 0.859, 0.077)
    assert W.TALK_ZOO["mnist"][512][6] == 0.985 and len(W.TALK_ZOO["mnist"]) == 9
    assert W.TALK_ROBUSTNESS[("kaiming_uniform", "adamw")][0] == 0.001
    bad = tmp_path / "t.csv"
    bad.write_text(W.TALK_TABLES.read_text().rstrip("\n").rsplit(",", 1)[0] + ",\n")  # last row loses a number
    with pytest.raises(ValueError, match="8 numbers"):
        W.talk_tables(bad)


def test_cluster_changes_counts_pairs_that_change_sides():
    # 4 networks: naive clusters {0, 1}, {2}, {3}; matched: one cluster. Pair (0, 1) stays together, (2, 3) joins
    rows = [{"experiment": "e", "width": 8, "reference": ref, "model": m, "cluster": c, "cut": 0.1}
            for ref, labels in (("none", [1, 1, 2, 3]), ("WM to network 0", [1, 1, 1, 1])) for m, c in enumerate(labels)]
    assert list(W.cluster_changes(pd.DataFrame(rows), "e", 8)) == [0.0, 1.0]


def test_reference_rows_through_a_permuted_copy_equal_direct_matching(tmp_path, monkeypatch):
    # the reference is network 0 permuted: matching both networks to it aligns network 1 to network 0, as
    # matching the pair directly does (one hidden layer: one assignment problem, equivariant), same barrier
    monkeypatch.setenv("LMC_CACHE_DIR", str(tmp_path))
    nets = W.train_zoo(BASE, [8], 2, device="cpu", progress=False)[8]
    test = data.load("moons", "test", subset=200, device="cpu")
    spec = P.spec_for(nets[0].model)
    twin = zoo.Trained(model=mlp(in_features=2, num_classes=2, width=8, depth=1), config=nets[0].config,
                       key="twin", history=[])
    twin.model.load_state_dict(P.apply_permutation(spec, P.random_permutation(spec, 3), nets[0].state))
    rows = W.reference_rows("moons", 8, nets, {"twin": twin}, test, n_points=5)
    direct = W.pair_rows("moons", 8, nets, test, test.x, ("weight",), n_points=5)
    assert len(rows) == 1 and rows[0]["loss_barrier"] == pytest.approx(direct[0]["loss_barrier"], abs=1e-6)
    assert W.reference_rows("moons", 8, nets, {"self": nets[1]}, test) == []  # a pair holding the reference: left out


def test_reference_verdicts_on_synthetic_barriers():
    # 8 pairs: naive 0.2; config "u, same": both references give 0.01 (no change); "u, moved": 0.01 vs 0.03
    rows_p = [{"experiment": e, "width": 128, "pair": p, "method": m, "loss_barrier": 0.2 if m == "naive" else 0.01,
               "epsilon_loss": 0.0, "accuracy_barrier": 0.0, "endpoint_loss": 0.1, "midpoint_loss": 0.2,
               "endpoint_accuracy": 0.99,
               "midpoint_accuracy": 0.9}
              for e in ("u, same", "u, moved") for p in range(8) for m in ("naive", "weight")]
    rows_r = [{"experiment": e, "width": 128, "pair": p, "reference": ref, "epsilon_loss": 0.0,
               "loss_barrier": 0.01 if (e == "u, same" or ref == "SGD") else 0.03 + 0.001 * p}
              for e in ("u, same", "u, moved") for p in range(8) for ref in ("SGD", "RMSprop")]
    empty = pd.DataFrame()
    robust = W.Result(empty, pd.DataFrame(rows_p), empty, empty, empty, empty, pd.DataFrame(rows_r))
    base = W.Result(pd.DataFrame(), pd.DataFrame(rows_p), empty, empty, empty, empty)
    frame = W.verdicts(base, verdicts.load_criteria("09_width_clusters"), {}, robustness=robust).set_index(["claim", "subject"])
    assert frame.loc[("reference_changes_barrier", "u, same: Ref SGD vs RMSprop"), "verdict"] == "did not hold"
    assert frame.loc[("reference_changes_barrier", "u, moved: Ref SGD vs RMSprop"), "verdict"] == "held"
    assert frame.loc[("reference_agrees_qualitatively", "u, moved: Ref SGD vs RMSprop"), "verdict"] == "held"
    table = W.robustness_table(W.Result(pd.DataFrame([{"experiment": e, "width": 128, "model": 0, "train_loss": 0.0,
                                                        "train_accuracy": 1.0, "test_loss": 0.0, "test_accuracy": 1.0}
                                                       for e in ("u, same", "u, moved")]), robust.pairs, empty, empty, empty,
                                        empty, robust.references))
    assert table.set_index("experiment").loc["u, moved", "ref_RMSprop_loss_barrier"] == pytest.approx(0.0335)
