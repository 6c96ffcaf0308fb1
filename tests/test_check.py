"""--check: a changed verdict fails, float noise passes, a move beyond the interval is flagged."""

import shutil

import pandas as pd
import pytest

from lmc_utils import check
from lmc_utils.run import runner as run
from lmc_utils.paths import figures_dir

ROWS = [
    # notebook, claim, subject, statistic, estimate, ci_low, ci_high, n, threshold, verdict
    ("00_rebasin_basics", "wm_removes_barrier", "mlp_mnist", "barrier", 0.02, 0.01, 0.03, 8, 0.1, "held"),
    ("00_rebasin_basics", "wm_removes_barrier", "vgg11_bn", "barrier", 0.30, 0.20, 0.40, 4, 0.1, "did not hold"),
    ("00_rebasin_basics", "reset_needed", "vgg11_bn", "gain", 0.05, -0.01, 0.11, 4, 0.0, "inconclusive"),
]
COLUMNS = ["notebook", "claim", "subject", "statistic", "estimate", "ci_low", "ci_high", "n", "threshold", "verdict"]


def _folder(path, rows=ROWS, other=None):
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path / "00_verdicts.csv", index=False)
    other = other if other is not None else pd.DataFrame({"method": ["naive", "weight"], "barrier": [1.25, 0.02]})
    other.to_csv(path / "00_barriers.csv", index=False)
    return path


def _with(rows, subject, **change):
    out = []
    for r in rows:
        r = dict(zip(COLUMNS, r))
        if r["subject"] == subject:
            r.update(change)
        out.append(tuple(r.values()))
    return out


def test_identical_folders_pass(tmp_path):
    a, b = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    report = check.compare(a, b)
    assert not report.failed and not report.moved and report.rows_compared == 3
    assert "3 of 3 verdict(s) unchanged" in check.render(report) and "result: passed" in check.render(report)


def test_a_tiny_numeric_change_passes_and_is_summarised(tmp_path):
    a = _folder(tmp_path / "a")
    rows = _with(ROWS, "mlp_mnist", estimate=0.02 + 1e-9, ci_low=0.01 + 2e-9)
    b = _folder(tmp_path / "b", rows, pd.DataFrame({"method": ["naive", "weight"], "barrier": [1.25 + 3e-7, 0.02]}))
    report = check.compare(a, b)
    assert not report.failed and not report.moved
    [drift] = report.drift
    assert drift.name == "00_barriers.csv" and drift.changed == 1 and drift.cells == 2
    assert drift.max_abs == pytest.approx(3e-7)
    text = check.render(report)
    assert "1/2 numbers differ" in text and "result: passed" in text


def test_a_flipped_verdict_fails(tmp_path):
    a = _folder(tmp_path / "a")
    b = _folder(tmp_path / "b", _with(ROWS, "mlp_mnist", estimate=0.12, ci_low=0.11, ci_high=0.13,
                                      verdict="did not hold"))
    report = check.compare(a, b)
    assert report.failed
    [changed] = report.changed
    assert changed["key"] == ("00_rebasin_basics", "wm_removes_barrier", "mlp_mnist")
    assert (changed["old"], changed["new"]) == ("held", "did not hold")
    text = check.render(report)
    assert "FAIL  1 verdict(s) changed" in text
    assert "00_rebasin_basics / wm_removes_barrier / mlp_mnist: held -> did not hold" in text
    assert "result: FAILED" in text


def test_an_estimate_moved_beyond_its_interval_width_is_flagged_not_failed(tmp_path):
    a = _folder(tmp_path / "a")
    # vgg11_bn's committed interval is [0.2, 0.4] (width 0.2); 0.30 -> 0.55 moves 0.25, same verdict
    b = _folder(tmp_path / "b", _with(ROWS, "vgg11_bn", estimate=0.55, ci_low=0.45, ci_high=0.65))
    report = check.compare(a, b)
    assert not report.failed
    moved = report.moved  # both vgg11_bn rows moved (reset_needed: 0.05 -> 0.55, width 0.12)
    assert [r["key"][1:] for r in moved] == [("wm_removes_barrier", "vgg11_bn"), ("reset_needed", "vgg11_bn")]
    first = moved[0]
    assert first["shift"] == pytest.approx(0.25) and first["width"] == pytest.approx(0.2)
    text = check.render(report)
    assert "FLAG" in text and "result: passed (with flagged estimates)" in text
    # a move within the width is not flagged
    c = _folder(tmp_path / "c", _with(ROWS, "mlp_mnist", estimate=0.035))
    assert not check.compare(a, c).moved


