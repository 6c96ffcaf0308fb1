"""Benchmark: training N models that differ only in seed together (``zoo.train_many``, one vmap
over the stacked weights per step) against one by one (``zoo.train``), on this CPU.

Settings: 8 MNIST MLPs 3x512 (Adam, batch 512, 1 epoch; the notebooks' ``mlp_mnist``) and 32 Moons
MLPs with one hidden layer of 64 and of 512 units (notebook 05's Moons config: Adam, batch 100,
5 epochs), and 32 MNIST MLPs with one hidden layer of 512 (notebook 09's MNIST zoo: Adam, batch 128,
10k training images, 1 epoch). ``--settings NAME ...`` runs a subset; ``--quick`` runs issue 18's
two (32 Moons MLPs 1x512, whose target is a speed-up of at least 5x, and 32 MNIST MLPs 1x512: about
1-2 minutes on 2 idle threads) into ``bench/batched_training_09.md``. Each row also gives the largest
weight difference between the two ways, next to what training makes of a 1e-7 relative nudge of the
initial weights (how far float rounding is amplified). The table is printed (markdown) and written
with the machine's load (``uptime``) before and after, since other processes may share the CPU.

    LMC_DATA_DIR=... python bench/bench_batched_training.py --threads 1      # all settings
    LMC_DATA_DIR=... python bench/bench_batched_training.py --quick --threads 2
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from lmc_utils import data, zoo

QUICK = ["Moons MLP 1x512", "MNIST MLP 1x512"]  # issue 18: "32 Moons MLPs of width 512 ... report the MNIST figure too"
TARGET = ("Moons MLP 1x512", 5.0)  # issue 18's target: at least this speed-up for this setting
SETTINGS = [  # (name, base config, number of models)
    ("MNIST MLP 3x512", zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 512, "depth": 3},
                                        optimizer="adam", lr=1e-3, batch_size=512, epochs=1), 8),
    ("Moons MLP 1x64", zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 64, "depth": 1},
                                       optimizer="adam", lr=0.01, batch_size=100, epochs=5), 32),
    ("Moons MLP 1x512", zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 512, "depth": 1},
                                        optimizer="adam", lr=0.01, batch_size=100, epochs=5), 32),
    # notebook 09's MNIST zoo config (one hidden layer, 10k training images), one epoch
    ("MNIST MLP 1x512", zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 512, "depth": 1},
                                        optimizer="adam", lr=1e-3, batch_size=128, epochs=1, train_subset=10000), 32),
]


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench(name: str, base: zoo.TrainConfig, n: int, repeats: int) -> dict:
    configs = [base.replace(seed=s) for s in range(n)]
    t_single, t_batched = math.inf, math.inf
    for _ in range(repeats):  # alternating, the fastest of each (the least disturbed by other processes)
        t0 = time.perf_counter()
        single = [zoo.train(c, device="cpu", progress=False) for c in configs]
        t_single = min(t_single, time.perf_counter() - t0)
        t0 = time.perf_counter()
        batched = zoo.train_many([c.replace(trainer="batched") for c in configs], device="cpu", progress=False)
        t_batched = min(t_batched, time.perf_counter() - t0)
    diff = max(float((a.model.state_dict()[k] - b.model.state_dict()[k]).abs().max())
               for a, b in zip(single, batched) for k in a.model.state_dict())
    # rounding baseline: the first model trained one by one from its initial weights perturbed by 1e-7 (relative)
    gen = torch.Generator().manual_seed(12345)
    init = {k: v * (1 + 1e-7 * torch.randn(v.shape, generator=gen))
            for k, v in zoo.build_model(configs[0]).state_dict().items()}
    nudged = zoo.train(configs[0], device="cpu", init_state=init, progress=False).model.state_dict()
    baseline = max(float((single[0].model.state_dict()[k] - nudged[k]).abs().max()) for k in nudged)
    steps = base.epochs * -(-len(data.load(base.dataset, "train", subset=base.train_subset)) // base.batch_size)
    return {"setting": name, "models": n, "steps": steps, "one_by_one_s": t_single, "batched_s": t_batched,
            "speedup": t_single / t_batched, "max_weight_diff": diff,
            "rounding_baseline": baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (also set OMP_NUM_THREADS)")
    parser.add_argument("--out", type=Path, default=None,
                        help="markdown file (default: bench/batched_training.md; with --quick bench/batched_training_09.md)")
    parser.add_argument("--settings", nargs="*", default=None,
                        help="run only these settings (names as in the table, e.g. 'Moons MLP 1x512'); default: all")
    parser.add_argument("--quick", action="store_true", help=f"only issue 18's settings {QUICK}")
    parser.add_argument("--repeats", type=int, default=3, help="timings per way and setting; the fastest is kept")
    args = parser.parse_args()
    if args.quick:
        if args.settings is not None:
            parser.error("--quick and --settings exclude each other")
        args.settings = QUICK
    if args.out is None:
        args.out = Path(__file__).with_name("batched_training_09.md" if args.quick else "batched_training.md")
    chosen = [s for s in SETTINGS if args.settings is None or s[0] in args.settings]
    unknown = sorted(set(args.settings or []) - {s[0] for s in SETTINGS})
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {[s[0] for s in SETTINGS]}")
    torch.set_num_threads(args.threads)
    load_before = _uptime()
    # warm-up: imports, dataset loading and the first batched call are not part of any timing
    for _, base, _ in chosen:
        warm = base.replace(epochs=1, train_subset=512)
        zoo.train(warm, device="cpu", progress=False)
        zoo.train_many([warm.replace(trainer="batched", seed=s) for s in range(2)], device="cpu", progress=False)
    rows = []
    for name, base, n in chosen:
        rows.append(bench(name, base, n, args.repeats))
        r = rows[-1]
        print(f"{name}: {n} models, one by one {r['one_by_one_s']:.1f} s, batched {r['batched_s']:.1f} s, "
              f"speed-up {r['speedup']:.1f}x, max |weight diff| {r['max_weight_diff']:.1e} "
              f"(init nudged by 1e-7: {r['rounding_baseline']:.1e})", flush=True)
    load_after = _uptime()
    header = ["| setting | models | steps per model | one by one (s) | batched (s) | speed-up | max weight difference "
              "| same, init nudged by 1e-7 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    body = [f"| {r['setting']} | {r['models']} | {r['steps']} | {r['one_by_one_s']:.1f} | {r['batched_s']:.1f} | "
            f"{r['speedup']:.1f}x | {r['max_weight_diff']:.1e} | {r['rounding_baseline']:.1e} |" for r in rows]
    target = [f"Issue 18's target, {TARGET[0]} batched at least {TARGET[1]:g}x faster: {r['speedup']:.1f}x, "
              + ("met" if r["speedup"] >= TARGET[1] else "not met") + " in this run (at the load above)."
              for r in rows if r["setting"] == TARGET[0]]
    lines = [
        "# Batched training (zoo.train_many) against one by one (zoo.train)",
        "",
        f"Generated by `bench/bench_batched_training.py --threads {args.threads}"
        + f" --repeats {args.repeats}" + (" --quick" if args.quick else f" --settings {' '.join(repr(s[0]) for s in chosen)}" if args.settings else "")
        + f"`: torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op thread(s) (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}),"
        f" {_cpu()}, {os.cpu_count()} logical CPUs.",
        "",
        f"Machine load before: `{load_before}`  ",
        f"Machine load after: `{load_after}`  ",
        "(other processes shared the CPU; a load above the number of cores inflates both columns).",
        "",
        *header,
        *body,
    ]
    lines += ["", *target] if target else []
    lines += ["", "Same initial weights and data order per seed. *max weight difference*: largest |w_batched - "
              "w_one_by_one| over all models and weights. *init nudged*: the same for the first model trained one by "
              "one twice, once from its initial weights multiplied by (1 + 1e-7 N(0, 1)): the size to which training "
              "amplifies float rounding. A difference of that size is rounding, not a different training run.",
              "", "Speed-up = one by one / batched wall time; both in the same process after a warm-up, each the fastest "
              f"of {args.repeats} alternating runs."]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(["", *header, *body, *target]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
