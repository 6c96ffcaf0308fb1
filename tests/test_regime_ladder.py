"""The regime ladder (notebook 10): rungs, subjects, the claim-vs-width data and the cpu rungs' configs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

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
    assert trend.loc["weight", "readings by width"] == "0.25: held, 0.5: held"
    assert trend.loc["weight", "verdict (all widths)"] == ""  # no pooled table given
    assert trend.loc["weight", "change"] == "rises" and trend.loc["activation", "change"] == "no clear change"
    assert (trend.loc["weight", "narrowest"], trend.loc["weight", "widest"]) == (0.1, 0.3)
    grid = L.matrix(table).set_index("claim")
    assert grid.loc["a (weight)", "r / width 0.5"] == "0.3 [0.2, 0.4] held"
    assert grid.loc["b", "r / all widths"] == "-0.1 [-0.2, 0] held"
    assert grid.loc["b", "r / width 0.25"] == "—"
    crit = {"a": verdicts.Criterion("a", "c", "s", "greater", 0.0, paper={"work": "external", "place": "Paper §1 (+9 points)", "value": "+9 points"})}
    assert list(L.matrix(table, crit)["paper"]) == ["Paper §1 (+9 points)", "Paper §1 (+9 points)", ""]


def _stratum(claim, subject, values, criterion):
    rung, width = L._parse_subject(subject)
    return {**verdicts.verdict(L.NOTEBOOK, criterion, subject, values), "source": "01", "rung": rung, "width": width}


def test_pool_widths_judges_the_mean_over_a_rungs_widths():
    """Per-width rows of a rung with two or more widths become one row per claim and detail: the
    equal-weight mean of the widths' means, its interval from their standard errors (Welch df);
    one-width rungs, slopes and unjudged rows are kept as they are."""
    rng = np.random.default_rng(3)
    crit = {"a": verdicts.Criterion("a", "c", "s", "greater", 0.0), "b": verdicts.Criterion("b", "c", "s", "less", 1.0)}
    units = {0.25: rng.normal(0.05, 0.1, 6), 0.5: rng.normal(0.1, 0.1, 5), 1.0: rng.normal(0.2, 0.3, 4)}
    rows = [_stratum("a", f"r / width {w} / weight", v, crit["a"]) for w, v in units.items()]
    rows += [_stratum("a", "m / width 128 / weight", rng.normal(0.3, 0.1, 8), crit["a"]),
             _stratum("b", "r", rng.normal(0.0, 0.1, 4), crit["b"])]  # a slope over the widths
    table = verdicts.table(rows)
    pooled = L.pool_widths(table, crit)
    assert list(pooled["subject"]) == ["r / mean over 3 widths / weight", "m / width 128 / weight", "r"]
    row = pooled.iloc[0]
    means = [v.mean() for v in units.values()]
    var = np.array([v.var(ddof=1) / len(v) for v in units.values()])
    df = var.sum() ** 2 / np.sum(var ** 2 / (np.array([6, 5, 4]) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(var.sum()) / 3
    assert row["estimate"] == pytest.approx(np.mean(means))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((np.mean(means) - half, np.mean(means) + half))
    assert row["n"] == 15 and row["strata"] == 3 and row["widths"] == "0.25, 0.5, 1" and math.isnan(row["width"])
    assert row["verdict"] == verdicts.decide(row["ci_low"], row["ci_high"], 0.0, "greater")
    assert pooled.iloc[1].drop(["strata", "widths"]).equals(table.iloc[3])  # one width: unchanged
    assert L._detail("r / mean over 3 widths / weight / REPAIR") == "weight / REPAIR"
    assert L._parse_subject("r / mean over 3 widths / weight")[0] == "r"
    # the matrix: a rung's verdict in "r / all widths", its widths' readings without a verdict word
    scale = L.claim_vs_width(table, ["a"])
    grid = L.matrix(pooled, widths=scale).set_index("claim")
    assert list(grid.columns) == ["r / width 0.25", "r / width 0.5", "r / width 1", "r / all widths",
                                  "m / width 128"]
    assert grid.loc["a (weight)", "r / all widths"].endswith(row["verdict"])
    assert not grid.loc["a (weight)", "r / width 0.5"].endswith(("held", "inconclusive"))
    assert L.trends(scale, pooled)["verdict (all widths)"].tolist() == [row["verdict"]]
    assert L.pooled_verdicts(pooled) == {("a", "r", "weight"): row["verdict"]}


def test_pooling_widths_settles_a_claim_the_widths_leave_open():
    """Four widths each with an interval straddling 0 and a common positive effect: the pooled
    interval is narrower than every width's and lies above 0."""
    crit = {"a": verdicts.Criterion("a", "c", "s", "greater", 0.0)}
    rng = np.random.default_rng(0)
    rows = []
    for w in (1, 2, 3, 4):
        v = rng.normal(0.0, 0.1, 5)
        rows.append(_stratum("a", f"r / width {w}", (v - v.mean()) / v.std(ddof=1) * 0.1 + 0.06, crit["a"]))
    table = verdicts.table(rows)
    assert (table["verdict"] == "inconclusive").all()
    pooled = L.pool_widths(table, crit).iloc[0]
    assert pooled["verdict"] == "held"
    assert pooled["ci_high"] - pooled["ci_low"] < (table["ci_high"] - table["ci_low"]).min()


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
    widths = L.verdicts(res, criteria, unit="width")
    assert widths.equals(L.per_width(res, criteria))
    assert set(widths.loc[widths["n"] > 0, "width"]) == {8.0, 16.0}
    table = L.verdicts(res, criteria)  # the default: one verdict per claim and detail over both widths
    assert set(table["notebook"]) == {L.NOTEBOOK}
    verdicts.check_declared(table, criteria)  # every declared claim has a row, judged or not
    judged, unjudged = table[table["n"] > 0], table[table["n"] == 0].set_index("claim")
    assert set(judged["source"]) == {"01_distance_taylor", "03_ste_three_models", "04_renormalisation", "05_pruning"}
    assert set(judged["rung"]) == {"tiny"}
    pooled = judged["width"].isna()  # kept per width: a claim with units at one width only
    assert judged.loc[pooled, "subject"].str.startswith("tiny / mean over 2 widths").all()
    assert (judged.loc[pooled, "strata"] == 2).all() and judged.loc[~pooled, "strata"].isna().all()
    assert 2 * pooled.sum() + (~pooled).sum() == (widths["n"] > 0).sum()
    with pytest.raises(ValueError, match="verdict_unit must be one of rung, width"):
        L.verdicts(res, criteria, unit="pair")
    # no spawned pairs on this rung, and no singular-vector study: inconclusive rows that say so
    assert set(unjudged.index) == {"taylor_accurate_spawned", "wm_aligns_top_singular_vectors",
                                   "am_aligns_top_singular_vectors", "wider_lower_wm_midpoint_loss"}
    assert (unjudged["verdict"] == "inconclusive").all() and (unjudged["rung"] == "").all()
    assert "had no units" in unjudged.loc["taylor_accurate_spawned", "subject"]
    assert unjudged.loc["wm_aligns_top_singular_vectors", "subject"] == \
        "not judged: no rung ran the singular_vectors study"
    assert unjudged.loc["wm_aligns_top_singular_vectors", "source"] == "02_singular_vectors"
    grid = L.matrix(table).set_index("claim")
    assert set(grid.loc["taylor_accurate_spawned"].loc[lambda c: c != "—"].index) == {"not judged"}
    assert grid.loc["wm_aligns_top_singular_vectors", "not judged"] == "no rung ran the singular_vectors study"
    assert L.claim_vs_width(widths, list(criteria))["n"].gt(0).all()  # unjudged rows are not drawn
    assert L.claim_vs_width(table, list(criteria)).empty  # pooled rows have no width
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


