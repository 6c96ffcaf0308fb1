"""Verdict logic on synthetic values: each of the three outcomes, both directions, both tests."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lmc_utils import figures, verdicts as V


def _crit(direction="greater", threshold=0.0, test="t"):
    return V.Criterion(name="c", claim="x beats zero", statistic="x per pair", direction=direction,
                       threshold=threshold, test=test)


def test_t_interval_matches_scipy():
    x = np.array([0.3, 0.1, 0.4, 0.2, 0.5, 0.25, 0.35, 0.15])
    est = V.interval(x, "t")
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert est["estimate"] == pytest.approx(x.mean())
    assert (est["ci_low"], est["ci_high"]) == pytest.approx((low, high))
    assert est["n"] == 8


@pytest.mark.parametrize("test", ["t", "bootstrap"])
def test_three_outcomes(test):
    rng = np.random.default_rng(0)
    clearly_above = 1.0 + 0.1 * rng.standard_normal(8)
    clearly_below = -1.0 + 0.1 * rng.standard_normal(8)
    straddling = np.array([-1.0, 1.0, -0.9, 1.1, -1.2, 0.8, -0.7, 1.0])
    c = _crit(test=test)
    assert V.verdict("00", c, "a", clearly_above)["verdict"] == "held"
    assert V.verdict("00", c, "b", clearly_below)["verdict"] == "did not hold"
    assert V.verdict("00", c, "c", straddling)["verdict"] == "inconclusive"
    less = _crit("less", test=test)
    assert V.verdict("00", less, "a", clearly_above)["verdict"] == "did not hold"
    assert V.verdict("00", less, "b", clearly_below)["verdict"] == "held"


def test_single_unit_is_inconclusive_and_constant_values_decide():
    c = _crit(threshold=0.5)
    assert V.verdict("00", c, "a", [3.0])["verdict"] == "inconclusive"
    assert V.verdict("00", c, "a", [0.5, 0.5, 0.5])["verdict"] == "did not hold"  # touches the threshold
    assert V.verdict("00", c, "a", [0.6, 0.6, 0.6])["verdict"] == "held"


def test_repeats_are_averaged_per_unit_and_spread_reported():
    # 4 units x 3 group orders: the interval is over the 4 unit means, not the 12 values.
    values = np.array([[1.0, 1.2, 0.8], [2.0, 2.2, 1.8], [1.5, 1.7, 1.3], [1.0, 1.1, 0.9]])
    est = V.interval(values)
    assert est["n"] == 4 and est["repeats"] == 3
    assert est["estimate"] == pytest.approx(values.mean())
    ref = V.interval(values.mean(axis=1))
    assert est["ci_low"] == pytest.approx(ref["ci_low"])
    assert est["repeat_sd"] == pytest.approx(np.mean(values.std(axis=1, ddof=1)))


def test_repeat_spread_skips_units_with_one_repeat_left():
    # A unit whose other group orders are NaN has no spread: it is left out of repeat_sd (no
    # "Degrees of freedom <= 0" warning) but still counts as a unit of the interval.
    values = np.array([[1.0, np.nan], [2.0, 2.4], [3.0, 3.2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = V.interval(values)
    assert est["n"] == 3
    assert est["repeat_sd"] == pytest.approx(np.mean([np.std([2.0, 2.4], ddof=1), np.std([3.0, 3.2], ddof=1)]))
    assert np.isnan(V.interval(np.array([[1.0, np.nan], [2.0, np.nan]]))["repeat_sd"])


def test_bootstrap_is_seeded():
    x = np.linspace(0, 1, 9)
    a, b = V.interval(x, "bootstrap"), V.interval(x, "bootstrap")
    assert (a["ci_low"], a["ci_high"]) == (b["ci_low"], b["ci_high"]) and a["ci_low"] < 0.5 < a["ci_high"]


def test_bad_criteria_are_refused():
    with pytest.raises(V.CriteriaError, match="direction"):
        _crit(direction="up")
    with pytest.raises(V.CriteriaError, match="missing keys"):
        V.parse_criteria({"c": {"claim": "x", "statistic": "y", "direction": "less"}}, "nb")
    with pytest.raises(V.CriteriaError, match="threshold"):
        V.parse_criteria({"c": {"claim": "x", "statistic": "y", "direction": "less", "threshold": "big"}})


def test_every_notebook_has_a_criteria_section():
    from lmc_utils.run.runner import discover

    for source in discover():
        V.load_criteria(source.stem)  # raises if absent or malformed


def test_every_claim_has_its_paper_value():
    """Each declared claim says where it comes from and what the paper printed (or, where the work
    prints no number, why); the sanity checks (true by construction) say why they hold."""
    from lmc_utils.run.runner import discover

    sanity = set()
    for source in discover():
        for name, c in V.load_criteria(source.stem).items():
            assert c.paper is not None, f"{source.stem}: {name} has no paper block"
            assert c.paper.work in V.WORKS and c.paper.place and c.paper.setting, name
            assert c.paper.value or c.paper.note, name
            assert c.source == c.paper.citation and c.source, name
            if c.sanity:
                sanity.add(name)
    assert sanity == {"permutation_keeps_singular_values", "renorm_restores_scale"}


def test_paper_value_rejects_what_a_reader_could_not_use():
    base = {"claim": "x", "statistic": "y", "direction": "less", "threshold": 0.0}
    with pytest.raises(V.CriteriaError, match="work must be one of"):
        V.parse_criteria({"c": {**base, "paper": {"work": "somebody2023", "place": "Table 1", "value": "3%"}}}, "nb")
    with pytest.raises(V.CriteriaError, match="note must say why"):
        V.parse_criteria({"c": {**base, "paper": {"work": "talk", "place": "slide 3"}}}, "nb")
    with pytest.raises(V.CriteriaError, match="unknown keys"):
        V.parse_criteria({"c": {**base, "paper": {"work": "talk", "place": "slide 3", "value": "1", "page": 2}}}, "nb")
    c = V.parse_criteria({"c": {**base, "paper": {"work": "qu_horvath2024", "place": "§4.1, Table 1",
                                                 "value": "84.32%"}}})["c"]
    assert c.source == "Qu & Horvath 2024, §4.1, Table 1" and c.paper.value == "84.32%"


def test_render_and_save(tmp_path, monkeypatch):
    monkeypatch.setenv("LMC_FIGURES_DIR", str(tmp_path))
    c = _crit()
    frame = V.table([V.verdict("01_x", c, "mlp", [0.9, 1.1, 1.0, 1.2]),
                     V.verdict("01_x", c, "vgg", [-1.0, 1.0, -0.5, 0.5])])
    text = V.render(frame, {"c": c})
    assert "**held**" in text and "**inconclusive**" in text and "1 held, 0 did not hold, 1 inconclusive" in text
    figures.save_verdicts(frame, "01_x", profile="cpu")
    back = pd.read_csv(tmp_path / "cpu" / "01_verdicts.csv")
    assert list(back.columns[:len(V.COLUMNS)]) == V.COLUMNS
    assert list(back["verdict"]) == ["held", "inconclusive"]
    assert (tmp_path / "cpu" / "01_verdicts.md").read_text().startswith("| notebook | claim |")
    with pytest.raises(V.CriteriaError):
        V.check_declared(frame, {"other": c})
    assert V.counts(frame) == {"held": 1, "did not hold": 0, "inconclusive": 1}
    assert math.isinf(V.interval([1.0])["ci_high"])


def test_publish_verdicts_checks_saves_and_renders(tmp_path, monkeypatch):
    monkeypatch.setenv("LMC_FIGURES_DIR", str(tmp_path))
    c = _crit()
    frame = V.table([V.verdict("03_x", c, "mlp", [0.9, 1.1, 1.0, 1.2])])
    text = figures.publish_verdicts(frame, {"c": c}, "03_x", profile="cpu")
    assert "**held**" in text and (tmp_path / "cpu" / "03_verdicts.csv").exists()
    with pytest.raises(V.CriteriaError, match="never judged"):
        figures.publish_verdicts(frame, {"c": c, "other": c}, "03_x", profile="cpu")


def test_pooled_interval_recovers_each_strata_standard_error():
    """The pooled interval from the strata's t intervals equals the stratified (equal-weight)
    interval computed from the raw units; a stratum of one unit makes it infinite; a bootstrap
    criterion cannot be pooled from its rows."""
    import pandas as pd
    from scipy import stats as st

    rng = np.random.default_rng(5)
    groups = [rng.normal(m, s, n) for m, s, n in [(0.1, 0.2, 6), (0.3, 0.1, 3), (0.2, 0.5, 9)]]
    rows = pd.DataFrame([V.interval(g) for g in groups])
    got = V.pooled_interval(rows)
    var = np.array([g.var(ddof=1) / len(g) for g in groups])
    df = var.sum() ** 2 / np.sum(var ** 2 / (np.array([6, 3, 9]) - 1))
    half = st.t.ppf(0.975, df) * np.sqrt(var.sum()) / 3
    mean = np.mean([g.mean() for g in groups])
    assert got["estimate"] == pytest.approx(mean) and got["n"] == 18 and got["strata"] == 3
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((mean - half, mean + half))
    one = pd.DataFrame([V.interval(groups[0]), V.interval([0.5])])
    assert V.pooled_interval(one)["ci_high"] == float("inf")
    assert V.pooled_interval(pd.DataFrame(columns=["estimate", "ci_low", "ci_high", "n"]))["n"] == 0
    boot = V.Criterion("x", "c", "s", "greater", 0.0, test="bootstrap")
    with pytest.raises(V.CriteriaError, match="needs test 't'"):
        V.pooled_verdict(rows.assign(claim="x"), boot, "r / mean over 3 widths")
    ok = V.pooled_verdict(rows.assign(claim="x", repeats=1, repeat_sd=np.nan),
                          V.Criterion("x", "c", "s", "greater", 0.0), "r / mean over 3 widths")
    assert ok["verdict"] == V.decide(mean - half, mean + half, 0.0, "greater") and ok["strata"] == 3


def test_a_claims_status_over_its_settings_and_the_conclusion_in_words():
    c = _crit()
    rows = lambda *outcomes, regime="at floor": pd.DataFrame(  # noqa: E731
        {"claim": "c", "subject": [f"mlp / s{i}" for i in range(len(outcomes))], "verdict": list(outcomes),
         "estimate": 1.0, "ci_low": 0.5, "ci_high": 1.5, "n": 8, "regime": regime})
    assert V.claim_status(rows("held", "held")) == "held"
    assert V.claim_status(rows("held", "inconclusive")) == "held where conclusive"
    assert V.claim_status(rows("held", "did not hold")) == "depends on the setting"
    assert V.claim_status(rows("held", regime="below floor")) == "only on models below floor"
    assert V.claim_status(rows("held").assign(n=1)) == "only on models below floor"  # one unit judges nothing
    text = V.conclusion(rows("held", "did not hold"), {"c": c}, {"mlp": "an MLP"})
    assert f"- **Depends on the setting**: {c.claim} (held: an MLP / s0: 1 [0.5, 1.5]; did not hold: an MLP / s1" in text
    sanity = V.Criterion(**{**c.__dict__, "sanity": "true by construction"})
    assert "Sanity checks (true by construction, not counted)" in V.conclusion(rows("held"), {"c": sanity})
    assert V.conclusion(rows("held").drop(columns="regime")) == ""
