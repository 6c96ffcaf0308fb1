"""Batch runner: execute the notebooks headlessly with Papermill at a profile.

    python -m lmc_utils.run --profile cpu                 # every notebook
    python -m lmc_utils.run --profile smoke 00            # one notebook (by number or name)
    python -m lmc_utils.run --profile cpu -p seed 1 00    # override a declared parameter
    python -m lmc_utils.run --profile cpu --resume        # skip notebooks already done
    python -m lmc_utils.run --profile cpu --check         # regenerate elsewhere, compare with figures/cpu/
    python -m lmc_utils.run --profile paper --dry-run     # every code path of a profile, tiny budgets
    python -m lmc_utils.run --profile cpu --threads 1     # torch/OpenMP threads per kernel (default 2)
    python -m lmc_utils.run --profile smoke --prepare build/nbval   # parameterised copies for nbval

For each notebook the jupytext source ``notebooks/NN_topic.py`` is converted to its paired
``.ipynb`` (kept in sync), its parameters are checked against the notebook's ``parameters``
cell, and it is executed into ``build/executed/<profile>/``, its figures and tables going to
``figures/<profile>/``. A summary (notebook, seconds, status) is printed; the exit code is
non-zero if any notebook failed.

- Threads: each kernel gets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``LMC_THREADS`` (which
  :func:`lmc_utils.profiles.resolve` and :func:`lmc_utils.device.get_device` apply with
  ``torch.set_num_threads``): CPU results are bit-identical only at a fixed thread count.
- Executed notebooks: each finished notebook is also written, with its outputs and without
  run-to-run volatile metadata, to ``figures/<profile>/notebooks/`` (:mod:`lmc_utils.executed`).
- Kernels run over IPC rather than TCP (:func:`ipc_kernel_manager`).
- Provenance: ``figures/<profile>/provenance.json`` records commit, versions, CPU model,
  threads, device and each notebook's seconds and status (:mod:`lmc_utils.provenance`).
- Overrides: a run with ``-p`` writes to ``figures/<profile>+<hash of the overrides>/`` (and
  ``build/executed/<profile>+<hash>/``) with the overrides in ``overrides.json``, never over
  the profile's committed results.
- ``--resume`` skips a notebook whose source, profile file, parameters, thread count,
  ``params/criteria.yaml`` and ``lmc_utils`` code are unchanged since a successful run and
  whose outputs (its verdict table and every file that run wrote) are still there.
- ``--check`` regenerates into a temporary figures folder under ``build/check/`` and compares
  it with the committed ``figures/<profile>/`` (:mod:`lmc_utils.check`); exit code 1 when a
  verdict changed or a verdict table is missing.
- ``--dry-run`` runs the notebooks at the profile's architectures, configs and code paths but tiny
  budgets (:mod:`lmc_utils.dry_run`) into a fresh ``build/dry-run/<profile>/`` (figures, executed
  notebooks, status, model cache), never ``figures/<profile>/`` or ``LMC_CACHE_DIR``; exit code 1
  on any failure. ``make test`` dry-runs every notebook at the paper profile but 02, 04 and 07
  (``tests/test_paper_dry_run.py``, one test per notebook; minutes each), which ``make dry-run`` runs.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from . import dry_run as dry_run_mod
from . import executed, provenance
from ..claims import quality
from ..core import progress
from ..core.atomic import write_text
from ..core.paths import build_dir, figures_dir, notebooks_dir, params_dir
from .profiles import PROFILES, ProfileError, check_profile
from .profiles import load as load_profile
from ..core.settings import DEFAULT_THREADS  # on a busy machine --threads 1 is faster

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # lmc_utils/


class RunError(ValueError):
    """Bad request to the runner: unknown notebook or undeclared parameter."""


def discover(names: Sequence[str] = ()) -> list[Path]:
    """Notebook sources ``notebooks/NN_*.py`` in order; ``names`` filters by number, stem or path.
    :class:`RunError` when there are none: the notebooks and ``params/`` are a checkout's, not the
    installed package's (outside a checkout ``LMC_ROOT`` names one)."""
    sources = sorted(notebooks_dir().glob("[0-9][0-9]_*.py"))
    if not sources:
        raise RunError(f"no notebooks in {notebooks_dir()}: the runner runs a checkout's notebooks/ with its "
                       f"params/; run it in a checkout of lmc-rebasin or set LMC_ROOT to one")
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
    """Keep the pair ``notebooks/NN_topic.py`` / ``.ipynb`` in sync with jupytext's own pairing
    (``jupytext --sync``): when their cells differ, the newer file wins and the runner says which
    way it synced; when they agree nothing is written (no metadata churn, cell ids kept). The
    header metadata is pinned in ``jupytext.toml``. Returns the ``.ipynb`` path."""
    import jupytext
    from jupytext.cli import jupytext as jupytext_cli

    target = source.with_suffix(".ipynb")
    if not target.exists():
        jupytext.write(jupytext.read(source), target, fmt="ipynb")
        return target
    if _cells(jupytext.read(target)) != _cells(jupytext.read(source)):
        newer, older = (target, source) if target.stat().st_mtime > source.stat().st_mtime else (source, target)
        print(f"{newer.name} is newer than {older.name} and their cells differ: syncing {older.name} from it "
              f"(jupytext --sync)", flush=True)
        jupytext_cli(["--sync", "--quiet", str(newer)])
    return target


