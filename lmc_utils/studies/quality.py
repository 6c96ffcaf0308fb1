"""The studies' side of the accuracy floors (:mod:`lmc_utils.claims.quality`): record the test accuracy
of the models a study judges, so that every verdict row carries its models' quality."""

from __future__ import annotations

from typing import Iterable

from .. import zoo
from ..claims import quality as Q
from ..core import data as data_mod
from ..measure.evaluation import evaluate


def test_accuracy(model: zoo.Trained, device="auto") -> float:
    """Test accuracy of a trained model on the whole test split of its dataset (memoized)."""
    test = data_mod.load(model.config.dataset, "test", device=device)
    return float(evaluate(model.model.eval(), test)[1])


def record(experiment: str, models: Iterable[zoo.Trained], arm: str = "", device="auto",
           declared_as: str = "") -> Q.Entry:
    """Record the test accuracy of ``models`` of ``experiment`` at ``arm`` (the label its verdict subjects
    use, such as ``width 8``; ``""``: the experiment has one arm), judged against the experiment's
    declared floor (:func:`lmc_utils.claims.quality.declared`; under ``declared_as`` where the params
    name it otherwise)."""
    return Q.record(experiment, arm, {m.key: test_accuracy(m, device) for m in models}, declared_as)
