"""The regime ladder (notebook 10): rungs, subjects, the claim-vs-width data and the cpu rungs' configs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lmc_utils import data, matching, profiles, verdicts, zoo
from lmc_utils import permutation as P
from lmc_utils.studies import regime_ladder as L

MLP = {"dataset": "moons", "arch": "mlp", "model": {"depth": 2}, "optimizer": "adam", "lr": 0.01,
       "batch_size": 64, "epochs": 2}


def test_rungs_validate_their_entries():
    ladder = L.rungs({"m": {"config": MLP, "widths": [8, 16], "studies": ["distance_taylor"]}})
    assert ladder[0].experiment(8) == "m / width 8" and ladder[0].config.model == {"depth": 2}
    with pytest.raises(ValueError, match="unknown studies"):
        L.rungs({"m": {"config": MLP, "widths": [8], "studies": ["taylor"]}})
    with pytest.raises(ValueError, match="at least one width"):
        L.rungs({"m": {"config": MLP, "widths": [], "studies": []}})
    with pytest.raises(ValueError, match="must not contain"):
        L.rungs({"a/b": {"config": MLP, "widths": [8], "studies": []}})
    with pytest.raises(ValueError, match="unknown keys"):
        L.rungs({"m": {"config": MLP, "widths": [8], "width": 3}})
    with pytest.raises(ValueError, match="n_pairs has no entry"):
        L.run(ladder, {}, device="cpu")


def test_subjects_parse_to_rung_and_width():
    assert L._parse_subject("vgg11_ln / width 0.25 / weight / REPAIR") == ("vgg11_ln", 0.25)
    assert L._parse_subject("mlp_plain / width 128") == ("mlp_plain", 128.0)
    rung, width = L._parse_subject("vgg11_ln")  # a claim over all widths (a slope)
    assert rung == "vgg11_ln" and math.isnan(width)


def _row(claim, subject, estimate, low, high, verdict, threshold=0.0):
    rung, width = L._parse_subject(subject)
    return {"notebook": L.NOTEBOOK, "claim": claim, "subject": subject, "statistic": "s", "estimate": estimate,
            "ci_low": low, "ci_high": high, "n": 4, "threshold": threshold, "verdict": verdict,
            "rung": rung, "width": width}


def test_claim_vs_width_matrix_and_trend():
    table = pd.DataFrame([
        _row("a", "r / width 0.5 / weight", 0.3, 0.2, 0.4, "held"),
        _row("a", "r / width 0.25 / weight", 0.1, 0.05, 0.15, "held"),
        _row("a", "r / width 0.25 / activation", 0.0, -0.1, 0.1, "inconclusive"),
        _row("a", "r / width 0.5 / activation", 0.01, -0.1, 0.12, "inconclusive"),
        _row("b", "r", -0.1, -0.2, 0.0, "held"),  # no width: not drawn against width
    ])
    scale = L.claim_vs_width(table, ["a", "b"])
    assert list(scale["detail"]) == ["activation", "activation", "weight", "weight"]
    assert list(scale["width"]) == [0.25, 0.5, 0.25, 0.5]
    trend = L.trends(scale).set_index("detail")
    assert trend.loc["weight", "verdicts by width"] == "0.25: held, 0.5: held"
    assert trend.loc["weight", "change"] == "rises" and trend.loc["activation", "change"] == "no clear change"
    assert (trend.loc["weight", "narrowest"], trend.loc["weight", "widest"]) == (0.1, 0.3)
    grid = L.matrix(table).set_index("claim")
    assert grid.loc["a (weight)", "r / width 0.5"] == "0.3 [0.2, 0.4] held"
    assert grid.loc["b", "r / all widths"] == "-0.1 [-0.2, 0] held"
    assert grid.loc["b", "r / width 0.25"] == "—"
    crit = {"a": verdicts.Criterion("a", "c", "s", "greater", 0.0, source="Paper §1 (+9 points)")}
    assert list(L.matrix(table, crit)["paper"]) == ["Paper §1 (+9 points)", "Paper §1 (+9 points)", ""]


def test_ladder_runs_each_study_and_tags_its_verdicts():
    """A tiny two-width MLP rung through every study: rows carry notebook 10, their source
    notebook, the rung and the width, and only the ladder's declared claims."""
    cfg = dict(MLP, dataset="fashion_mnist", train_subset=300, batch_size=100, model={"depth": 2})
    ladder = L.rungs({"tiny": {"config": cfg, "widths": [8, 16],
                               "studies": ["distance_taylor", "three_models", "renormalisation", "pruning"]}})
    ste = {"steps": 2, "lr": 0.001, "batch_size": 100, "held_size": 100, "eval_every": 1, "wm_sweeps": 1}
    res = L.run(ladder, {"tiny": 2}, n_triples={"tiny": 1}, spawned_pairs={"tiny": 0}, n_orders=1,
                parent_epochs=1, loss_subset=100, match_samples=100, eval_subset=100, ste=ste, device="cpu",
                progress=False)
    assert set(res.results) == {"distance_taylor", "three_models", "renormalisation", "pruning"}
    assert len(res.endpoints) == 2 * 4 and set(res.endpoints["width"]) == {8.0, 16.0}
    criteria = verdicts.load_criteria("10_regime_ladder")
    table = L.verdicts(res, criteria)
    assert set(table["notebook"]) == {L.NOTEBOOK}
    assert set(table["claim"]) <= set(criteria)
    assert "taylor_accurate_spawned" not in set(table["claim"])  # no spawned pairs on this rung
    assert set(table["source"]) == {"01_distance_taylor", "03_ste_three_models", "04_renormalisation", "05_pruning"}
    assert set(table["rung"]) == {"tiny"} and set(table["width"]) == {8.0, 16.0}
    assert (table["n"] > 0).all()
    summary = L.endpoint_summary(res)
    assert list(summary["models"]) == [4, 4]