def _cells(nb) -> list[tuple[str, str, tuple]]:
    return [(c.cell_type, c.source, tuple(c.get("metadata", {}).get("tags", ()))) for c in nb.cells]


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names declared in the notebook's ``parameters`` cell (via Papermill's inspector)."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def check_parameters(notebook: Path, parameters: dict[str, Any], profile_values: dict[str, Any] | None = None) -> None:
    """Raise :class:`RunError` for a parameter the notebook does not declare, or a value (an
    override, or the profile file's entry) that does not fit the declared annotation; the message
    names the parameter, the value and what is allowed."""
    from .parameter_types import mismatch

    declared = declared_parameters(notebook)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise RunError(f"{notebook.stem}: parameter(s) {unknown} not declared in its parameters cell "
                       f"(declared: {sorted(declared)})")
    checks = [(k, v, f"{notebook.stem} (-p override)") for k, v in parameters.items()]
    checks += [(k, v, f"{notebook.stem} (params file)") for k, v in (profile_values or {}).items()
               if k in declared and k not in parameters]
    for name, value, where in checks:
        error = mismatch(name, declared[name].get("inferred_type_name", ""), value, where)
        if error:
            raise RunError(error)


def overrides_hash(parameters: dict[str, Any]) -> str:
    """Short stable hash of ``-p`` overrides (8 hex digits)."""
    from ..core.checkpoint import config_hash  # imports torch: only when there are overrides

    return config_hash(parameters)[:8]


def output_label(profile: str, parameters: dict[str, Any]) -> str:
    """The figures folder name of a run: ``<profile>``, or ``<profile>+<hash>`` with overrides."""
    return f"{profile}+{overrides_hash(parameters)}" if parameters else profile


def code_digest(package: Path = PACKAGE_DIR) -> str:
    """Digest of every ``.py`` file of the ``lmc_utils`` package (relative path and bytes)."""
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def fingerprint(source: Path, profile: str, parameters: dict[str, Any], threads: int | None = None) -> str:
    """What a notebook's results depend on besides the model cache: its source, the profile file,
    the overrides, the thread count, ``params/criteria.yaml`` and the ``lmc_utils`` code."""
    h = hashlib.sha256(source.read_bytes())
    h.update(check_profile(profile).read_bytes())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    h.update(f"threads={threads}".encode())
    criteria = params_dir() / "criteria.yaml"
    h.update(criteria.read_bytes() if criteria.exists() else b"no criteria")
    h.update(code_digest().encode())
    return h.hexdigest()


def notebook_outputs(folder: Path, source: Path) -> list[str]:
    """Names of the files in ``folder`` that belong to a notebook (``NN_*``)."""
    number = source.stem.split("_", 1)[0]
    return sorted(p.name for p in folder.glob(f"{number}_*") if p.is_file()) if folder.is_dir() else []


