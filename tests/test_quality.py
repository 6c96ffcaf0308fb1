"""Accuracy floors: every experiment config declares one (or why it is poor by design), the declaration
stays out of the training config, and every verdict row carries its models' quality, below-floor rows
flagged and counted apart."""

import math

import pandas as pd
import pytest
import yaml

from lmc_utils.claims import quality as Q
from lmc_utils.claims import report
from lmc_utils.claims import verdicts as V
from lmc_utils.core.paths import params_dir


@pytest.fixture(autouse=True)
def fresh_ledger():
    Q.clear()
    yield
    Q.clear()


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_every_config_declares_a_floor_and_its_reference(profile):
    sections = yaml.safe_load((params_dir() / f"{profile}.yaml").read_text())
    seen = 0
    for notebook, section in sections.items():
        if notebook == "labels":
            continue
        for path, cfg in Q.train_configs(section):
            seen += 1
            where = f"params/{profile}.yaml: {notebook}.{path}"
            assert Q.QUALITY_KEY in cfg, f"{where} declares no quality (floor and reference, or why it is poor)"
            q = Q.Quality.parse(cfg[Q.QUALITY_KEY], where)
            assert q.reference.strip(), where
            if isinstance(q.floor, dict):  # a floor per arm: every arm of the sweep has one, or is poor
                widths = _widths(section, path)
                for w in widths:
                    arm = f"width {w}"
                    assert q.floor_of(arm) is not None or q.poor_reason(arm) is not None, f"{where}: {arm}"
        robustness = (section or {}).get("robustness") if isinstance(section, dict) else None
        if robustness is not None:
            assert Q.QUALITY_KEY in robustness, f"params/{profile}.yaml: {notebook}.robustness declares no quality"
    assert seen > 10


def _widths(section, path):
    """The widths a width-swept config is trained at (its notebook's ``widths`` / ``redundancy_widths``)."""
    name = path.split(".")[-1]
    if name == "config":  # a rung of notebook 10
        return section["rungs"][path.split(".")[1]]["widths"]
    if name.startswith("redundancy_"):
        return section["redundancy_widths"][name.removeprefix("redundancy_")]
    if path.startswith("deep."):
        return section["deep"]["widths"]
    if name == "model":
        return section["widths"]
    widths = section.get("widths", {})
    return widths.get(name, []) if isinstance(widths, dict) else widths


def test_the_declaration_is_not_a_training_field():
    values = {"experiments": {"a": {"dataset": "mnist", "arch": "mlp", "quality": {"floor": 0.9, "reference": "r"}}},
              "rungs": {"r1": {"config": {"dataset": "mnist", "arch": "mlp",
                                          "quality": {"floor": {"width 8": 0.8}, "reference": "t",
                                                      "poor": {"width 2": "too narrow"}}}}},
              "n": 3}
    out = Q.strip(values)
    assert out == {"experiments": {"a": {"dataset": "mnist", "arch": "mlp"}},
                   "rungs": {"r1": {"config": {"dataset": "mnist", "arch": "mlp"}}}, "n": 3}
    assert Q.declared("a").floor == 0.9
    assert Q.declared("r1").floor_of("width 8") == 0.8 and Q.declared("r1").floor_of("width 2") is None
    assert Q.declared("r1").poor_reason("width 2") == "too narrow"


@pytest.mark.parametrize("spec, message", [
    ({"floor": 1.5, "reference": "r"}, "in \\(0, 1\\]"),
    ({"reference": "r"}, "declare a floor"),
    ({"floor": 0.9}, "reference"),
    ({"floor": 0.9, "reference": "r", "flor": 1}, "unknown keys"),
    ("0.9", "must be a mapping"),
])
def test_a_bad_declaration_is_a_clear_error(spec, message):
    with pytest.raises(Q.QualityError, match=message):
        Q.strip({"experiments": {"a": {"dataset": "mnist", "arch": "mlp", "quality": spec}}}, "params/x.yaml")


