"""A plan run's side of the store: record every model asked for, and answer with an untrained stand-in.

:func:`lmc_utils.zoo.store.record_requests` switches the store of this process to a
:class:`RequestRecorder` (the runner does so in a plan run, :mod:`lmc_utils.run.plan`): every request
is appended to a request file (JSON lines ``{"notebook", "kind", "key", "config"}``) and answered with
an *untrained* model of that config, with a stand-in history that has every field training returns
(and stand-in SWA samples), so the notebook runs on to its next request. Kinds: ``cached`` (through
``get``/``get_many``: a cache entry; a child's parent is recorded first, as a real ``get`` trains it
first) and ``uncached`` (``train``/``train_many`` called directly: trained inside the notebook every run).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..core import data as data_mod
from ..core.device import get_device, place
from .config import TrainConfig, Trained
from .trainers import build_model


class RequestRecorder:
    """Records the requests of ``notebook`` to the file ``path`` (appending)."""

    def __init__(self, notebook: str, path: Path | str) -> None:
        self.notebook, self.path = notebook, Path(path)

    def _write(self, config: TrainConfig, kind: str) -> None:
        line = json.dumps({"notebook": self.notebook, "kind": kind, "key": config.key, "config": config.to_dict()})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def cached(self, config: TrainConfig, device: Any) -> Trained:
        """A request through ``get``: the parents first, then the config; an untrained stand-in."""
        for c in _lineage(config):
            self._write(c, "cached")
        return stand_in(config, device)

    def uncached(self, config: TrainConfig, device: Any, init_state: dict | None = None) -> Trained:
        """A request through ``train``: the config alone; an untrained stand-in (from ``init_state``)."""
        self._write(config, "uncached")
        return stand_in(config, device, init_state)


def _lineage(config: TrainConfig) -> list[TrainConfig]:
    chain = []
    while config is not None:
        chain.append(config)
        config = config.parent
    return chain[::-1]


def stand_in(config: TrainConfig, device: Any = "cpu", init_state: dict | None = None) -> Trained:
    """An untrained model of ``config`` (or ``init_state``) shaped as :func:`lmc_utils.zoo.trainers.train`
    returns it: eval mode, one history row per epoch with every field training writes (chance-level loss
    and accuracy, no distance travelled), and ``config.swa_epochs`` copies of the weights as SWA samples."""
    dev = get_device(device)
    model = build_model(config)
    if init_state is not None:
        model.load_state_dict(init_state)
    place(model, dev).eval()
    classes = data_mod.NUM_CLASSES[config.dataset]
    history = [{"epoch": e + 1, "train_loss": math.log(classes), "train_accuracy": 1.0 / classes, "lr": config.lr,
                "seconds": 0.0, "l2_from_start": 0.0} for e in range(config.epochs + config.swa_epochs)]
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    samples = [{k: v.clone() for k, v in state.items()} for _ in range(config.swa_epochs)]
    return Trained(model=model, config=config, key=config.key, history=history, samples=samples,
                   swa_state=state if config.swa_epochs else None)
