"""The checkpoint store: :func:`get` / :func:`get_many` return the cached model of a config, training it
first when the cache has no valid entry.

Entries are content-addressed by the config's key (a child's key includes its parent's config) *and*
an environment key (:func:`environment`: torch version, device type, torch thread count and
:func:`code_digest` of the training code), so an entry made under another environment is never reused:
it is a miss, reported in the log, and both entries coexist. Entries are verified on load
(:mod:`lmc_utils.core.checkpoint`): a corrupt entry is reported and retrained, never used.

A plan run (:mod:`lmc_utils.run.plan`) records requests instead of training, through the store's own
hook (:func:`record_requests`): nothing is patched from outside.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ..core import data as data_mod
from ..core import models
from ..core.checkpoint import CorruptCheckpoint, config_hash, load_checkpoint, save_checkpoint
from ..core.device import get_device, place
from ..core.memo import normalised_source
from ..core.paths import cache_dir
from ..core.progress import note
from . import trainers as train_mod
from .requests import RequestRecorder
from .trainers import MAX_GROUP, build_model
from .config import TrainConfig, Trained, describe, group_key

log = logging.getLogger(__name__)



# The code that determines trained weights: the trainers, the model definitions and the data loading.
# Their code digest is part of every cache entry's name; nothing else (this store, the configs' checks,
# the command line, docstrings, comments, formatting) can invalidate a cached model. ZOO_VERSION (in the
# config key) is the deliberate switch for a change of training the digest cannot see.
TRAINING_CODE = (train_mod, models, data_mod)

# Digests of earlier training code that trains bit-identical weights (checked before it was listed):
# `python -m lmc_utils.zoo rekey` renames such entries to this code's digest instead of retraining them.
# Listed: release 0.1.0 before the tiers (byte digest of models.py, zoo.py and data.py), and the trainers
# before index_select and before batched VGGs (each verified on batched SGD+SWA and Adam LayerNorm groups,
# and one-by-one MLP and VGG-BN).
EQUIVALENT_CODE = {"43f555186f74f261": "models.py, zoo.py and data.py of release 0.1.0 before the tiers",
                   "7dbb3ee7a7e25bdf": "the trainers before mini-batches were gathered with index_select (#38; the same rows)",
                   "3e3e0a5b4465a5b5": "the trainers and models before batched VGGs (#38; MLP and one-by-one paths unchanged)"}


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (hex, 16 chars) of the training code (:data:`TRAINING_CODE`), docstrings and comments
    left out (read once per process)."""
    h = hashlib.sha256()
    for module in TRAINING_CODE:
        path = Path(module.__file__)
        h.update(path.name.encode())
        h.update(normalised_source(path).encode())
    return h.hexdigest()[:16]


def environment(device: str | torch.device = "auto") -> dict[str, Any]:
    """What besides the config determines the weights a run produces: torch version, device
    type, torch's intra-op thread count and :func:`code_digest`. Recorded in every cache entry
    and part of its file name."""
    return {"torch": torch.__version__, "device": get_device(device).type, "threads": torch.get_num_threads(),
            "code": code_digest()}


def checkpoint_path(config: TrainConfig, device: str | torch.device = "auto") -> Path:
    """The cache file of ``config`` trained on ``device`` in this environment:
    ``models/<config key>-<environment key>.pt`` (the one place that decides it)."""
    env_key = config_hash(environment(device))[:12]
    return cache_dir() / "models" / f"{config.key}-{env_key}.pt"


def _load(config: TrainConfig, dev: torch.device, quiet: bool = False) -> Trained | None:
    """The cached model of ``config`` in this environment, or ``None`` (absent or corrupt: warned,
    unless ``quiet``, which only asks whether a valid entry is there)."""
    path = checkpoint_path(config, dev)
    if not path.exists():
        if not quiet:
            _log_other_environments(config, dev, path)
        return None
    try:
        expected = json.loads(json.dumps(config.identity()))  # as stored: tuples become lists
        state, meta, extras = load_checkpoint(path, expect_meta={"key": config.key, "config": expected,
                                                                 "env": environment(dev)})
        model = build_model(config)
        model.load_state_dict(state)
        samples = [extras[f"sample.{i}"] for i in range(config.swa_epochs)]
        return Trained(model=place(model, dev).eval(), config=config, key=config.key,
                       history=meta.get("history", []), samples=samples, swa_state=extras.get("swa"))
    except (CorruptCheckpoint, RuntimeError, KeyError) as err:
        if not quiet:
            warnings.warn(f"model cache entry {path} is corrupt ({err}); retraining it", RuntimeWarning, stacklevel=3)
        return None


