"""Training a plan as submitit jobs (lmc_utils.cluster, local executor): four smoke models in
parallel into one cache, each trained once even when every job is submitted twice; a killed job is
reported with its logs, leaves no entry, and a rerun trains only what it left missing."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from lmc_utils import cluster, zoo, zoo_plan

pytest.importorskip("submitit")
needs_proc = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the job's process")

MOONS = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2}, optimizer="adam",
                        lr=0.01, batch_size=64, epochs=3, seed=0)
THREADS = 1


def _plan(configs):
    requests = [{"notebook": "test", "kind": "cached", "key": c.key, "config": c.to_dict()} for c in configs]
    return zoo_plan.collect("smoke", ["test"], requests, device="cpu", threads=THREADS)


def _trained_lines(report):
    return [line for job in report.jobs for line in job.trained if line.startswith("training ")]


def test_four_models_in_parallel_each_trained_once(tmp_path):
    configs = [MOONS.replace(seed=s) for s in range(4)]
    plan = _plan(configs)
    assert len(plan.missing()) == 4
    reports = [None, None]

    def go(i):  # two submitters at once: 8 jobs for 4 entries, all on one cache
        reports[i] = cluster.train_plan(plan, executor="local", folder=tmp_path / f"jobs{i}", device="cpu",
                                        parallel=4, threads=THREADS, progress=False)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(not r.failed for r in reports), [cluster.render(r) for r in reports]
    trained = _trained_lines(reports[0]) + _trained_lines(reports[1])
    assert sorted(trained) == sorted(f"training {zoo.describe(c)}" for c in configs)  # each entry once
    assert _plan(configs).missing() == []
    torch.set_num_threads(THREADS)
    for c in configs:  # the entries are those the zoo would have trained in this process
        cached = zoo.get(c, device="cpu", progress=False)
        fresh = zoo.train(c, device="cpu", progress=False)
        assert all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in cached.model.state_dict().items())


def _kill_tasks(controller_pid: int) -> None:
    """SIGKILL the job's task processes (the children of submitit's local controller), as the OOM
    killer or a lost node would: deterministic, unlike ``job.cancel()`` (a SIGINT to the controller,
    which finished the job normally in 3 of 3 full clean-clone suites and never when run alone)."""
    children = Path(f"/proc/{controller_pid}/task/{controller_pid}/children")
    for pid in children.read_text().split():
        os.kill(int(pid), signal.SIGKILL)


@needs_proc
def test_killed_job_is_reported_and_the_rerun_trains_only_it(tmp_path):
    slow = MOONS.replace(seed=7, epochs=40)  # a few seconds: still training when it is killed
    configs = [MOONS.replace(seed=s) for s in range(3)] + [slow]

    def kill_slow_once_training(entries, job, notes: Path):
        if entries[0].key != slow.key:
            return

        def watch():  # kill its training process once it has started training
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "training" not in (notes.read_text() if notes.exists() else ""):
                time.sleep(0.02)
            _kill_tasks(job._process.pid)  # LocalJob keeps its controller's Popen private

        threading.Thread(target=watch, daemon=True).start()

    first = cluster.train_plan(_plan(configs), executor="local", folder=tmp_path / "jobs", device="cpu",
                               parallel=4, threads=THREADS, progress=False, on_submit=kill_slow_once_training)
    assert [j.keys for j in first.failed] == [[slow.key]], cluster.render(first)
    failed = first.failed[0]
    assert Path(failed.stderr).exists() and str(tmp_path) in failed.stderr  # its log is listed
    text = cluster.render(first)
    assert "1 not done" in text and failed.stderr in text and "rerun" in text
    left = _plan(configs).missing()
    assert [e.key for e in left] == [slow.key]  # atomic writes: no partial entry of the killed job
    second = cluster.train_plan(_plan(configs), executor="local", folder=tmp_path / "jobs", device="cpu",
                                parallel=4, threads=THREADS, progress=False)
    assert not second.failed and second.already_cached == 3 and len(second.jobs) == 1
    assert _trained_lines(second) == [f"training {zoo.describe(slow)}"]
    assert _plan(configs).missing() == []