def test_missing_verdict_tables_and_rows_are_reported(tmp_path):
    a = _folder(tmp_path / "a")
    b = _folder(tmp_path / "b", ROWS[:2])
    report = check.compare(a, b)
    assert report.failed and [r["key"][2] for r in report.missing_rows] == ["vgg11_bn"]
    assert report.missing_rows[0]["missing_from"] == "fresh"
    (b / "00_verdicts.csv").unlink()
    report = check.compare(a, b)
    assert report.failed and report.missing_tables == [{"table": "00_verdicts.csv", "missing_from": "fresh"}]
    assert "00_verdicts.csv missing from the fresh folder" in check.render(report)
    # a notebook asked for that has a verdict table on neither side
    report = check.compare(tmp_path / "a", tmp_path / "b", notebooks=["01_distance_taylor"])
    assert report.missing_tables == [{"table": "01_verdicts.csv", "missing_from": "both"}]


def test_restricting_to_notebooks_ignores_the_others(tmp_path):
    a = _folder(tmp_path / "a")
    b = _folder(tmp_path / "b", _with(ROWS, "mlp_mnist", verdict="inconclusive"))
    pd.DataFrame({"x": [1]}).to_csv(a / "01_other.csv", index=False)
    pd.DataFrame(ROWS, columns=COLUMNS).assign(notebook="01_distance_taylor").to_csv(a / "01_verdicts.csv",
                                                                                     index=False)
    shutil.copy(a / "01_verdicts.csv", b / "01_verdicts.csv")
    assert check.compare(a, b, notebooks=["01"]).failed is False
    assert check.compare(a, b, notebooks=["00_rebasin_basics"]).failed is True


def test_table_shape_changes_and_one_sided_tables_are_informational(tmp_path):
    a = _folder(tmp_path / "a")
    b = _folder(tmp_path / "b", other=pd.DataFrame({"method": ["naive"], "barrier": [1.25]}))
    pd.DataFrame({"x": [1]}).to_csv(b / "00_new.csv", index=False)
    report = check.compare(a, b)
    assert not report.failed and report.only_fresh == ["00_new.csv"]
    assert report.drift[0].note.startswith("shape (2, 2) -> (1, 2)")


def test_run_check_exit_codes(monkeypatch, tmp_path, capsys):
    """`run --check` regenerates into build/check/ and exits 1 only when a verdict changed."""
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    _folder(figures_dir("smoke"))  # the "committed" results
    fresh_rows = {"rows": ROWS}

    def execute(source, profile, params, out):
        _folder(figures_dir(profile), fresh_rows["rows"])  # the kernel writes under LMC_FIGURES_DIR
        return 0.1

    monkeypatch.setattr(run, "execute", execute)
    assert run.main(["--profile", "smoke", "--check", "00"]) == 0
    out = capsys.readouterr().out
    assert "result: passed" in out and str(tmp_path / "build" / "check") in out
    fresh_rows["rows"] = _with(ROWS, "vgg11_bn", verdict="held", estimate=0.05, ci_low=0.01, ci_high=0.09)
    assert run.main(["--profile", "smoke", "--check", "00"]) == 1
    out = capsys.readouterr().out
    assert "did not hold -> held" in out
    # the committed folder was never written to
    assert pd.read_csv(figures_dir("smoke") / "00_verdicts.csv")["verdict"].tolist() == [r[-1] for r in ROWS]
    assert not (figures_dir("smoke") / "provenance.json").exists()


def test_a_borderline_flip_is_diagnosed_with_the_units_that_would_decide_it():
    # intervals of width 2 * t(15) * 0.01: se 0.01, mean estimate 0.015 -> z 1.5
    half = 2.131449545559323 * 0.01
    d = check.diagnose("inconclusive", "held", (0.005, 0.025), ((0.005 - half, 0.005 + half), (0.025 - half, 0.025 + half)),
                       threshold=0.0, n=16)
    assert d["kind"] == "borderline"
    assert d["se"] == pytest.approx(0.01)
    assert d["z"] == pytest.approx(1.5)
    assert d["units_needed"] == pytest.approx(16 * (1.959964 + 0.841621) ** 2 / 1.5 ** 2, rel=1e-5)
    on_threshold = check.diagnose("inconclusive", "did not hold", (-0.01, 0.01), ((-0.03, 0.01), (-0.01, 0.03)), 0.0, 8)
    assert on_threshold["z"] == 0 and on_threshold["units_needed"] == float("inf")
    assert check.diagnose("held", "did not hold", (0.2, -0.2), ((0.1, 0.3), (-0.3, -0.1)), 0.0, 8)["kind"] == "contradiction"
    missing = check.diagnose("held", "inconclusive", (0.2, 0.1), ((0.1, 0.3), (float("nan"), 0.2)), 0.0, 8)
    assert missing["kind"] == "borderline" and missing["units_needed"] != missing["units_needed"]  # NaN


def test_a_flipped_verdict_is_explained_in_the_report(tmp_path):
    old = _folder(tmp_path / "old")
    new = _folder(tmp_path / "new", rows=_with(ROWS, "mlp_mnist", estimate=0.08, ci_low=0.05, ci_high=0.11,
                                                verdict="inconclusive"))
    text = check.render(check.compare(old, new))
    assert "held -> inconclusive" in text
    assert "borderline" in text and "units would give a definite verdict" in text
