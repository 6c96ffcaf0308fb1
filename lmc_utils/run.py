"""Batch runner: execute the notebooks headlessly with Papermill at a profile.

    python -m lmc_utils.run --profile cpu                 # every notebook
    python -m lmc_utils.run --profile smoke 00            # one notebook (by number or name)
    python -m lmc_utils.run --profile cpu -p seed 1 00    # override a declared parameter
    python -m lmc_utils.run --profile cpu --resume        # skip notebooks already done
    python -m lmc_utils.run --profile smoke --prepare build/nbval   # parameterised copies for nbval

For each notebook the jupytext source ``notebooks/NN_topic.py`` is converted to its paired
``.ipynb`` (kept in sync), its parameters are checked against the notebook's ``parameters``
cell, and it is executed into ``build/executed/<profile>/``. A summary (notebook, seconds,
status) is printed; the exit code is non-zero if any notebook failed. ``--resume`` skips
notebooks whose source, profile file and parameters are unchanged since a successful run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from .atomic import write_text
from .paths import build_dir, notebooks_dir
from .profiles import PROFILES, ProfileError, check_profile


class RunError(ValueError):
    """Bad request to the runner: unknown notebook or undeclared parameter."""


def discover(names: Sequence[str] = ()) -> list[Path]:
    """Notebook sources ``notebooks/NN_*.py`` in order; ``names`` filters by number, stem or path."""
    sources = sorted(notebooks_dir().glob("[0-9][0-9]_*.py"))
    if not names:
        return sources
    chosen = []
    for name in names:
        stem = Path(name).stem
        hits = [s for s in sources if s.stem == stem or s.stem.split("_", 1)[0] == stem]
        if not hits:
            raise RunError(f"no notebook {name!r}; available: {', '.join(s.stem for s in sources)}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def sync_notebook(source: Path) -> Path:
    """Write the paired ``.ipynb`` of a jupytext ``.py`` source if it is missing or its cells differ.

    The ``.py`` file is the source of truth; outputs are not kept in the paired notebook.
    """
    import jupytext
    import nbformat

    target = source.with_suffix(".ipynb")
    nb = jupytext.read(source)
    text = nbformat.writes(nb)
    if not target.exists() or _cells(jupytext.read(target)) != _cells(nb):
        write_text(target, text)
    return target


def _cells(nb) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source, tuple(c.get("metadata", {}).get("tags", ()))) for c in nb.cells]


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names declared in the notebook's ``parameters`` cell (via Papermill's inspector)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def check_parameters(notebook: Path, parameters: dict[str, Any]) -> None:
    declared = declared_parameters(notebook)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise RunError(f"{notebook.stem}: parameter(s) {unknown} not declared in its parameters cell "
                       f"(declared: {sorted(declared)})")


def _fingerprint(source: Path, profile: str, parameters: dict[str, Any]) -> str:
    h = hashlib.sha256(source.read_bytes())
    h.update(check_profile(profile).read_bytes())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    return h.hexdigest()


def execute(source: Path, profile: str, parameters: dict[str, Any], out_dir: Path) -> float:
    """Execute one notebook (parameters already checked); returns seconds. Raises Papermill's
    error on failure, leaving ``<name>.partial.ipynb`` with the outputs up to the failing cell."""
    import papermill

    notebook = sync_notebook(source)
    params = {"profile": profile, **parameters}
    # Progress bars redraw every 5 s at most in the kernel, so an executed notebook keeps a few
    # progress lines instead of hundreds (tqdm reads TQDM_* defaults from the environment).
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    partial = out_dir / f"{notebook.stem}.partial.ipynb"  # kept on failure, for debugging
    t0 = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(partial), parameters=params, kernel_name="python3",
                               cwd=str(notebooks_dir()), progress_bar=True, language="python")
    partial.replace(out_dir / notebook.name)
    return time.perf_counter() - t0


def run(profile: str, names: Sequence[str] = (), parameters: dict[str, Any] | None = None,
        resume: bool = False) -> list[dict[str, Any]]:
    """Run notebooks at ``profile``; returns one summary row per notebook."""
    check_profile(profile)
    parameters = dict(parameters or {})
    if "profile" in parameters:
        raise RunError("set the profile with --profile, not -p profile")
    sources = discover(names)
    for s in sources:  # fail fast on bad parameters, before hours of work
        check_parameters(sync_notebook(s), {"profile": profile, **parameters})
    out_dir = build_dir() / "executed" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    status_path = out_dir / "status.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    rows = []
    for i, source in enumerate(sources, 1):
        fp = _fingerprint(source, profile, parameters)
        if resume and status.get(source.stem, {}).get("fingerprint") == fp:
            rows.append({"notebook": source.stem, "seconds": 0.0, "status": "skipped (done)"})
            continue
        print(f"[{i}/{len(sources)}] {source.stem} (profile {profile})", flush=True)
        try:
            seconds = execute(source, profile, parameters, out_dir)
            rows.append({"notebook": source.stem, "seconds": seconds, "status": "ok"})
            status[source.stem] = {"fingerprint": fp, "seconds": round(seconds, 1)}
        except Exception as err:  # report and go on with the next notebook
            rows.append({"notebook": source.stem, "seconds": float("nan"), "status": f"FAILED: {_first_line(err)}"})
            status.pop(source.stem, None)
        write_text(status_path, json.dumps(status, indent=1, sort_keys=True))
    return rows


def prepare(profile: str, out_dir: Path, names: Sequence[str] = (), parameters: dict[str, Any] | None = None) -> list[Path]:
    """Write each notebook, with Papermill's parameters injected but not executed, into
    ``out_dir`` (for nbval, which then executes them at ``profile``)."""
    import papermill

    check_profile(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in discover(names):
        notebook = sync_notebook(source)
        params = {"profile": profile, **(parameters or {})}
        check_parameters(notebook, params)
        out = out_dir / notebook.name
        papermill.execute_notebook(str(notebook), str(out), parameters=params, prepare_only=True,
                                   kernel_name="python3", language="python", progress_bar=False)
        written.append(out)
    return written


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return (text[-1] if text else type(err).__name__)[:200]


def print_summary(rows: list[dict[str, Any]]) -> None:
    width = max([len(r["notebook"]) for r in rows] + [8])
    print(f"\n{'notebook':<{width}}  {'seconds':>8}  status")
    for r in rows:
        print(f"{r['notebook']:<{width}}  {r['seconds']:8.1f}  {r['status']}")
    total = sum(r["seconds"] for r in rows if r["seconds"] == r["seconds"])
    print(f"{'total':<{width}}  {total:8.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmc_utils.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default: cpu)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a notebook parameter (VALUE is parsed as YAML)")
    parser.add_argument("--resume", action="store_true", help="skip notebooks already run with the same inputs")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    parser.add_argument("--prepare", metavar="DIR", type=Path,
                        help="only write the parameterised notebooks into DIR (for nbval), do not execute")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for s in discover(args.notebooks):
                print(s.stem)
            return 0
        params = {name: yaml.safe_load(value) for name, value in args.parameter}
        if args.prepare:
            for path in prepare(args.profile, args.prepare, args.notebooks, params):
                print(path)
            return 0
        rows = run(args.profile, args.notebooks, params, resume=args.resume)
    except (ProfileError, RunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_summary(rows)
    return 0 if all(not r["status"].startswith("FAILED") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
