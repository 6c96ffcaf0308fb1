"""The readability checks every saved figure passes (lmc_utils.figures.readability)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lmc_utils.figures import layout, readability  # noqa: E402


def _panel(ax, legend_loc=None):
    x = np.linspace(0, 1, 30)
    ax.plot(x, x, label="rising")
    ax.plot(x, 1 - x, label="falling")
    ax.set_xlabel("interpolation weight")
    ax.set_ylabel("test loss (nats)")
    if legend_loc:
        ax.legend(loc=legend_loc)


def test_a_readable_figure_passes():
    fig, axes = layout.panels(4, 3.2, 2.8)
    for ax in axes:
        _panel(ax)
        ax.set_title("two lines")
    fig.tight_layout()
    layout.legend_below(fig, axes)
    assert readability.problems(fig) == []
    plt.close(fig)


def test_each_problem_is_found():
    fig, axes = plt.subplots(1, 5, figsize=(16, 2.5))
    _panel(axes[0], legend_loc="center")  # over the crossing lines
    axes[0].set_title("claim_vs_width")  # a code name
    _panel(axes[1])
    axes[2].set_title("nothing here")  # empty
    axes[3].plot([0, 1], [0, 1])
    axes[3].set_xticks([])  # no x label, no ticks
    axes[3].set_xlabel("")
    _panel(axes[4])
    found = readability.problems(fig)
    text = " | ".join(found)
    assert "wrap its panels" in text  # 16 x 2.5 inches
    assert "legend of panel 'claim_vs_width' is drawn over" in text
    assert "code name(s) ['claim_vs_width']" in text
    assert "panel 'nothing here' is empty" in text
    assert "has no x-axis label" in text
    with pytest.raises(readability.FigureProblem, match="wrap its panels"):
        readability.check(fig, "bad", strict=True)
    with pytest.warns(readability.FigureWarning):
        readability.check(fig, "bad")
    plt.close(fig)


def test_latex_subscripts_and_words_are_not_code_names():
    fig, ax = plt.subplots(figsize=(4, 3))
    _panel(ax)
    ax.set_title(r"barrier of $\theta_a$ and $\pi_b(\theta_b)$, weight matching, |<u_i^a, u_i^b>|")
    assert readability.problems(fig) == []
    plt.close(fig)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 12, 22])
def test_panel_grids_wrap_to_keep_figures_within_three_to_one(n):
    cols = layout.panel_columns(n, 3.3, 3.0)
    rows = -(-n // cols)
    assert cols * 3.3 <= layout.MAX_ASPECT * rows * 3.0 and cols <= layout.MAX_PANEL_COLUMNS