def test_pairs_by_study_gives_some_studies_fewer_pairs(monkeypatch):
    seen = {}
    monkeypatch.setattr(L.distance_taylor, "run", lambda cfgs, pairs, *a, **k: seen.update(distance_taylor=pairs))
    monkeypatch.setattr(L, "_renormalisation", lambda name, cfg, pairs, *a: seen.update(renormalisation=pairs))
    monkeypatch.setattr(L, "_pruning", lambda name, cfg, models, *a: seen.update(pruning=models))
    monkeypatch.setattr(L.singular_vectors, "run", lambda cfgs, widths, pairs, **k: seen.update(singular_vectors=pairs))
    cfg = dict(MLP, dataset="fashion_mnist", train_subset=100, batch_size=100, epochs=1, model={"depth": 1})
    ladder = L.rungs({"tiny": {"config": cfg, "widths": [4],
                               "studies": ["distance_taylor", "singular_vectors", "renormalisation", "pruning"]}})
    res = L.run(ladder, {"tiny": 3}, eval_subset=50, device="cpu", progress=False,
                pairs_by_study={"tiny": {"singular_vectors": 2, "pruning": 2, "renormalisation": 9}})
    # named studies get at most their count (capped at n_pairs); pruning judges both models of each pair
    assert seen == {"distance_taylor": 3, "singular_vectors": 2, "renormalisation": 3, "pruning": 4}
    assert len(res.endpoints) == 6  # every model of the n_pairs pairs is an endpoint
    with pytest.raises(ValueError, match="not a pair-based study"):
        L.run(ladder, {"tiny": 3}, pairs_by_study={"tiny": {"three_models": 2}}, device="cpu")
    with pytest.raises(ValueError, match="at least 2 pairs"):
        L.run(ladder, {"tiny": 3}, pairs_by_study={"tiny": {"pruning": 1}}, device="cpu")
    with pytest.raises(ValueError, match="unknown rung"):
        L.run(ladder, {"tiny": 3}, pairs_by_study={"other": {"pruning": 2}}, device="cpu")


