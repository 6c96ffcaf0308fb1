"""A content-addressed, self-verifying checkpoint store.

Each entry is one file written atomically (temporary file + rename), holding the state
dict, JSON-able metadata and a SHA-256 digest of every tensor's name, dtype, shape and
bytes. Loading uses ``torch.load(weights_only=True)`` and re-computes the digest, so a
truncated, corrupted or tampered file is detected (:class:`CorruptCheckpoint`) instead
of being used. Concurrent writers of the same key are safe: each rename is atomic and
every complete file is self-consistent.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch

from .atomic import atomic_path

FORMAT = 1


class CorruptCheckpoint(Exception):
    """A cache entry exists but cannot be trusted (truncated, corrupt, or not what was asked for)."""


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 20 chars) of the canonical JSON of a config."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of every tensor, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _flat(state: Mapping[str, torch.Tensor], extras: Mapping[str, Mapping[str, torch.Tensor]]) -> dict:
    """All tensors of a checkpoint under one namespace (extras as ``<name>/<key>``), for the digest."""
    flat = dict(state)
    for name, sub in extras.items():
        flat.update({f"{name}/{k}": v for k, v in sub.items()})
    return flat


def save_checkpoint(path: str | Path, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                    extras: Mapping[str, Mapping[str, torch.Tensor]] | None = None) -> Path:
    """Atomically write ``state`` (moved to CPU), optional named ``extras`` (more state dicts, e.g.
    SWA samples) and ``meta`` (JSON-able), with a digest over every tensor."""
    def cpu(d: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in d.items()}

    cpu_state = cpu(state)
    cpu_extras = {name: cpu(sub) for name, sub in (extras or {}).items()}
    payload = {"format": FORMAT, "meta_json": json.dumps(meta, sort_keys=True), "state": cpu_state,
               "extras": cpu_extras, "digest": state_digest(_flat(cpu_state, cpu_extras))}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, expect_meta: Mapping[str, Any] | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict, dict[str, dict[str, torch.Tensor]]]:
    """Load and verify a checkpoint; return ``(state_dict, meta, extras)``.

    Raises ``FileNotFoundError`` if absent and :class:`CorruptCheckpoint` if the file cannot
    be read, its digest does not match, or ``meta`` differs from ``expect_meta`` on any key given.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, unpickling refused, ...
        raise CorruptCheckpoint(f"{path.name}: unreadable ({type(err).__name__}: {_reason(err)})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "state" not in payload:
        raise CorruptCheckpoint(f"{path.name}: not a checkpoint of format {FORMAT}")
    state = payload["state"]
    extras = payload.get("extras", {})
    if not isinstance(state, dict) or not isinstance(extras, dict) or \
            state_digest(_flat(state, extras)) != payload.get("digest"):
        raise CorruptCheckpoint(f"{path.name}: digest mismatch (file corrupted)")
    try:
        meta = json.loads(payload["meta_json"])
    except (KeyError, TypeError, ValueError) as err:
        raise CorruptCheckpoint(f"{path.name}: unreadable metadata") from err
    for k, v in (expect_meta or {}).items():
        if meta.get(k) != v:
            raise CorruptCheckpoint(f"{path.name}: metadata {k!r} is {meta.get(k)!r}, expected {v!r}")
    return state, meta, extras


def _reason(err: Exception, limit: int = 300) -> str:
    """The informative part of a load error on one line. torch's weights-only refusal starts with
    paragraphs of advice and ends with the reason (``WeightsUnpickler error: Unsupported global:
    ...``), so that line is kept rather than the first characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    picked = [line for line in lines if "WeightsUnpickler error" in line or "Unsupported" in line]
    text = " ".join(picked) if picked else lines[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"