def _log_other_environments(config: TrainConfig, dev: torch.device, path: Path) -> None:
    """On a miss, say so when the config was cached under another environment (it is not reused)."""
    others = sorted((p for p in path.parent.glob(f"{config.key}*.pt") if p != path),
                    key=lambda p: p.stat().st_mtime)
    if not others:
        return
    try:
        other = load_checkpoint(others[-1])[1].get("env")
    except (CorruptCheckpoint, OSError):
        other = None
    here = environment(dev)
    if other is None:
        why = "made before cache entries recorded their environment"
    else:
        why = ", ".join(f"{k} {other.get(k)!r} -> {v!r}" for k, v in here.items() if other.get(k) != v) or "?"
    log.info("model cache: %s (%s on %s, seed %s) has %d entr%s from another environment (%s); "
             "training a new entry for this one", config.key, config.arch, config.dataset, config.seed,
             len(others), "y" if len(others) == 1 else "ies", why)


def _save(trained: Trained, dev: torch.device) -> None:
    config = trained.config
    extras = {f"sample.{i}": s for i, s in enumerate(trained.samples)}
    if trained.swa_state is not None:
        extras["swa"] = trained.swa_state
    save_checkpoint(checkpoint_path(config, dev), trained.model.state_dict(),
                    {"key": config.key, "config": config.identity(), "env": environment(dev),
                     "history": trained.history}, extras)


def get(config: TrainConfig, device: str | torch.device = "auto", retrain: bool = False,
        progress: bool = True) -> Trained:
    """The trained model of ``config``: loaded from the cache if a valid entry for this
    environment exists (:func:`checkpoint_path`), otherwise trained (parents first; a batched
    config through ``train_many([config])``) and cached atomically. A corrupt entry triggers a
    warning and retraining."""
    if _recorder is not None:
        return _recorder.cached(config, device)
    dev = get_device(device)
    if not retrain:
        hit = _load(config, dev)
        if hit is not None:
            return hit
    init_state = None
    if config.parent is not None:
        init_state = get(config.parent, device=dev, progress=progress).model.state_dict()
    with entry_lock([checkpoint_path(config, dev)]):  # a second process waits, then reads this entry
        if not retrain:
            hit = _load(config, dev, quiet=True)  # trained by another process while we waited
            if hit is not None:
                return hit
        note(f"training {describe(config)}")
        trained = train_mod.train(config, device=dev, init_state=init_state, progress=progress)  # batched: train_many
        _save(trained, dev)
    return trained