def _declare():
    Q.strip({"mlp": {"dataset": "mnist", "arch": "mlp", "quality": {"floor": 0.9, "reference": "r"}},
             "sweep": {"dataset": "mnist", "arch": "mlp",
                       "quality": {"floor": {"width 8": 0.8, "width 64": 0.95}, "reference": "talk",
                                   "poor": {"width 2": "too narrow to learn"}}},
             "sgd": {"dataset": "mnist", "arch": "mlp",
                     "quality": {"floor": 0.85, "reference": "r", "poor": {"wd 0.5": "the degraded arm"}}}})


def test_rows_are_tagged_with_the_models_behind_them():
    _declare()
    Q.record("mlp", "", {"a": 0.95, "b": 0.93})
    Q.record("mlp", "spawned", {"c": 0.70})
    Q.record("sweep", "width 2", {"d": 0.2})
    Q.record("sweep", "width 8", {"e": 0.78, "f": 0.80})
    Q.record("sweep", "width 64", {"g": 0.97})
    Q.record("sgd", "wd 0", {"h": 0.9})
    Q.record("sgd", "wd 0.5", {"i": 0.3})
    at = Q.assess("mlp / weight")  # no arm named: the main arm
    assert at["regime"] == "at floor" and at["endpoint_accuracy"] == pytest.approx(0.94) and at["floor"] == 0.9
    assert Q.assess("mlp / spawned")["regime"] == "below floor"
    assert Q.assess("sweep / width 64")["regime"] == "at floor"
    low = Q.assess("sweep / width 8 vs width 64")  # both arms; the tightest floor is the one missed
    assert low["regime"] == "below floor" and low["floor"] == 0.8 and "width 8: 79.0% < floor 80.0%" in low["quality_note"]
    assert Q.assess("sweep / width 2")["regime"] == "poor by design"
    assert Q.assess("sweep / width 80")["regime"] == "below floor"  # no arm named exactly: every arm
    assert Q.assess("sgd: wd 0 - wd 0.5, weight")["regime"] == "at floor"  # the degraded arm is exempt
    assert Q.assess("nothing recorded")["regime"] in Q.REGIMES


def test_a_config_without_a_floor_is_counted_apart():
    Q.record("custom", "", {"a": 0.99})
    assert Q.assess("custom / weight")["regime"] == "no floor declared"


def test_nested_experiment_names_take_their_parents_floors():
    Q.strip({"rungs": {"vgg": {"config": {"dataset": "mnist", "arch": "vgg",
                                          "quality": {"floor": {"width 0.125": 0.9}, "reference": "r"}}}}})
    Q.record("vgg / width 0.125", "spawned", {"a": 0.91})
    assert Q.assess("vgg / width 0.125 / spawned")["regime"] == "at floor"
    Q.record("vgg", "width 0.125", {"b": 0.92, "c": 0.93})  # the ladder's record of the width ...
    Q.record("vgg / width 0.125", "", {"b": 0.92})  # ... and a study's record of some of the same models
    table = Q.summary()
    assert list(zip(table["experiment"], table["arm"], table["models"])) == \
        [("vgg", "width 0.125 / spawned", 1), ("vgg", "width 0.125", 2)]


def _rows():
    c = V.Criterion(name="c", claim="x", statistic="s", direction="greater", threshold=0.0)
    return [V.verdict("01_x", c, "mlp / weight", [1.0, 1.1, 0.9]),
            V.verdict("01_x", c, "mlp / spawned", [1.0, 1.2, 0.8]),
            V.verdict("01_x", c, "not measured in this run", [])], c


def test_below_floor_rows_are_flagged_and_counted_apart(tmp_path):
    _declare()
    Q.record("mlp", "", {"a": 0.95})
    Q.record("mlp", "spawned", {"c": 0.70})
    rows, c = _rows()
    frame = Q.attach(V.table(rows))
    assert list(frame["regime"]) == ["at floor", "below floor", "not measured"]
    text = V.render(frame, {"c": c})
    assert "does not test the paper's claim" in text
    assert "Tally: 1 held, 0 did not hold, 1 inconclusive." in text
    assert "Counted apart, on models below their accuracy floor" in text and "1 held" in text.split("Counted apart")[1]
    closing = V.conclusion(frame, {"c": c})
    assert f"- **Held**: {c.claim}." in closing  # one claim, once, over its settings at floor
    assert "Counted apart: 1 on models below their floor" in closing
    missed = frame.assign(verdict=["did not hold", "held", "inconclusive"])
    closing = V.conclusion(missed, {"c": c}, {"mlp": "an MLP"})
    assert f"- **Did not hold**: {c.claim} (an MLP / weight: " in closing and "not artefacts of undertrained" in closing
    frame.to_csv(tmp_path / "01_verdicts.csv", index=False)
    md = report.claims_markdown(report.gather(tmp_path), "cpu")
    assert "counted apart, 1 on models below their accuracy floor" in md
    assert "**below floor**" in md


