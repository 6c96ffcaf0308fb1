"""The studies' side of the accuracy floors (:mod:`lmc_utils.claims.quality`): record the test accuracy
of the models a study judges, so that every verdict row carries its models' quality."""

from __future__ import annotations

from typing import Iterable

from .. import zoo
from ..claims import quality as Q
from ..core import data as data_mod
from ..measure.evaluation import evaluate


def record(experiment: str, models: Iterable[zoo.Trained], arm: str = "", device="auto",
           declared_as: str = "") -> Q.Entry:
    """Record the test accuracy of ``models`` of ``experiment`` at ``arm`` (the label its verdict subjects
    use, such as ``width 8``; ``""``: the experiment has one arm), judged against the experiment's
    declared floor (:func:`lmc_utils.claims.quality.declared`; under ``declared_as`` where the params
    name it otherwise). Accuracy on the whole test split of each model's dataset (``evaluate``, memoized),
    loaded once for all of ``models``."""
    tests: dict[str, data_mod.TensorData] = {}
    accuracies = {}
    for m in models:
        if m.config.dataset not in tests:
            tests[m.config.dataset] = data_mod.load(m.config.dataset, "test", device=device)
        accuracies[m.key] = float(evaluate(m.model.eval(), tests[m.config.dataset])[1])
    return Q.record(experiment, arm, accuracies, declared_as)