@contextmanager
def entry_lock(paths: list[Path]) -> Iterator[None]:
    """Exclusive locks (``fcntl.flock`` on ``<entry>.lock``) on cache entries, taken in sorted order
    so that two processes never deadlock; concurrent runs on one cache then train each entry once:
    the second waits for the first and reads its checkpoint. No-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent runs stay safe (atomic writes), only wasteful
        yield
        return
    handles = []
    try:
        for path in sorted({Path(p) for p in paths}):
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_name(path.name + ".lock"), "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
            handles.append(handle)
        yield
    finally:
        for handle in reversed(handles):
            handle.close()


def get_many(configs: list[TrainConfig], device: str | torch.device = "auto", progress: bool = True) -> list[Trained]:
    """:func:`get` for several configs, with one progress bar over the models.

    Batched configs missing from the cache are trained by :func:`train_many`, grouped by
    :func:`group_key` (at most ``MAX_GROUP`` at a time), parents first, and each is cached as its
    own entry. Each model of a batch has its own slice of every batched product and of every
    optimiser tensor, so its weights do not depend on which other configs happened to be missing
    (bit for bit on CPU: tests/test_zoo_batched.py checks it) and are a function of its config.
    """
    if _recorder is not None:
        return [_recorder.cached(c, device) for c in configs]
    dev = get_device(device)
    done: dict[str, Trained] = {}
    missing: dict[str, list[TrainConfig]] = {}
    for c in {c.key: c for c in configs}.values():
        if c.trainer != "batched":
            continue
        hit = _load(c, dev)
        if hit is None:
            missing.setdefault(group_key(c), []).append(c)
        else:
            done[c.key] = hit
    for group in missing.values():
        parents = [c.parent for c in group if c.parent is not None]
        parent_states = iter([p.model.state_dict() for p in get_many(parents, device=dev, progress=progress)])
        init_states = [next(parent_states) if c.parent is not None else None for c in group]
        for at in range(0, len(group), MAX_GROUP):
            chunk, inits = group[at:at + MAX_GROUP], init_states[at:at + MAX_GROUP]
            with entry_lock([checkpoint_path(c, dev) for c in chunk]):
                todo = []
                for c, init in zip(chunk, inits):  # another process may have trained some meanwhile
                    hit = _load(c, dev, quiet=True)
                    if hit is None:
                        todo.append((c, init))
                    else:
                        done[c.key] = hit
                if not todo:
                    continue
                note(f"training {len(todo)} together: {describe(todo[0][0])} "
                     f"(seeds {', '.join(str(c.seed) for c, _ in todo)})")
                for trained in train_mod.train_many([c for c, _ in todo], device=dev, init_states=[i for _, i in todo],
                                          progress=progress):
                    _save(trained, dev)
                    done[trained.key] = trained
    out = []
    for c in tqdm(configs, desc="model zoo", disable=not progress or len(configs) < 2, leave=False):
        # a config listed twice gets its own copy, as from two get() calls
        out.append(done.pop(c.key) if c.key in done else get(c, device=dev, progress=progress))
    return out


def rekey(apply: bool = True) -> list[tuple[Path, Path]]:
    """Rename the cache entries made by training code listed in :data:`EQUIVALENT_CODE` to this code's
    digest (their weights are those this code trains, so retraining them would only cost time); every
    other part of an entry's environment stays. Each entry is verified before it is rewritten (a corrupt
    one is left for :func:`get` to report and retrain) and the old file is removed after the new one is
    written (atomically). With ``apply=False`` only lists what would be renamed. Returns ``(old, new)``."""
    renamed = []
    for path in sorted((cache_dir() / "models").glob("*.pt")):
        try:
            state, meta, extras = load_checkpoint(path)
        except (CorruptCheckpoint, OSError):
            continue
        env = meta.get("env") or {}
        if env.get("code") not in EQUIVALENT_CODE:
            continue
        new_env = {**env, "code": code_digest()}
        target = path.with_name(f"{meta['key']}-{config_hash(new_env)[:12]}.pt")
        renamed.append((path, target))
        if apply:
            with entry_lock([path, target]):
                save_checkpoint(target, state, {**meta, "env": new_env}, extras)
                path.unlink()
                path.with_name(path.name + ".lock").unlink(missing_ok=True)
    return renamed


# --------------------------------------------------------------------------- uncached training and plan runs

_recorder: RequestRecorder | None = None  # set by record_requests: this process records instead of training


def record_requests(notebook: str, path: Path | str) -> None:
    """From now on, this process's store records every request of ``notebook`` to the file ``path``
    and answers with untrained stand-ins (:mod:`lmc_utils.zoo.requests`) instead of loading or training:
    a plan run (:mod:`lmc_utils.run.plan`). :func:`stop_recording` ends it."""
    global _recorder
    _recorder = RequestRecorder(notebook, path)


def stop_recording() -> None:
    """Back to loading and training (the end of :func:`record_requests`)."""
    global _recorder
    _recorder = None


def recording() -> RequestRecorder | None:
    """The recorder of a plan run in this process, or ``None``."""
    return _recorder


def train(config: TrainConfig, device: str | torch.device = "auto", init_state: dict | None = None,
          progress: bool = True) -> Trained:
    """:func:`lmc_utils.zoo.trainers.train` (nothing cached), recorded instead in a plan run."""
    if _recorder is not None:
        return _recorder.uncached(config, device, init_state)
    return train_mod.train(config, device=device, init_state=init_state, progress=progress)


def train_many(configs: Sequence[TrainConfig], device: str | torch.device = "auto",
               init_states: Sequence[dict | None] | None = None, progress: bool = True) -> list[Trained]:
    """:func:`lmc_utils.zoo.trainers.train_many` (nothing cached), recorded instead in a plan run."""
    if _recorder is not None:
        states = list(init_states) if init_states is not None else [None] * len(configs)
        return [_recorder.uncached(c, device, s) for c, s in zip(configs, states)]
    return train_mod.train_many(configs, device=device, init_states=init_states, progress=progress)


def train_each(configs: Sequence[TrainConfig], init_states: Sequence[dict | None], device: str | torch.device = "auto",
               progress: bool = True, desc: str = "training") -> list[Trained]:
    """Every config trained from its entry of ``init_states`` (``None``: a fresh init), nothing cached:
    together through :func:`train_many` when all are batched configs (each is what :func:`train` would
    make of it), one by one otherwise (a progress bar ``desc`` over the runs)."""
    if all(c.trainer == "batched" for c in configs):
        return train_many(configs, device=device, init_states=init_states, progress=progress)
    return [train(c, device=device, init_state=s, progress=False)
            for c, s in tqdm(list(zip(configs, init_states)), desc=desc, disable=not progress, leave=False)]
