"""Notebook 00's study: verdicts follow the per-pair barriers (synthetic results), and the protocol
runs end to end on tiny Moons models."""

import numpy as np
import pandas as pd
import pytest

from lmc_utils import data, verdicts, zoo
from lmc_utils.studies import rebasin_basics

CRITERIA = verdicts.load_criteria("00_rebasin_basics")


def _result(naive: float, weight: float, activation: float, weight_no_reset: float, n_pairs: int = 8,
            n_orders: int = 3, endpoint_loss: float = 0.1, bn: bool = True, sd: float = 0.01) -> rebasin_basics.Result:
    """Synthetic per-pair test barriers around the given means (seeded noise of size ``sd``)."""
    rng = np.random.default_rng(0)
    rows = []
    for pair in range(n_pairs):
        for reset in ([False, True] if bn else [False]):
            means = {"naive": naive if reset or not bn else 2 * naive,
                     "weight": weight if reset or not bn else weight_no_reset,
                     "activation": activation if reset or not bn else weight_no_reset}
            for method, mean in means.items():
                for order in range(n_orders if method == "weight" else 1):
                    rows.append({"experiment": "exp", "pair": pair, "method": method, "order": order, "reset": reset,
                                 "split": "test", "loss_barrier": max(mean + sd * rng.standard_normal(), 0.0),
                                 "accuracy_barrier": 0.0, "loss_a": endpoint_loss, "loss_b": endpoint_loss,
                                 "accuracy_a": 0.9, "accuracy_b": 0.9})
    return rebasin_basics.Result(pd.DataFrame(rows), pd.DataFrame(), {"exp": bn})


def _verdicts(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(r.claim, r.subject): r.verdict for r in frame.itertuples()}


def test_verdicts_hold_where_matching_and_reset_remove_the_barrier():
    frame = rebasin_basics.verdicts(_result(naive=1.0, weight=0.1, activation=0.2, weight_no_reset=0.9), CRITERIA)
    verdicts.check_declared(frame, CRITERIA)
    got = _verdicts(frame)
    assert got == {("naive_barrier", "exp / naive + RESET"): "held",  # 1.0 / 0.1 = 10 > 1
                   ("matching_removes_barrier", "exp / weight + RESET"): "held",  # 0.1 < 0.5
                   ("matching_removes_barrier", "exp / activation + RESET"): "held",
                   ("reset_needed", "exp / weight"): "held",  # 0.1 / 0.9 < 0.5
                   ("reset_needed", "exp / activation"): "held"}
    weight = frame[frame["subject"] == "exp / weight + RESET"].iloc[0]
    assert weight["n"] == 8 and weight["repeats"] == 3 and weight["estimate"] == pytest.approx(0.1, abs=0.01)


def test_verdicts_do_not_hold_where_the_numbers_say_so():
    # a barrier smaller than the endpoint loss, matching that removes a fifth, RESET that changes nothing
    frame = rebasin_basics.verdicts(_result(naive=0.05, weight=0.04, activation=0.04, weight_no_reset=0.04,
                                            sd=0.001), CRITERIA)
    got = _verdicts(frame)
    assert got[("naive_barrier", "exp / naive + RESET")] == "did not hold"
    assert got[("matching_removes_barrier", "exp / weight + RESET")] == "did not hold"
    assert got[("reset_needed", "exp / activation")] == "did not hold"


def test_noisy_ratio_near_the_threshold_is_inconclusive_and_zero_barriers_are_left_out():
    frame = rebasin_basics.verdicts(_result(naive=1.0, weight=0.5, activation=0.5, weight_no_reset=1.0, sd=0.3,
                                            n_pairs=3, bn=False), CRITERIA)
    got = _verdicts(frame)
    assert got[("matching_removes_barrier", "exp / weight")] == "inconclusive"
    # no BatchNorm experiment: the RESET claim is reported with no units
    row = frame[frame["claim"] == "reset_needed"].iloc[0]
    assert row["n"] == 0 and row["verdict"] == "inconclusive"
    # a pair with no naive barrier has nothing to remove: it is left out of n
    res = _result(naive=1.0, weight=0.1, activation=0.1, weight_no_reset=1.0, bn=False, sd=0.0)
    b = res.barriers
    b.loc[(b["pair"] == 0) & (b["method"] == "naive"), "loss_barrier"] = 0.0
    frame = rebasin_basics.verdicts(res, CRITERIA)
    assert frame.set_index("subject").loc["exp / weight", "n"] == 7


def test_protocol_on_moons_pairs():
    base = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2}, optimizer="adam", lr=0.01,
                           batch_size=64, epochs=3)
    splits = {"moons": {"train": data.load("moons", "train"), "test": data.load("moons", "test")}}
    match = {"moons": data.load("moons", "train")}
    res = rebasin_basics.run({"moons": base}, 2, splits, match, n_orders=2, n_points=3, device="cpu", progress=False)
    b = res.barriers
    # pair 0 on both splits, pair 1 on the verdict split only; WM once per group order
    assert set(b.loc[b["pair"] == 0, "split"]) == {"train", "test"} and set(b.loc[b["pair"] == 1, "split"]) == {"test"}
    assert sorted(b.loc[(b["method"] == "weight") & (b["pair"] == 1), "order"]) == [0, 1]
    assert (b["loss_barrier"] >= 0).all() and not res.batchnorm["moons"]
    assert set(res.curves["method"]) == {"naive", "weight", "activation"} and set(res.curves["lam"]) == {0.0, 0.5, 1.0}
    summary = rebasin_basics.tables(res)["00_barriers"]
    assert list(summary.loc[summary["split"] == "test", "n_pairs"]) == [2, 2, 2]
    frame = rebasin_basics.verdicts(res, CRITERIA)
    verdicts.check_declared(frame, CRITERIA)
    assert set(frame["verdict"]) <= set(verdicts.OUTCOMES)
