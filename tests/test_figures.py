"""Figure and table writers: both formats, atomic, reproducible bytes."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lmc_utils import figures  # noqa: E402


def test_save_figure_and_table(tmp_path):
    figures.setup("unit")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    paths = figures.save_figure(fig, "line")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    first = [p.read_bytes() for p in paths]
    figures.save_figure(fig, "line")
    assert [p.read_bytes() for p in paths] == first  # no timestamps: identical re-runs
    df = pd.DataFrame({"method": ["naive", "weight"], "loss_barrier": [1.23456, 0.01]})
    csv, md = figures.save_table(df, "table")
    assert pd.read_csv(csv).equals(df)
    assert md.read_text().splitlines()[0] == "| method | loss_barrier |"
    assert "1.235" in md.read_text()
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]


def test_writer_needs_a_profile(monkeypatch):
    monkeypatch.setitem(figures._state, "profile", None)
    with pytest.raises(RuntimeError, match="setup"):
        figures.save_table(pd.DataFrame({"a": [1]}), "t")


def test_mean_std_and_its_text():
    from lmc_utils import tables

    df = pd.DataFrame({"kind": ["x"] * 4 + ["y"] * 4, "actual": [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0],
                       "estimate": [0.0, 1.1, 1.9, 3.0, 1.01, 1.98, 3.02, 3.99]})
    s = tables.mean_std(df, ["kind"], ["actual"])
    assert list(s["n"]) == [4, 4] and s["actual_mean"][0] == pytest.approx(2.5)
    assert s["actual_std"][0] == pytest.approx(df["actual"][:4].std())
    assert tables.mean_sd_text(0.5, 0.25) == "0.500 ± 0.250" and tables.mean_sd_text(1.0, float("nan"), ".1f") == "1.0 ± 0.0"


def test_atomic_write_leaves_the_target_intact_on_failure(tmp_path):
    from lmc_utils.atomic import atomic_path, write_text

    target = write_text(tmp_path / "table.md", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_markdown_tables_print_rounding_zeros_as_zero():
    import pandas as pd

    from lmc_utils.figures import to_markdown

    md = to_markdown(pd.DataFrame({"barrier": [5.551e-17, 0.25, 3.7e-5], "n": [1, 2, 3]}))
    assert "e-17" not in md and "| 0 | 1 |" in md
    assert "3.7e-05" in md  # a small but real value keeps its digits


def test_markdown_cells_escape_pipes():
    import pandas as pd

    from lmc_utils.figures import to_markdown

    md = to_markdown(pd.DataFrame({"statistic": ["|a - b| / |a|"], "x": [1.0]}))
    assert md.splitlines()[2] == "| \\|a - b\\| / \\|a\\| | 1 |"
