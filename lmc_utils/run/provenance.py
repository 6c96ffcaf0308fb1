"""Provenance of a figures folder: what produced ``figures/<profile>/``, in ``provenance.json``.

The runner records, per notebook, its status and seconds, and the environment it ran in: git
commit (and whether code outside ``figures/`` had uncommitted changes), Python / torch / numpy
versions, CPU model, torch thread count and device. Environments are stored once each under a
short key and referenced by the notebooks, so a folder whose notebooks were run in several
batches (a subset at a time) says which environment made which files::

    {
      "environments": {"3f2a9c1e": {"commit": "b2d48da...", "dirty": false, "python": "3.12.3",
                                     "torch": "2.14.1", "numpy": "2.3.1", "cpu": "AMD EPYC ...",
                                     "threads": 2, "device": "cpu"}},
      "notebooks": {"00_rebasin_basics": {"environment": "3f2a9c1e", "seconds": 151.2, "status": "ok"}},
      "profile": "cpu"
    }

No timestamps. A notebook rerun in the same environment whose outputs come out byte-identical
(every ``NN_*`` file and its executed notebook) keeps its entry, seconds included: the entry
describes the run that made those files, and a rerun that reproduces them leaves the folder, and so
``git status``, unchanged. Any changed output, status or environment records the new run.
Updates re-read, merge and write the file under a lock (:func:`file_lock`), atomically.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Collection, Iterator, Mapping

from ..core.atomic import write_text
from ..core.paths import project_root

FILE = "provenance.json"

try:  # POSIX advisory locks; elsewhere the lock is a no-op (concurrent runs are then unprotected)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock (fcntl) on the folder of ``path`` while the block runs, so
    concurrent processes doing read-merge-write of ``path`` do not lose each other's updates.
    Locking the folder leaves no lock file behind in a committed figures folder."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; an empty dict when it is missing or unreadable."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def update_json(path: str | os.PathLike, change) -> dict[str, Any]:
    """Under :func:`file_lock`: read the JSON object at ``path``, apply ``change(obj)`` (which
    edits it in place), write it back atomically; returns the new object."""
    path = Path(path)
    with file_lock(path):
        obj = read_json(path)
        change(obj)
        write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")
    return obj


def git_state(root: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}``; dirty means uncommitted changes to
    tracked or untracked files outside ``figures/`` (the run itself rewrites those)."""
    root = root or project_root()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--", ".", ":(exclude)figures")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_device(device: str = "auto") -> str:
    """The device a notebook given ``device`` runs on: ``cpu``, or ``cuda (<GPU name>)``."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return str(device)


def environment(threads: int | None, device: str = "auto", root: Path | None = None) -> dict[str, Any]:
    """What a run depends on besides its inputs: commit, versions, CPU model, threads, device."""
    import numpy
    import torch

    return {**git_state(root), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "cpu": cpu_model(), "threads": threads, "device": describe_device(device)}


def environment_key(env: Mapping[str, Any]) -> str:
    """A short stable key of an environment record."""
    from ..core.checkpoint import config_hash  # imports torch: only when a key is needed

    return config_hash(dict(env))[:8]


def record(folder: str | os.PathLike, profile: str, env: Mapping[str, Any],
           notebooks: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any] | None = None,
           reproduced: Collection[str] = ()) -> dict[str, Any]:
    """Merge ``notebooks`` (stem -> ``{"seconds", "status"}``) run in ``env`` into
    ``<folder>/provenance.json``; entries of other notebooks are kept, environments no notebook
    refers to any more are dropped. A notebook in ``reproduced`` (its run left every output
    byte-identical) keeps its previous entry when that one has the same status and environment.
    Returns the merged object."""
    key = environment_key(env)

    def change(obj: dict[str, Any]) -> None:
        obj["profile"] = profile
        if overrides:
            obj["overrides"] = dict(overrides)
        entries = obj.setdefault("notebooks", {})
        for stem, entry in notebooks.items():
            old = entries.get(stem) or {}
            if stem in reproduced and old.get("environment") == key and old.get("status") == entry.get("status"):
                continue
            entries[stem] = {**dict(entry), "environment": key}
        envs = obj.setdefault("environments", {})
        envs[key] = dict(env)
        used = {e.get("environment") for e in entries.values()}
        for k in [k for k in envs if k not in used]:
            del envs[k]

    return update_json(Path(folder) / FILE, change)