def test_ladder_passes_the_weight_matching_solver_to_the_01_and_03_studies(monkeypatch):
    seen = {}

    def recorder(study):
        def run(*args, **kwargs):
            seen[study] = (kwargs.get("matcher"), kwargs.get("sinkhorn"))
            raise StopIteration  # the call is all this test needs
        return run

    for study in ("distance_taylor", "three_models"):
        monkeypatch.setattr(getattr(L, study), "run", recorder(study))
    cfg = dict(MLP, dataset="fashion_mnist", train_subset=100, batch_size=100, model={"depth": 1})
    for studies in (["distance_taylor"], ["three_models"]):
        ladder = L.rungs({"tiny": {"config": cfg, "widths": [8], "studies": studies}})
        with pytest.raises(StopIteration):
            L.run(ladder, {"tiny": 1}, n_triples={"tiny": 1}, eval_subset=50, device="cpu", progress=False,
                  matcher="sinkhorn", sinkhorn={"steps": 5})
    assert seen == {s: ("sinkhorn", {"steps": 5}) for s in ("distance_taylor", "three_models")}


def test_ladder_criteria_are_the_notebooks_own():
    ladder = verdicts.load_criteria("10_regime_ladder")
    for notebook in ("01_distance_taylor", "02_singular_vectors", "03_ste_three_models", "04_renormalisation",
                     "05_pruning"):
        own = verdicts.load_criteria(notebook)
        for name in set(own) & set(ladder):
            assert own[name] == ladder[name]
    assert set(profiles.resolve("10_regime_ladder", "cpu").scale_claims) <= set(ladder)


@pytest.mark.parametrize("rung", ["mlp_plain", "vgg11_ln"])
def test_cpu_rungs_build_train_a_step_and_match(rung):
    """Every width of the cpu ladder builds, takes one optimiser step on real data and weight-matches
    two of its models (planted permutation recovered exactly)."""
    (r,) = [x for x in L.rungs(profiles.resolve("10_regime_ladder", "cpu").rungs) if x.name == rung]
    batch = data.load(r.config.dataset, "train", subset=32)
    for width in r.widths:
        cfg = zoo.with_width(r.config, width)
        torch.manual_seed(0)
        model = zoo.build_model(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        loss = torch.nn.functional.cross_entropy(model(batch.x), batch.y)
        loss.backward()
        opt.step()
        assert np.isfinite(loss.item())
        spec = P.spec_for(model)
        state = model.state_dict()
        planted = P.random_permutation(spec, 1)
        aligned_back = matching.weight_matching(spec, state, P.apply_permutation(spec, planted, state), seed=0).perm
        expected = P.inverse(planted)  # b = planted(a): matching b to a returns the inverse
        assert all(torch.equal(aligned_back[g], expected[g]) for g in spec.sizes)
