"""The analysis cache: results of expensive analyses (interpolation curves, permutations), content-addressed
beside the model cache, so that a rerun computes only what changed.

A result is stored under a key made of everything it is a function of:

* the **arguments**, each by content (:func:`fingerprint`): a tensor by its dtype, shape and bytes, a
  state dict by its entries, a module by its structure (``repr``), every submodule's class and plain
  attributes (``eps``, ``training``, ...) and its state, a dataclass (a dataset, a permutation spec) by
  its fields, plain values (numbers, strings, ``None``, tuples, lists, dicts) by value. A call with an
  argument of any other type (an iterator of batches, a module with forward hooks) is computed and not
  cached, never keyed weakly;
* the **code** that computes it: the normalised source (docstrings and comments left out) of every module
  of the tiers the analyses live in (:data:`ANALYSIS_TIERS`), so editing any of them is a miss (this
  module's own storage format is :data:`FORMAT`);
* the **environment**: torch, NumPy and SciPy versions, whether CUDA is there and torch's thread count
  (float rounding depends on them, as for the model cache), and whether this is a dry run.

Entries are :mod:`.checkpoint` files (atomic writes, a digest over every tensor, ``weights_only=True``
loads): a corrupt entry is reported, removed and recomputed, never used. ``LMC_ANALYSIS_CACHE=off``
turns the cache off (:func:`lmc_utils.core.settings.analysis_cache`); a plan run never uses it (its
models are stand-ins).

Only the outermost cached computation is stored (a curve, not each of its evaluations). A cached
function returns exactly what the computation returned when it was stored (floats travel as
float64 tensors, bit for bit), so a table made from a cached result is byte-identical to one made from a
fresh computation.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import logging
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import settings
from .checkpoint import CorruptCheckpoint, load_checkpoint, save_checkpoint
from .paths import cache_dir

log = logging.getLogger(__name__)

T = TypeVar("T")

# The tiers whose code analyses run on: a change to any of their modules invalidates every cached result.
# This module itself is not hashed (how results are stored is not what they are): FORMAT is its switch,
# raised when the stored form of a result changes.
ANALYSIS_TIERS = ("core", "permutation", "measure", "matching")
FORMAT = 1

_HITS = {"hit": 0, "miss": 0}
_DEPTH = [0]  # cached computations running now: only the outermost one is stored


def normalised_source(path: Path) -> str:
    """A module's code with docstrings and comments dropped, as :func:`ast.unparse` writes it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@functools.lru_cache(maxsize=1)
def analysis_code_digest() -> str:
    """SHA-256 (hex, 16 chars) of the normalised source of every module in :data:`ANALYSIS_TIERS` but this one."""
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for tier in ANALYSIS_TIERS:
        for path in sorted((package / tier).glob("*.py")):
            if path == Path(__file__).resolve():
                continue
            h.update(f"{tier}/{path.name}".encode())
            h.update(normalised_source(path).encode())
    return h.hexdigest()[:16]


# Tensor digests, remembered per tensor object and its version counter (bumped by every in-place change),
# so a large dataset used by many calls is hashed once.
# (A dict by id with a weak reference, not a WeakKeyDictionary: that compares keys with ``==``, which for
# tensors is elementwise.)
_TENSOR_DIGESTS: dict[int, tuple[weakref.ref, tuple[int, int], str]] = {}


def _tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes, remembered for this very tensor object (a dataset's
    inputs) until its version counter (bumped by in-place changes) or its storage changes. Module weights
    reach this as fresh detached tensors, so they are always hashed (fused optimisers update parameters
    without moving the version counter)."""
    stamp = (t._version, t.data_ptr())
    known = _TENSOR_DIGESTS.get(id(t))
    if known is not None and known[0]() is t and known[1] == stamp:
        return known[2]
    flat = t.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    if flat.numel():
        h.update(flat.view(torch.uint8).numpy())
    digest = h.hexdigest()
    key = id(t)
    try:
        ref = weakref.ref(t, lambda _, key=key: _TENSOR_DIGESTS.pop(key, None))
    except TypeError:  # pragma: no cover - a tensor subclass that cannot be weakly referenced
        return digest
    _TENSOR_DIGESTS[key] = (ref, stamp, digest)
    return digest


def _simple(v: Any) -> bool:
    """A plain attribute of a module (a number, string, flag, or tuple of them) that may steer its forward."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    return isinstance(v, tuple) and all(_simple(x) for x in v)