def output_digests(folder: Path, source: Path) -> dict[str, str]:
    """SHA-256 of every output of a notebook in ``folder``: its ``NN_*`` files and its executed
    copy under ``notebooks/`` (what decides whether a rerun reproduced them)."""
    files = [folder / name for name in notebook_outputs(folder, source)]
    files.append(folder / executed.FOLDER / source.with_suffix(".ipynb").name)
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def missing_outputs(entry: dict[str, Any], folder: Path, source: Path) -> list[str]:
    """Outputs a finished notebook should have left in ``folder`` but did not: its verdict table
    ``NN_verdicts.csv`` and every file its recorded run wrote."""
    number = source.stem.split("_", 1)[0]
    expected = set(entry.get("outputs") or ()) | {f"{number}_verdicts.csv"}
    return sorted(name for name in expected if not (folder / name).exists())


@contextmanager
def kernel_environment(threads: int | None, figures_base: Path | None = None, suffix: str = "",
                       progress_file: Path | None = None,
                       variables: dict[str, str] | None = None) -> Iterator[None]:
    """Environment the notebook kernels inherit while the block runs (restored afterwards):
    thread counts, where figures go (``LMC_FIGURES_DIR``, ``LMC_FIGURES_SUFFIX``), the file the
    kernel's progress lines go to (``LMC_PROGRESS_FILE``, :mod:`lmc_utils.progress`) and any other
    ``variables`` (a dry run's, :func:`lmc_utils.dry_run.kernel_variables`)."""
    values = {"LMC_FIGURES_SUFFIX": suffix,
              # Progress bars redraw every 5 s at most in the kernel, so an executed notebook keeps a
              # few progress lines instead of hundreds (tqdm reads TQDM_* defaults from the environment).
              "TQDM_MININTERVAL": os.environ.get("TQDM_MININTERVAL", "5")}
    if threads is not None:
        values.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), LMC_THREADS=str(threads))
    if figures_base is not None:
        values["LMC_FIGURES_DIR"] = str(figures_base)
    if progress_file is not None:
        values[progress.VARIABLE] = str(progress_file)
    values.update(variables or {})
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@functools.cache
def ipc_kernel_manager() -> type:
    """The kernel manager the runner starts kernels with: jupyter_client's ``AsyncKernelManager``
    over IPC (local socket files, removed with the kernel) instead of TCP, so that no kernel listens
    on a network port, and ipykernel has no reason to print its warning about unencrypted TCP.
    The socket files live in the temporary folder under a name unique to the kernel (jupyter's
    default, ``kernel-ipc-N`` in the working directory, would put them among the notebooks, and
    leave them there when a run is killed)."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(tempfile.gettempdir(), f"lmc-kernel-{uuid.uuid4().hex[:12]}"))
            super().__init__(**kwargs)

    return IPCKernelManager


def execute(source: Path, profile: str, parameters: dict[str, Any], out_dir: Path) -> float:
    """Execute one notebook (parameters already checked; environment from
    :func:`kernel_environment`); returns seconds. Raises Papermill's error on failure, leaving
    ``<name>.<unique>.partial.ipynb`` with the outputs up to the failing cell (unique per run, so
    concurrent runs do not write over each other's)."""
    import papermill

    notebook = sync_notebook(source)
    params = {"profile": profile, **parameters}
    partial = out_dir / f"{notebook.stem}.{os.getpid()}-{uuid.uuid4().hex[:6]}.partial.ipynb"
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(notebook), str(partial), parameters=params, kernel_name="python3",
                                   cwd=str(notebooks_dir()), progress_bar=True, language="python",
                                   kernel_manager_class=ipc_kernel_manager())
    except BaseException:
        if partial.exists():
            print(f"{notebook.stem}: stopped; its outputs up to the failing cell are in {partial}", flush=True)
        raise
    partial.replace(out_dir / notebook.name)
    return time.perf_counter() - t0


def _set_status(status_path: Path, stem: str, entry: dict[str, Any] | None) -> None:
    """Re-read, merge one notebook's entry (``None`` removes it) and write ``status.json``, under
    a lock, so concurrent runner processes do not lose each other's updates."""
    def change(status: dict[str, Any]) -> None:
        if entry is None:
            status.pop(stem, None)
        else:
            status[stem] = entry

    provenance.update_json(status_path, change)