def test_ladder_criteria_are_the_notebooks_own():
    ladder = verdicts.load_criteria("10_regime_ladder")
    for notebook in ("01_distance_taylor", "02_singular_vectors", "03_ste_three_models", "04_renormalisation",
                     "05_pruning"):
        own = verdicts.load_criteria(notebook)
        for name in set(own) & set(ladder):
            assert own[name] == ladder[name]
    assert set(profiles.resolve("10_regime_ladder", "cpu").scale_claims) <= set(ladder)


@pytest.mark.parametrize("profile,rung", [("cpu", "mlp_plain"), ("cpu", "vgg11_ln"), ("paper", "vgg11_ln"),
                                          ("paper", "resnet20_ln")])
def test_ladder_rungs_build_train_a_step_and_match(profile, rung):
    """Every width of the cpu ladder (the narrowest of the paper ladder's, on CIFAR-shaped random
    tensors: no CIFAR here) builds, takes one optimiser step and weight-matches two of its models
    (planted permutation recovered exactly)."""
    (r,) = [x for x in L.rungs(profiles.resolve("10_regime_ladder", profile).rungs) if x.name == rung]
    if r.config.dataset.startswith("cifar"):
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, data.NUM_CLASSES[r.config.dataset], (8,))
    else:
        batch = data.load(r.config.dataset, "train", subset=32)
        x, y = batch.x, batch.y
    for width in r.widths if profile == "cpu" else r.widths[:1]:
        cfg = zoo.with_width(r.config, width)
        torch.manual_seed(0)
        model = zoo.build_model(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        assert np.isfinite(loss.item())
        spec = P.spec_for(model)
        state = model.state_dict()
        planted = P.random_permutation(spec, 1)
        aligned_back = matching.weight_matching(spec, state, P.apply_permutation(spec, planted, state), seed=0).perm
        expected = P.inverse(planted)  # b = planted(a): matching b to a returns the inverse
        assert all(torch.equal(aligned_back[g], expected[g]) for g in spec.sizes)


def test_rung_summary_lists_each_rungs_outcomes():
    def row(claim, subject, verdict):
        return {"notebook": L.NOTEBOOK, "claim": claim, "subject": subject, "statistic": "s", "estimate": 0.1,
                "ci_low": 0.0, "ci_high": 0.2, "n": 4, "threshold": 0.0, "verdict": verdict}
    rows = [row("a", "r / width 0.5 / weight", "held"), row("a", "r / width 0.5 / activation", "held"),
            row("b", "r / width 0.5", "did not hold"), row("a", "r / width 0.25 / weight", "inconclusive"),
            row("s", "r", "held")]
    table = verdicts.table(rows)
    parsed = table["subject"].map(L._parse_subject)
    table["rung"], table["width"] = [p[0] for p in parsed], [p[1] for p in parsed]
    crit = verdicts.Criterion("c", "claim c", "s", "greater", 0.0)
    table = pd.concat([table, pd.DataFrame([{**verdicts.verdict(L.NOTEBOOK, crit, "not judged: x", []), "rung": "",
                                             "width": float("nan")}])], ignore_index=True)
    assert L.rung_summary(table).splitlines() == [
        "- **r, width 0.25** — inconclusive: a.",
        "- **r, width 0.5** — held: a (x2); did not hold: b.",
        "- **r, over all its widths** — held: s.",
        "- **not judged on any rung**: c."]


def test_select_restricts_studies_and_drops_empty_rungs():
    cfg = dict(MLP, dataset="fashion_mnist", model={"depth": 1})
    ladder = L.rungs({"a": {"config": cfg, "widths": [8], "studies": ["distance_taylor", "three_models"]},
                      "b": {"config": cfg, "widths": [8], "studies": ["three_models"]}})
    assert [(r.name, r.studies) for r in L.select(ladder, {"a": 1, "b": 1})] == \
        [("a", ("distance_taylor", "three_models")), ("b", ("three_models",))]
    assert [(r.name, r.studies) for r in L.select(ladder, {"a": 0, "b": 0})] == [("a", ("distance_taylor",))]
    assert [(r.name, r.studies) for r in L.select(ladder, {"a": 0, "b": 2}, ["three_models"])] == \
        [("b", ("three_models",))]
    with pytest.raises(ValueError, match="unknown studies"):
        L.select(ladder, {}, ["taylor"])
