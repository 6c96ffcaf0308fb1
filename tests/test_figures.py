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
