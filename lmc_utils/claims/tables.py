"""Summary tables across repeated runs: mean and standard deviation, and their one text form."""

from __future__ import annotations

from typing import Sequence

import pandas as pd


def mean_std(df: pd.DataFrame, by: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean, sample standard deviation and count of ``values`` per group of ``by``
    (columns ``<value>_mean``, ``<value>_std``, ``n``), groups in order of appearance."""
    g = df.groupby(list(by), sort=False)
    out = pd.DataFrame({"n": g.size()})
    for v in values:
        out[f"{v}_mean"] = g[v].mean()
        out[f"{v}_std"] = g[v].std(ddof=1)
    return out.reset_index()


def mean_sd_text(mean: float, sd: float, fmt: str = ".3f") -> str:
    """``"mean ± sd"`` for a table cell (a missing sd, e.g. of one run, prints as 0)."""
    sd = 0.0 if sd != sd else sd
    return f"{mean:{fmt}} ± {sd:{fmt}}"
