"""Train a zoo plan's missing models as independent jobs through ``submitit`` (local processes or SLURM).

:func:`train_plan` takes a :class:`lmc_utils.zoo_plan.Plan`, and submits one job per missing cache
entry (configs with ``trainer="batched"`` that the zoo trains together go into one job per group),
each job calling :func:`lmc_utils.zoo.get_many` in its own process, so that it writes into the same
content-addressed cache (``LMC_CACHE_DIR``, on a filesystem all nodes share) the notebooks read
later. The zoo's guarantees carry over: writes are atomic (a killed job leaves no entry, never a
partial one), and every entry is trained under an exclusive ``fcntl.flock`` on ``<entry>.lock``
(:func:`lmc_utils.zoo.entry_lock`), so two jobs asking for one entry (a child and the job of its
parent, or a job submitted twice) train it once: the second waits and loads it. A rerun plans
again and trains only what is still missing.

Executors: ``local`` (``submitit.LocalExecutor``: one process per job, at most ``parallel`` at a
time; on a workstation with several GPUs each job gets one, round-robin, via
``CUDA_VISIBLE_DEVICES``) and ``slurm`` (``submitit.AutoExecutor``: one job array, at most
``parallel`` tasks at a time). ``submitit`` is an optional dependency (``pip install -e '.[cluster]'``).

Environment: a cache entry's file name includes the torch version, device type, torch thread
count and code digest (:func:`lmc_utils.zoo.environment`); jobs run with ``threads`` torch threads,
so train with the thread count (and device type) the notebooks will run with, or they will not
find the entries (``python -m lmc_utils.run --threads N`` and ``zoo train --threads N`` alike).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .plan import Entry, Plan
from ..core.settings import DEFAULT_THREADS  # on a busy machine --threads 1 is faster



@dataclass
class JobResult:
    """One submitted job: the cache keys it was to make, its submitit id, ``state`` (``done`` or
    ``failed``), the lines of what it trained (``trained``: the zoo's progress notes), the error and
    the paths of its logs."""

    keys: list[str]
    job_id: str
    state: str
    trained: list[str] = field(default_factory=list)
    error: str = ""
    stdout: str = ""
    stderr: str = ""


@dataclass
class Report:
    """What :func:`train_plan` did: the jobs and the entries it had nothing to do for."""

    jobs: list[JobResult]
    already_cached: int
    folder: Path

    @property
    def failed(self) -> list[JobResult]:
        return [j for j in self.jobs if j.state != "done"]


def job_groups(entries: Sequence[Entry]) -> list[list[Entry]]:
    """The jobs of a list of missing entries: one per entry, except ``batched`` configs, which
    go together by :func:`lmc_utils.zoo.group_key` in groups of at most :data:`lmc_utils.zoo.MAX_GROUP`
    (what the zoo would train in one ``train_many`` call)."""
    from .. import zoo

    jobs: list[list[Entry]] = []
    groups: dict[Any, list[Entry]] = {}
    for e in entries:
        cfg = e.train_config
        if cfg.trainer == "batched":
            group = groups.setdefault(zoo.group_key(cfg), [])
            if not group:
                jobs.append(group)
            group.append(e)
        else:
            jobs.append([e])
    out = []
    for job in jobs:
        out.extend(job[i:i + zoo.MAX_GROUP] for i in range(0, len(job), zoo.MAX_GROUP))
    return out


def train_entries(configs: list[dict[str, Any]], device: str, threads: int, cache: str, notes: str) -> list[str]:
    """The body of one job (runs in the job's process): train or load ``configs`` (``TrainConfig``
    dicts) with :func:`lmc_utils.zoo.get_many` into the cache folder ``cache`` at ``threads`` torch
    threads; the zoo's progress notes ("training ...") go to the file ``notes``. Returns the cache
    keys now present."""
    os.environ.update({"LMC_CACHE_DIR": cache, "LMC_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
                       "MKL_NUM_THREADS": str(threads), "LMC_PROGRESS_FILE": notes})
    import torch

    torch.set_num_threads(threads)
    from .. import zoo

    wanted = [zoo.TrainConfig.from_dict(c) for c in configs]
    return [t.key for t in zoo.get_many(wanted, device=device, progress=False)]


def _executor(kind: str, folder: Path, timeout_min: int, gpus: int, cpus: int | None, mem_gb: float | None,
              partition: str | None, parallel: int, extra: dict[str, Any]):
    try:
        import submitit
    except ImportError as err:  # optional dependency
        raise ValueError("zoo train needs submitit: pip install -e '.[cluster]'") from err
    if kind == "local":
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(timeout_min=timeout_min, gpus_per_node=gpus, **extra)
        return ex
    if kind != "slurm":
        raise ValueError(f"unknown executor {kind!r}; choose local or slurm")
    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    params: dict[str, Any] = {"timeout_min": timeout_min, "gpus_per_node": gpus, "tasks_per_node": 1, "nodes": 1,
                              "slurm_array_parallelism": parallel, "name": "lmc-zoo"}
    if cpus is not None:
        params["cpus_per_task"] = cpus
    if mem_gb is not None:
        params["mem_gb"] = mem_gb
    if partition is not None:
        params["slurm_partition"] = partition
    ex.update_parameters(**params, **extra)
    return ex


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch/CUDA: no GPUs
        return 0


def train_plan(plan: Plan, executor: str = "local", folder: Path | None = None, device: str = "auto",
               parallel: int = 4, timeout_min: int = 24 * 60, gpus_per_job: int | None = None,
               cpus_per_job: int | None = None, mem_gb: float | None = None, partition: str | None = None,
               threads: int = DEFAULT_THREADS, extra: dict[str, Any] | None = None, wait: bool = True,
               progress: bool = True, on_submit: Callable[[list[Entry], Any, Path], None] | None = None) -> Report:
    """Train the plan's missing cache entries (:meth:`Plan.missing`) as submitit jobs into the
    cache ``LMC_CACHE_DIR`` (see the module docstring); waits for them and returns the
    :class:`Report` (failed jobs with their error and log paths). ``folder``: job pickles and logs
    (default ``build/zoo-jobs/<profile>/``). With ``wait=False`` (SLURM) the jobs are submitted and
    reported as ``submitted``. ``on_submit(entries, job, notes)`` is called for every submitted
    job (``notes``: the file its "training ..." lines go to), e.g. to print job ids."""
    from tqdm.auto import tqdm

    from ..core.paths import build_dir, cache_dir

    if parallel < 1 or threads < 1:
        raise ValueError(f"need parallel >= 1 and threads >= 1 (got {parallel}, {threads})")
    folder = Path(folder) if folder is not None else build_dir() / "zoo-jobs" / plan.profile
    folder.mkdir(parents=True, exist_ok=True)
    notes_dir = folder / "trained"
    notes_dir.mkdir(exist_ok=True)
    missing = plan.missing()
    groups = job_groups(missing)
    report = Report(jobs=[], already_cached=len(plan.cached()) - len(missing), folder=folder)
    if not groups:
        return report
    local_gpus = _local_gpus() if executor == "local" else 0
    gpus = gpus_per_job if gpus_per_job is not None else (1 if executor == "slurm" else min(1, local_gpus))
    ex = _executor(executor, folder / "%j", timeout_min, gpus, cpus_per_job, mem_gb, partition, parallel,
                   dict(extra or {}))
    cache = str(cache_dir())
    stamp = f"{os.getpid()}-{time.time_ns()}"

    def args(i: int, group: list[Entry]) -> tuple:
        return ([e.config for e in group], device, threads, cache, str(notes_dir / f"{stamp}-{i}.txt"))

    submitted: list[tuple[int, Any]] = []
    if executor == "slurm":
        fn_args = [args(i, g) for i, g in enumerate(groups)]
        jobs = ex.map_array(train_entries, *zip(*fn_args))
        submitted = list(enumerate(jobs))
        for i, job in submitted:
            if on_submit is not None:
                on_submit(groups[i], job, Path(fn_args[i][4]))
        pending: list[int] = []
    else:
        pending = list(range(len(groups)))
    bar = tqdm(total=len(groups), desc=f"zoo train ({executor})", disable=not progress)
    running: list[tuple[int, Any]] = list(submitted)
    results: dict[int, JobResult] = {}
    slot = 0
    while pending or running:
        while pending and len(running) < parallel:  # local: at most `parallel` processes at once
            i = pending.pop(0)
            if local_gpus and gpus:
                ex.update_parameters(visible_gpus=[(slot + k) % local_gpus for k in range(gpus)])
                slot += gpus
            job = ex.submit(train_entries, *args(i, groups[i]))
            running.append((i, job))
            if on_submit is not None:
                on_submit(groups[i], job, Path(args(i, groups[i])[4]))
        if not wait:
            for i, job in running:
                results[i] = JobResult(keys=[e.key for e in groups[i]], job_id=str(job.job_id), state="submitted",
                                       stdout=str(job.paths.stdout), stderr=str(job.paths.stderr))
            running = []
            break
        still = []
        for i, job in running:
            if job.done():
                results[i] = _result(job, groups[i], Path(args(i, groups[i])[4]))
                bar.update(1)
            else:
                still.append((i, job))
        running = still
        if running:
            time.sleep(0.5)
    bar.close()
    report.jobs = [results[i] for i in sorted(results)]
    return report


def _result(job: Any, group: list[Entry], notes: Path) -> JobResult:
    keys = [e.key for e in group]
    trained = notes.read_text(encoding="utf-8").splitlines() if notes.exists() else []
    out = JobResult(keys=keys, job_id=str(job.job_id), state="done", trained=trained,
                    stdout=str(job.paths.stdout), stderr=str(job.paths.stderr))
    try:
        job.result()
    except Exception as err:  # noqa: BLE001 - a failed or killed job is reported, not raised
        out.state = "failed"
        text = str(err).strip().splitlines()
        out.error = (text[-1] if text else type(err).__name__)[:300]
    return out


def render(report: Report) -> str:
    """The report as text: counts, then every failed job with its error and log files."""
    done = [j for j in report.jobs if j.state == "done"]
    trained = sum(len(j.trained) for j in report.jobs)
    submitted = [j for j in report.jobs if j.state == "submitted"]
    if submitted:
        return "\n".join([f"zoo train: {len(submitted)} job(s) submitted ({report.already_cached} entries already "
                          f"cached); logs in {report.folder}/; run the same command again later to see what is "
                          f"still missing"] + [f"  job {j.job_id}: {', '.join(k[:12] for k in j.keys[:4])}"
                                               for j in submitted])
    lines = [f"zoo train: {len(report.jobs)} job(s), {len(done)} done, {len(report.failed)} not done; "
             f"{trained} model group(s) trained, {report.already_cached} entr{'y' if report.already_cached == 1 else 'ies'} "
             f"already cached; job logs in {report.folder}/"]
    for j in report.failed:
        lines.append(f"  {j.state}: job {j.job_id} ({len(j.keys)} entr{'y' if len(j.keys) == 1 else 'ies'}, "
                     f"{', '.join(k[:12] for k in j.keys[:4])}{', ...' if len(j.keys) > 4 else ''})"
                     + (f": {j.error}" if j.error else ""))
        lines.append(f"    logs: {j.stdout}  {j.stderr}")
    if any(j.state == "failed" for j in report.jobs):
        lines.append("rerun the same command to train only what is still missing")
    return "\n".join(lines)