def run(profile: str, names: Sequence[str] = (), parameters: dict[str, Any] | None = None,
        resume: bool = False, threads: int | None = DEFAULT_THREADS,
        figures_base: Path | None = None, kernel_variables: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run notebooks at ``profile``; returns one summary row per notebook (``notebook``,
    ``seconds``, ``status``, ``figures``: the folder its outputs went to).

    ``figures_base`` replaces ``figures/`` (``LMC_FIGURES_DIR``) for the kernels. Overrides
    send outputs to ``<figures>/<profile>+<hash>/`` (:func:`output_label`). ``kernel_variables``
    are set in the kernels' environment too (:func:`kernel_environment`).
    """
    check_profile(profile)
    parameters = dict(parameters or {})
    if "profile" in parameters:
        raise RunError("set the profile with --profile, not -p profile")
    if threads is not None and threads < 1:
        raise RunError(f"--threads must be a positive integer, got {threads}")
    sources = discover(names)
    sections = load_profile(profile)
    for s in sources:  # fail fast on bad parameters, before hours of work
        check_parameters(sync_notebook(s), {"profile": profile, **parameters}, sections.get(s.stem) or {})
    label = output_label(profile, parameters)
    base = Path(figures_base) if figures_base is not None else figures_dir()
    folder = base / label
    folder.mkdir(parents=True, exist_ok=True)
    if parameters:
        write_text(folder / "overrides.json", json.dumps({"profile": profile, "parameters": parameters},
                                                         indent=1, sort_keys=True, default=str) + "\n")
        print(f"overrides {parameters}: outputs go to {folder}/ (recorded in overrides.json), "
              f"not to {base / profile}/", flush=True)
    # A run into another figures folder (--check) keeps its executed notebooks and status beside it,
    # so it never replaces the profile's own in build/executed/ (nor what --resume reads there).
    out_dir = (build_dir() if figures_base is None else Path(figures_base)) / "executed" / label
    out_dir.mkdir(parents=True, exist_ok=True)
    status_path = out_dir / "status.json"
    env = provenance.environment(threads, str(parameters.get("device", "auto")))
    rows = []
    stage_base = build_dir() / "staging" / f"{label}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        for i, source in enumerate(sources, 1):
            fp = fingerprint(source, profile, parameters, threads)
            if resume:
                entry = provenance.read_json(status_path).get(source.stem, {})
                if entry.get("fingerprint") == fp:
                    missing = missing_outputs(entry, folder, source)
                    if not missing:
                        rows.append({"notebook": source.stem, "seconds": 0.0, "status": "skipped (done)",
                                     "figures": folder})
                        continue
                    print(f"{source.stem}: outputs missing ({', '.join(missing[:3])}"
                          f"{', ...' if len(missing) > 3 else ''}); running it again", flush=True)
            print(f"[{i}/{len(sources)}] {source.stem} (profile {profile}, {_threads_text(threads)})", flush=True)
            try:
                # The kernel writes into a staging folder; its outputs replace the notebook's old ones
                # only once it has finished, so a failed or interrupted run never leaves new figures of
                # a notebook beside old tables of it.
                log = stage_base / f"{source.stem}.progress"
                with kernel_environment(threads, stage_base, label[len(profile):], progress_file=log,
                                        variables=kernel_variables), \
                        progress.follow(log, emit=lambda line: print(f"  {line}", flush=True)):
                    seconds = execute(source, profile, parameters, out_dir)
                before = output_digests(folder, source)
                publish(stage_base / label, folder, source)
                run_copy = out_dir / source.with_suffix(".ipynb").name
                if run_copy.exists():
                    executed.publish(run_copy, folder)
                row = {"notebook": source.stem, "seconds": seconds, "status": "ok", "figures": folder,
                       "warnings": notebook_warnings(run_copy),
                       "reproduced": bool(before) and output_digests(folder, source) == before}
                _set_status(status_path, source.stem, {"fingerprint": fp, "seconds": round(seconds, 1),
                                                       "outputs": notebook_outputs(folder, source)})
            except KeyboardInterrupt:
                rows.append({"notebook": source.stem, "seconds": float("nan"), "status": "INTERRUPTED",
                             "figures": folder})
                _set_status(status_path, source.stem, None)
                raise
            except Exception as err:  # report and go on with the next notebook
                row = {"notebook": source.stem, "seconds": float("nan"), "status": f"FAILED: {_first_line(err)}",
                       "figures": folder, "executed": out_dir}
                _set_status(status_path, source.stem, None)
            rows.append(row)
            seconds = row["seconds"]
            provenance.record(folder, profile, env, {source.stem: {
                "seconds": round(seconds, 1) if seconds == seconds else None,
                "status": "ok" if row["status"] == "ok" else "failed"}}, overrides=parameters or None,
                reproduced=[source.stem] if row.get("reproduced") else [])
    except KeyboardInterrupt:
        done = {r["notebook"] for r in rows}
        rows.extend({"notebook": s.stem, "seconds": float("nan"), "status": "not run (interrupted)", "figures": folder}
                    for s in sources if s.stem not in done)
    finally:
        shutil.rmtree(stage_base, ignore_errors=True)
    return rows


def publish(staged: Path, folder: Path, source: Path) -> list[str]:
    """Move a finished notebook's outputs (``NN_*``) from ``staged`` into ``folder``, replacing
    its previous outputs as a set (files it no longer writes are removed); returns the names."""
    number = source.stem.split("_", 1)[0]
    new = sorted(p.name for p in staged.glob(f"{number}_*") if p.is_file()) if staged.is_dir() else []
    folder.mkdir(parents=True, exist_ok=True)
    for name in new:
        try:
            os.replace(staged / name, folder / name)
        except OSError:  # another filesystem: copy beside the target, then rename
            tmp = folder / f".{name}.{uuid.uuid4().hex[:6]}.tmp"
            shutil.copyfile(staged / name, tmp)
            os.replace(tmp, folder / name)
    for name in notebook_outputs(folder, source):
        if name not in new:
            (folder / name).unlink()
    return new


def notebook_warnings(executed: Path) -> list[str]:
    """``RuntimeWarning`` lines an executed notebook printed (a corrupt cache entry retrained, a
    dataset file unpacked again, ...), for the runner's summary: inside the notebook they are easy
    to miss."""
    import nbformat

    if not executed.exists():
        return []
    found: list[str] = []
    for cell in nbformat.read(executed, as_version=4).cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                for line in out.get("text", "").splitlines():
                    if "RuntimeWarning:" in line:
                        text = line.split("RuntimeWarning:", 1)[1].strip()
                        if text not in found:
                            found.append(text)
    return found


def check(profile: str, names: Sequence[str] = (), threads: int | None = DEFAULT_THREADS,
          committed: Path | None = None) -> tuple[list[dict[str, Any]], Any]:
    """Regenerate ``names`` (default: all) at ``profile`` into a fresh folder under
    ``build/check/`` and compare with the committed ``figures/<profile>/``; returns the summary
    rows and the :class:`lmc_utils.check.Report`."""
    from ..claims import check as check_mod

    committed = committed or figures_dir(profile)
    root = build_dir() / "check"
    root.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=f"{profile}-", dir=root))
    print(f"--check: regenerating into {base / profile}/, then comparing with {committed}/", flush=True)
    rows = run(profile, names, {}, resume=False, threads=threads, figures_base=base)
    report = check_mod.compare(committed, base / profile, [r["notebook"] for r in rows])
    write_text(base / "check.txt", check_mod.render(report) + "\n")
    return rows, report


def dry_run(profile: str, names: Sequence[str] = (), parameters: dict[str, Any] | None = None,
            threads: int | None = DEFAULT_THREADS, root: Path | None = None) -> list[dict[str, Any]]:
    """Run ``names`` (default: all) at ``profile`` with the tiny budgets of :mod:`lmc_utils.dry_run`
    into ``root`` (default ``build/dry-run/<profile>/``, emptied first): figures, executed notebooks
    and status under ``root/figures/``, the models in the cache ``root/cache/``. Returns the
    summary rows of :func:`run`."""
    root = Path(root) if root is not None else build_dir() / "dry-run" / profile
    check_profile(profile)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    print(f"--dry-run: profile {profile} at tiny budgets (lmc_utils.dry_run) into {root}/ "
          f"(figures, executed notebooks, model cache); figures/{profile}/ and LMC_CACHE_DIR are not touched",
          flush=True)
    return run(profile, names, parameters, resume=False, threads=threads, figures_base=root / "figures",
               kernel_variables=dry_run_mod.kernel_variables(root / "cache"))


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


def print_summary(rows: list[dict[str, Any]], threads: int | None = None, resumable: bool = True) -> None:
    """One line per notebook (seconds, status), where the outputs went, each notebook's warnings, and
    what to do after a failure or an interruption (``resumable``: whether to suggest ``--resume``,
    which ``--check`` and ``--dry-run`` do not take)."""
    width = max([len(r["notebook"]) for r in rows] + [8])
    print(f"\n{'notebook':<{width}}  {'seconds':>8}  status")
    for r in rows:
        same = " (outputs unchanged)" if r.get("reproduced") else ""
        print(f"{r['notebook']:<{width}}  {r['seconds']:8.1f}  {r['status']}{same}")
    total = sum(r["seconds"] for r in rows if r["seconds"] == r["seconds"])
    print(f"{'total':<{width}}  {total:8.1f}")
    folders = sorted({str(r["figures"]) for r in rows if r.get("figures") is not None})
    threads_note = f"; {_threads_text(threads)} per kernel" if threads else ""
    for f in folders:
        print(f"figures and tables in {f}/ (provenance.json there{threads_note})")
        low = quality.below_floor_lines(f)
        if low:
            print(f"models below their declared accuracy floor ({len(low)}; their verdicts are counted apart, "
                  f"NN_models.md has every config):")
            for line in low:
                print(f"  {line}")
    for r in rows:
        for w in r.get("warnings") or ():
            print(f"warning ({r['notebook']}): {w}")
    failed = [r for r in rows if r["status"].startswith("FAILED")]
    if failed:
        executed_dir = failed[0].get("executed") or build_dir() / "executed"
        print(f"the executed notebooks (and the partial notebook of each failure) are in {executed_dir}/"
              + ("; rerun with --resume to skip the notebooks that finished" if resumable else ""))
    if interrupted(rows):
        print("interrupted: the notebooks that finished kept their outputs, the interrupted one kept its previous "
              "ones" + ("; rerun the same command with --resume to go on from there" if resumable else ""))


def interrupted(rows: list[dict[str, Any]]) -> bool:
    return any(r["status"] == "INTERRUPTED" for r in rows)


def _threads_text(threads: int | None) -> str:
    return "default threads" if not threads else f"{threads} thread{'s' if threads != 1 else ''}"


def _threads(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmc_utils.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default: cpu)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a notebook parameter (VALUE is parsed as YAML)")
    parser.add_argument("--resume", action="store_true", help="skip notebooks already run with the same inputs")
    parser.add_argument("--threads", type=_threads, default=DEFAULT_THREADS,
                        help=f"torch/OpenMP threads per notebook kernel, recorded in provenance.json "
                             f"(default {DEFAULT_THREADS})")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder and compare with the committed figures/<profile>/; "
                             "exit 1 if a verdict changed")
    parser.add_argument("--dry-run", action="store_true",
                        help="the profile's architectures, configs and code paths at tiny budgets, into "
                             "build/dry-run/<profile>/ with its own model cache; exit 1 on any failure")
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
        if args.dry_run and (args.check or args.resume):
            raise RunError("--dry-run runs into a fresh folder of its own; it takes neither --check nor --resume")
        if args.check:
            if params or args.resume:
                raise RunError("--check compares a fresh run with the committed results of the profile; "
                               "it takes neither -p overrides nor --resume")
            from ..claims.check import render

            rows, report = check(args.profile, args.notebooks, threads=args.threads)
            print_summary(rows, args.threads, resumable=False)
            print()
            print(render(report))
            failed = report.failed or any(r["status"].startswith("FAILED") for r in rows)
            return 1 if failed else 0
        if args.dry_run:
            rows = dry_run(args.profile, args.notebooks, params, threads=args.threads)
        else:
            rows = run(args.profile, args.notebooks, params, resume=args.resume, threads=args.threads)
    except (ProfileError, RunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_summary(rows, args.threads, resumable=not args.dry_run)  # a dry run always starts afresh
    if interrupted(rows):
        return 130
    return 0 if all(not r["status"].startswith("FAILED") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
