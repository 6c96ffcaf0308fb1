"""Summary tables across repeated runs: mean, standard deviation and paired t-tests."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from scipy import stats


def mean_std(df: pd.DataFrame, by: Sequence[str], values: Sequence[str]) -> pd.DataFrame:
    """Mean, sample standard deviation and count of ``values`` per group of ``by``
    (columns ``<value>_mean``, ``<value>_std``, ``n``), groups in order of appearance."""
    g = df.groupby(list(by), sort=False)
    out = pd.DataFrame({"n": g.size()})
    for v in values:
        out[f"{v}_mean"] = g[v].mean()
        out[f"{v}_std"] = g[v].std(ddof=1)
    return out.reset_index()


def paired_ttest(df: pd.DataFrame, by: Sequence[str], a: str, b: str, alpha: float = 0.05) -> pd.DataFrame:
    """Per group of ``by``: mean of ``a``, of ``b``, of the difference ``a - b`` ("diff"), its
    standard deviation, the paired t statistic and two-sided p-value (``scipy.stats.ttest_rel``),
    and ``significant`` (p < ``alpha``). Needs at least two pairs per group."""
    rows = []
    for key, t in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        diff = t[a] - t[b]
        if len(t) >= 2 and diff.std(ddof=1) > 0:
            res = stats.ttest_rel(t[a], t[b])
            tstat, p = float(res.statistic), float(res.pvalue)
        else:
            tstat, p = float("nan"), float("nan")
        rows.append({**dict(zip(by, key)), "n": len(t), f"{a}_mean": t[a].mean(), f"{b}_mean": t[b].mean(),
                     "diff_mean": diff.mean(), "diff_std": diff.std(ddof=1), "t": tstat, "p_value": p,
                     "significant": bool(p < alpha) if p == p else False})
    return pd.DataFrame(rows)