def fingerprint(value: Any) -> str:
    """A digest of ``value``'s content (see the module docstring for what counts); ``TypeError`` for a
    type it cannot fingerprint faithfully."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h: "hashlib._Hash", value: Any) -> None:
    if value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (torch.device, torch.dtype)):
        h.update(f"{type(value).__name__}:{value};".encode())
    elif isinstance(value, torch.Tensor):
        h.update(f"tensor:{_tensor_digest(value)};".encode())
    elif isinstance(value, np.ndarray):
        h.update(f"ndarray:{_tensor_digest(torch.from_numpy(np.ascontiguousarray(value)))};".encode())
    elif isinstance(value, nn.Module):
        h.update(f"module:{value!r};".encode())
        for name, m in value.named_modules():
            if m._forward_hooks or m._forward_pre_hooks:
                raise TypeError(f"the analysis cache cannot fingerprint module {name!r} with forward hooks")
            h.update(f"{name}:{type(m).__module__}.{type(m).__qualname__}".encode())
            _feed(h, {k: v for k, v in vars(m).items() if _simple(v)})  # eps, training, stride, ...
        # detached copies (new objects every time), so a model's weights are hashed afresh on every call: a
        # fused optimiser step changes parameters in place without moving their version counters
        _feed(h, dict(value.state_dict()))
    elif isinstance(value, Mapping):
        h.update(b"{")
        for k in sorted(value, key=repr):
            _feed(h, k)
            _feed(h, value[k])
        h.update(b"}")
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}[".encode())
        for v in value:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(value, (frozenset, set)):
        h.update(b"set[")
        for v in sorted(value, key=repr):
            _feed(h, v)
        h.update(b"]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"dataclass:{type(value).__module__}.{type(value).__qualname__}(".encode())
        _feed(h, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
        h.update(b")")
    elif hasattr(value, "__lmc_fingerprint__"):
        h.update(f"{type(value).__qualname__}(".encode())
        _feed(h, value.__lmc_fingerprint__())
        h.update(b")")
    else:
        raise TypeError(f"the analysis cache cannot fingerprint a {type(value).__qualname__}; pass plain data "
                        f"or give the type a __lmc_fingerprint__ method")


def environment() -> dict[str, Any]:
    """What besides the arguments decides a result: torch, NumPy and SciPy versions (SciPy's assignment
    solver breaks ties), whether CUDA is there and torch's intra-op thread count (float rounding), the
    analysis code (:func:`analysis_code_digest`) and whether this is a dry run (whose budgets cut weight
    matching's sweeps)."""
    import scipy

    return {"torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "cuda": torch.cuda.is_available(), "threads": torch.get_num_threads(),
            "code": analysis_code_digest(), "format": FORMAT, "dry_run": settings.dry_run()}


def enabled() -> bool:
    """Whether results are cached: on unless ``LMC_ANALYSIS_CACHE`` turns it off, and never in a plan run."""
    return settings.analysis_cache() and settings.planning() is None


def entry_path(kind: str, key: str) -> Path:
    """The file of one cached result: ``<cache>/analysis/<kind>/<key>.pt``."""
    return cache_dir() / "analysis" / kind / f"{key[:40]}.pt"


def stats() -> dict[str, int]:
    """Hits and misses of this process so far (the tests read them)."""
    return dict(_HITS)


# ------------------------------------------------------------------------------------------ encoding
def _encode(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able description of ``value`` whose tensors go into ``tensors`` (floats as float64 exactly)."""
    if isinstance(value, pd.DataFrame):
        if not value.index.equals(pd.RangeIndex(len(value))):
            raise TypeError("the analysis cache stores DataFrames with the default index 0..n-1 only")
        columns = {}
        for i, c in enumerate(value.columns):
            col = value[c]
            if col.dtype.kind in "fiub":
                tensors[f"{prefix}.{i}"] = torch.from_numpy(col.to_numpy().copy())
                columns[str(c)] = {"tensor": f"{prefix}.{i}", "dtype": str(col.dtype)}
            else:
                columns[str(c)] = {"values": col.tolist()}
        return {"dataframe": columns, "order": [str(c) for c in value.columns]}
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().cpu()
        return {"tensor": prefix}
    if isinstance(value, np.ndarray):
        tensors[prefix] = torch.from_numpy(value.copy())
        return {"ndarray": prefix}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("the analysis cache stores dicts with string keys only")
        return {"dict": {k: _encode(v, f"{prefix}.{k}", tensors) for k, v in value.items()}}
    if isinstance(value, (tuple, list)):
        return {type(value).__name__: [_encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"the analysis cache cannot store a {type(value).__qualname__}")


def _decode(desc: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if "dataframe" in desc:
        cols = {}
        for name in desc["order"]:
            c = desc["dataframe"][name]
            cols[name] = tensors[c["tensor"]].numpy().astype(c["dtype"], copy=False) if "tensor" in c else c["values"]
        return pd.DataFrame(cols, columns=desc["order"])
    if "tensor" in desc:
        return tensors[desc["tensor"]]
    if "ndarray" in desc:
        return tensors[desc["ndarray"]].numpy()
    if "dict" in desc:
        return {k: _decode(v, tensors) for k, v in desc["dict"].items()}
    if "tuple" in desc:
        return tuple(_decode(v, tensors) for v in desc["tuple"])
    if "list" in desc:
        return [_decode(v, tensors) for v in desc["list"]]
    return desc["value"]


# ------------------------------------------------------------------------------------------ the cache
@contextmanager
def _computing() -> Iterator[None]:
    """A cached computation (or an uncached call of one) is running: calls inside it are not stored."""
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1


def _key(kind: str, key_parts: Mapping[str, Any]) -> str:
    """The key of a result: the content of ``key_parts`` and the environment (``TypeError`` when a part
    cannot be fingerprinted)."""
    return fingerprint({"kind": kind, "parts": dict(key_parts), "env": environment()})


def cached(kind: str, key_parts: Mapping[str, Any], compute: Callable[[], T], result_type: type | None = None) -> T:
    """``compute()``, or its result stored under ``kind`` and the content of ``key_parts`` (plus the
    environment). A missing or corrupt entry is computed and stored; with the cache off, just computes.
    ``result_type``: the dataclass ``compute`` returns (stored as its fields, rebuilt on the way out)."""
    if not enabled() or _DEPTH[0] > 0:  # inside another cached computation: that one is stored
        return compute()
    return _stored(kind, _key(kind, key_parts), compute, result_type)


def _stored(kind: str, key: str, compute: Callable[[], T], result_type: type | None) -> T:
    """The entry ``key`` of ``kind`` if it is there and sound, else ``compute()``, stored under it."""
    path = entry_path(kind, key)
    if path.exists():
        try:
            tensors, meta, _ = load_checkpoint(path, expect_meta={"key": key})
            value = _decode(meta["result"], tensors)
            _HITS["hit"] += 1
            return result_type(**value) if result_type is not None else value
        except (CorruptCheckpoint, KeyError, TypeError, ValueError) as err:
            log.warning("analysis cache: %s is unusable (%s); recomputing", path.name, err)
            path.unlink(missing_ok=True)
    _HITS["miss"] += 1
    with _computing():
        value = compute()
    if result_type is not None:
        if type(value) is not result_type:
            raise TypeError(f"expected a {result_type.__qualname__}, got a {type(value).__qualname__}")
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    tensors: dict[str, torch.Tensor] = {}
    desc = _encode(value, "r", tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, tensors, {"key": key, "kind": kind, "result": desc})
    value = _decode(desc, tensors)  # as a hit would return it: the same types, dtypes and index
    return result_type(**value) if result_type is not None else value


def memoized(kind: str, ignore: tuple[str, ...] = (), result_type: type | None = None
             ) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: cache a function's results under ``kind``, keyed by all its arguments (bound to its
    signature, defaults applied) except ``ignore`` (arguments that cannot change the result, such as a
    progress flag). ``result_type``: as for :func:`cached`. The function must not draw from a global
    random generator (a hit would not draw)."""
    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # not a plain function (a documentation build's mocked torch)
            return fn

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> T:
            if not enabled() or _DEPTH[0] > 0:
                return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            parts = {"function": f"{fn.__module__}.{fn.__qualname__}",
                     **{k: v for k, v in bound.arguments.items() if k not in ignore}}
            try:
                key = _key(kind, parts)
            except TypeError:  # an argument known only by identity (a generator, say): no key, no cache
                return fn(*args, **kwargs)
            return _stored(kind, key, lambda: fn(*args, **kwargs), result_type)

        @functools.wraps(fn)
        def uncached(*args: Any, **kwargs: Any) -> T:
            """The computation itself, storing nothing (nor any cached call inside it)."""
            with _computing():
                return fn(*args, **kwargs)

        # the signature itself (functools.wraps copies the wrapped function's __dict__, which for a
        # torch.no_grad-decorated function holds an object Sphinx and inspect do not take for one)
        inner.__signature__ = uncached.__signature__ = signature  # type: ignore[attr-defined]
        inner.uncached = uncached  # type: ignore[attr-defined]
        return inner
    return wrap