def test_summary_lists_every_arm():
    _declare()
    Q.record("sweep", "width 8", {"e": 0.78})
    Q.record("sweep", "width 2", {"d": 0.2})
    table = Q.summary()
    assert list(table["status"]) == ["below floor", "poor by design"]
    assert math.isnan(table["floor"].iloc[1])


def test_a_verdict_table_without_quality_columns_still_renders():
    rows, c = _rows()
    frame = V.table(rows)
    assert "Tally:" in V.render(frame, {"c": c})
    assert not V.below_floor(frame).any()
    assert isinstance(report.split_tally(pd.DataFrame(rows)), str)


def test_claims_md_lists_the_models_below_floor(tmp_path):
    _declare()
    Q.record("mlp", "", {"a": 0.95})
    Q.record("sweep", "width 8", {"e": 0.70})
    Q.summary().to_csv(tmp_path / "03_models.csv", index=False)
    rows, _ = _rows()
    Q.attach(V.table(rows)).to_csv(tmp_path / "03_verdicts.csv", index=False)
    models = report.gather_models(tmp_path)
    table = report.models_markdown(models)
    assert "| 03 | sweep / width 8 | 1 | 70.0% (70.0%) | 80.0% | below floor |" in table and "| 03 | mlp |" in table
    assert Q.below_floor_lines(tmp_path) == ["03 sweep / width 8: 70.0% test accuracy < floor 80.0% (1 models)"]


def test_rows_on_a_method_stopped_by_its_budget_are_counted_apart(tmp_path):
    """STE runs that hit their step cap (or had no patience rule) make the STE claims' rows budget-bound:
    kept, tagged, counted apart like rows below floor; other claims are untouched."""
    from lmc_utils.studies import quality as SQ

    _declare()
    Q.record("mlp", "", {"a": 0.95})
    c = V.Criterion(name="ste_merge_worse", claim="x", statistic="s", direction="greater", threshold=0.0)
    other = V.Criterion(name="wm_am_agree", claim="y", statistic="s", direction="greater", threshold=0.0)
    rows = [V.verdict("03_x", c, "mlp / STE vs WM", [1.0, 1.1, 0.9]),
            V.verdict("03_x", other, "mlp / WM vs AM", [1.0, 1.1, 0.9])]
    assert SQ.ste_budget([False, False], cap=15000) == ""  # every run converged: nothing flagged
    assert list(Q.attach(V.table(rows))["regime"]) == ["at floor", "at floor"]
    why = SQ.ste_budget([True, False, True], cap=50)
    assert why.startswith("2 of 3 STE runs stopped at their step cap (50 steps)")
    frame = Q.attach(V.table(rows))
    assert list(frame["regime"]) == ["budget-bound", "at floor"]
    assert why in frame["quality_note"].iloc[0]
    text = V.render(frame, {"ste_merge_worse": c, "wm_am_agree": other})
    assert "Counted apart, on a method stopped by its budget" in text
    closing = V.conclusion(frame, {"ste_merge_worse": c, "wm_am_agree": other})
    assert "Counted apart: 1 on a method stopped by its budget" in closing
    assert "**Judged only with a method stopped by its step budget" in closing
    frame.to_csv(tmp_path / "03_verdicts.csv", index=False)
    md = report.claims_markdown(report.gather(tmp_path), "cpu")
    assert "1 on a method stopped by its budget" in md and "**budget-bound**" in md
    Q.clear()
    assert "fixed 60 steps" in SQ.ste_budget([], cap=60, fixed_length=True)
    _declare()
    Q.record("mlp", "", {"a": 0.95})
    assert list(Q.attach(V.table(rows))["regime"]) == ["budget-bound", "at floor"]
