"""Notebook 07's measurements beside what Qu & Horvath (2024) report (Sec. 3.2, 4.3; App. E.2): the
paper's values as text and the measured counterparts from :func:`lmc_utils.studies.same_basin.tables`."""

from __future__ import annotations

from typing import Mapping

import pandas as pd


# What Qu & Horvath (2024) report for VGG16-BN on CIFAR-10 (Sec. 3.2, Fig. 2 C/D; App. E.2), as text
# beside the measured values: (quantity, their value, (kind, method, reset) of 07_barriers or a
# (kind, method) of 07_recovery).
PAPER_REFERENCE = [
    ("test accuracy barrier: spawned, naive, no RESET", "about 0.15", ("spawned", "naive", False)),
    ("test accuracy barrier: spawned, naive, RESET", "below 0.01", ("spawned", "naive", True)),
    ("test accuracy barrier: retrained copy, naive, no RESET", "about 0 (LMC)", ("retrained", "naive", False)),
    ("test accuracy barrier: independent + WM, no RESET", "over 0.75", ("independent", "weight", False)),
    ("exact recovery rate of a planted permutation: retrained copy, WM", "1 (\"almost surely\")", ("retrained", "weight")),
    ("exact recovery rate of a planted permutation: retrained copy, AM", "1 (\"almost surely\")",
     ("retrained", "activation")),
]


def paper_comparison(summary: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The measured counterparts of :data:`PAPER_REFERENCE`, one column per experiment (``summary``
    from :func:`tables`); a quantity an experiment did not measure (no RESET without BatchNorm) is
    left empty."""
    bar, rec = summary["07_barriers"], summary["07_recovery"]
    rows = []
    for quantity, theirs, key in PAPER_REFERENCE:
        row = {"quantity": quantity, "paper (VGG16-BN, CIFAR-10)": theirs}
        for name in dict.fromkeys(bar["experiment"]):
            if len(key) == 3:
                sub = bar[(bar["experiment"] == name) & (bar["kind"] == key[0]) & (bar["method"] == key[1])
                          & (bar["reset"] == key[2])]
                value = sub["accuracy_barrier"]
            else:
                sub = rec[(rec["experiment"] == name) & (rec["kind"] == key[0]) & (rec["method"] == key[1])]
                value = sub["exact_rate"]
            row[name] = float(value.iloc[0]) if len(value) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


# Qu & Horvath (2024, Sec. 4.3): at lr 0.01 the barrier after weight matching between Kaiming-normal
# VGG16-LN solutions on CIFAR-10 was "over 40% larger" than between Kaiming-uniform ones.
PAPER_INIT_RATIO = ("over 1.4", "VGG16-LN, CIFAR-10, lr 0.01")


def init_comparison(summary: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per initialisation experiment and matching method: the mean test accuracy barrier after
    matching with Kaiming-uniform and Kaiming-normal initialisation (``summary["07_init"]`` of
    :func:`lmc_utils.studies.implicit_bias.bias_tables`), their ratio, and the paper's ratio
    (:data:`PAPER_INIT_RATIO`) beside."""
    if "07_init" not in summary:
        return pd.DataFrame(columns=["experiment", "method", "kaiming_uniform", "kaiming_normal", "ratio", "paper"])
    wide = summary["07_init"].pivot_table(index=["experiment", "method"], columns="init", values="accuracy_barrier",
                                          sort=False).reset_index()
    wide["ratio"] = wide["kaiming_normal"] / wide["kaiming_uniform"]
    wide["paper"] = f"{PAPER_INIT_RATIO[0]} ({PAPER_INIT_RATIO[1]}, weight matching)"
    wide.columns.name = None
    return wide[["experiment", "method", "kaiming_uniform", "kaiming_normal", "ratio", "paper"]]
