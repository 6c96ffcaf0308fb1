"""``bench/gpu_check.sh`` (issue #41, item 5), the check to run first on a GPU, here at its smallest size on
the CPU: a slice of the ResNet20 epoch bench, one weight-matching row against the NumPy port, and
notebook 06 at the smoke profile with ``-p device cpu`` from an empty model cache (every model checked to
be trained on the CPU); the results file (device, torch, each step's seconds and pass/fail) goes where
``GPU_CHECK_RESULTS`` says, never into ``bench/``. About half a minute on one thread."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import REPO, needs_mnist

SCRIPT = REPO / "bench" / "gpu_check.sh"
STEPS = ("epoch", "weight_matching", "notebooks", "models_on_device")  # in the order they run

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="bench/gpu_check.sh needs bash and coreutils' timeout")


def run_check(tmp_path, *args, **env):
    results = tmp_path / "results.md"
    variables = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_OUT": str(tmp_path / "out"),
                 "GPU_CHECK_RESULTS": str(results), "GPU_CHECK_THREADS": "1", "GPU_CHECK_PYTHON": sys.executable,
                 **env}
    proc = subprocess.run(["bash", str(SCRIPT), *args], env=variables, capture_output=True, text=True, timeout=600)
    return proc, results


def step_rows(text: str) -> dict[str, list[str]]:
    """The results table: step -> its cells (what, seconds, result)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in STEPS + ("epoch_compile",):
            rows[cells[0]] = cells[1:]
    return rows


@needs_mnist
def test_smallest_size_on_the_cpu_passes_and_writes_its_results(tmp_path):
    committed = {p: p.stat().st_mtime_ns for p in (REPO / "bench").glob("gpu_check_*.md")}
    proc, results = run_check(tmp_path, "smallest")
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, log
    text = results.read_text()
    assert text.startswith("# GPU check: cpu, size smallest"), text
    assert f"torch {torch.__version__}" in text
    assert "every step passed" in text
    rows = step_rows(text)
    assert list(rows) == list(STEPS), text
    for step, (what, seconds, result) in rows.items():
        assert result == "pass", (step, result)
        assert float(seconds) >= 0, (step, seconds)
    assert "-p device cpu" in rows["notebooks"][0]
    assert re.search(r"ResNet20 x1 CIFAR-10 epoch: [\d.]+ s \(scaled from 256 examples\)", text), text
    assert re.search(r"^\| ResNet20 x1 \|.*\| [\d.]+ \|$", text, re.M), text  # the NumPy port's column filled
    assert "different permutation" not in text
    assert re.search(r"^Models: \d+ model cache entries: \d+ trained on cpu$", text, re.M), text
    # outputs in the scratch folder: figures (LMC_FIGURES_DIR), the model cache (LMC_CACHE_DIR), logs
    out = tmp_path / "out"
    assert list((out / "figures").glob("smoke+*/06_verdicts.csv")), sorted((out / "figures").rglob("*"))[:20]
    assert list((out / "cache" / "models").glob("*.pt"))
    assert {p.stem for p in (out / "logs").glob("*.log")} == set(STEPS)
    # nothing written into bench/
    assert {p: p.stat().st_mtime_ns for p in (REPO / "bench").glob("gpu_check_*.md")} == committed


def test_a_step_past_the_budget_is_stopped_and_the_rest_are_not_run(tmp_path):
    """With a 15 s budget (counted from the start, the device probe included) and an epoch bench that
    never ends (a Python that sleeps when asked to run it), the first step is stopped when the budget is
    spent (or not run, on a machine so loaded that the probe left less than 5 s), and the later ones are
    not run: every row says FAIL (no model check after the notebooks failed), and the exit status is 1."""
    python = tmp_path / "python"
    python.write_text("#!/usr/bin/env bash\n"
                      'for a in "$@"; do [[ "$a" == *bench_epoch.py ]] && exec sleep 300; done\n'
                      f'exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    proc, results = run_check(tmp_path, "smallest", GPU_CHECK_BUDGET="15", GPU_CHECK_PYTHON=str(python))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = results.read_text()
    assert "FAILED" in text
    rows = step_rows(text)
    assert list(rows) == ["epoch", "weight_matching", "notebooks"], text
    not_run = "FAIL: not run, the 15 s budget was spent"
    assert rows["epoch"][-1] in ("FAIL: stopped when the 15 s budget was spent", not_run), text
    assert rows["weight_matching"][-1] == rows["notebooks"][-1] == not_run, text


def test_a_foreign_output_folder_is_refused_and_left_alone(tmp_path):
    """GPU_CHECK_OUT is emptied of a previous check's outputs, so a non-empty folder that is not one
    (the checkout, say) is refused before anything is written or removed."""
    foreign = tmp_path / "mine"
    (foreign / "figures").mkdir(parents=True)
    (foreign / "figures" / "keep.txt").write_text("keep")
    proc, results = run_check(tmp_path, "smallest", GPU_CHECK_OUT=str(foreign))
    assert proc.returncode == 2
    assert "neither empty nor a previous check's folder" in proc.stderr
    assert (foreign / "figures" / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in foreign.iterdir()) == ["figures"]
    assert not results.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there")
def test_asking_for_cuda_without_a_gpu_is_an_error(tmp_path):
    proc, results = run_check(tmp_path, "smallest", GPU_CHECK_DEVICE="cuda")
    assert proc.returncode == 2
    assert "torch sees no GPU" in proc.stderr
    assert not results.exists()


def test_an_unknown_size_is_an_error(tmp_path):
    proc, _ = run_check(tmp_path, "huge")
    assert proc.returncode == 2
    assert "size must be full or smallest" in proc.stderr
