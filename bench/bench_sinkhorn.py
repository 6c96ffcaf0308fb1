"""Benchmark: Sinkhorn weight matching (Peña et al. 2023; the solver Ito et al. 2025 use), its
default path against its fast options, next to the iterative LAP solver, on MNIST MLPs.

Models: ``--pairs`` pairs of MNIST MLPs (``--width`` x ``--depth``) trained briefly through the
zoo's trainer with a cheap configuration (Adam, ``--epochs`` epoch(s) on ``--train-subset``
training images; not cached). Per pair and solver it prints the CPU seconds of this process
(``time.process_time``: on a shared machine less disturbed by other processes than wall-clock
time; run with one thread) and the wall seconds, the ratio of CPU seconds to the iterative
solver's (timed again right before each solver), the Adam steps taken, the hard objective ``<W_a, pi(W_b)>``, its gap
to the default Sinkhorn path's (relative, on the inner product and on the squared distance
``||W_a - pi(W_b)||^2``) and the share of units agreeing with the iterative permutation.

Solvers: ``iterative`` (:func:`weight_matching`), ``sinkhorn default`` (300 steps, 20 rounds per
step, uniform start: what notebook 02 runs), ``sinkhorn fast`` (scalings carried between steps,
``--fast-iters`` rounds, single-group terms precomputed, ``--fast-steps`` steps) and ``sinkhorn
warm`` (the fast settings started from the iterative solution, with early stop; its seconds
include the iterative solve).

    LMC_DATA_DIR=... python bench/bench_sinkhorn.py --pairs 2
"""

from __future__ import annotations

import argparse
import time

import torch

from lmc_utils import matching, zoo
from lmc_utils import permutation as P
from lmc_utils.distance import l2_distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-subset", type=int, default=5000)
    parser.add_argument("--fast-steps", type=int, default=60)
    parser.add_argument("--fast-iters", type=int, default=3)
    parser.add_argument("--skip-default", action="store_true", help="skip the slow default path")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    cfg = zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": args.width, "depth": args.depth},
                          optimizer="adam", lr=0.001, batch_size=128, epochs=args.epochs,
                          train_subset=args.train_subset)
    fast = dict(carry_scalings=True, precompute=True, sinkhorn_iters=args.fast_iters, steps=args.fast_steps)
    print("| pair | solver | CPU s | wall s | x iterative (CPU) | steps | objective | gap vs default (inner) "
          "| gap vs default (sq. dist.) | agreement with iterative |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def timed(fn):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        return out, time.process_time() - c, time.perf_counter() - w

    for i in range(args.pairs):
        a, b = (zoo.train(cfg.replace(seed=2 * i + j), device="cpu", progress=False).model for j in (0, 1))
        spec = P.spec_for(a)
        sa, sb = a.state_dict(), b.state_dict()
        rows = []
        wm, c_wm, w_wm = timed(lambda: matching.weight_matching(spec, sa, sb, seed=0))
        rows.append(("iterative", c_wm, w_wm, c_wm, wm.sweeps, wm.perm, wm.objective[-1]))
        solvers = [] if args.skip_default else [("sinkhorn default", {}, False)]
        solvers += [("sinkhorn fast", fast, False),
                    ("sinkhorn warm", dict(fast, init="wm", tol=1e-5, patience=5), True)]
        for name, kw, warm in solvers:
            _, c_ref, _ = timed(lambda: matching.weight_matching(spec, sa, sb, seed=0))
            # the warm start runs its own weight matching (included in its time)
            res, c, w = timed(lambda: matching.sinkhorn_weight_matching(spec, sa, sb, seed=0, **kw))
            rows.append((name, c, w, c_ref, res.sweeps, res.perm, res.objective[-1]))
        ref = next((r for r in rows if r[0] == "sinkhorn default"), None)
        sq = {r[0]: l2_distance(sa, P.apply_permutation(spec, r[5], sb)) ** 2 for r in rows}
        for name, c, w, c_ref, steps, perm, value in rows:
            gap_inner = f"{100 * (value / ref[6] - 1):+.2f}%" if ref else "–"
            gap_sq = f"{100 * (sq[name] / sq[ref[0]] - 1):+.2f}%" if ref else "–"
            print(f"| {i} | {name} | {c:.2f} | {w:.2f} | {c / c_ref:.1f} | {steps} | {value:.3f} | {gap_inner} "
                  f"| {gap_sq} | {matching.unit_agreement(wm.perm, perm):.3f} |", flush=True)

if __name__ == "__main__":
    main()
