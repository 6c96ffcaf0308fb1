"""Benchmark: weight matching of two ResNet20 state dicts on this machine's CPU.

Compares ``lmc_utils.matching.weight_matching`` with ``weight_matching_reference``, a
straightforward NumPy/SciPy port of Git Re-Basin's algorithm (for every group and every weight it
gathers B permuted on the other axes, moves the axis first, reshapes, and multiplies). Both
visit the groups in the same seeded order, so they must return the same permutation.

Reports seconds per sweep next to the flop floor (2 * n_group * numel flops per weight and
group per sweep, at the measured float32 matmul rate of this machine).

    python bench/bench_weight_matching.py --widths 4 16
"""

from __future__ import annotations

import argparse
import time

import torch

from lmc_utils import models
from lmc_utils import permutation as P
from lmc_utils.matching import weight_matching, weight_matching_reference


def flop_floor(spec: P.PermutationSpec, state) -> float:
    flops = 0.0
    for g, entries in spec.groups.items():
        for key, _ in entries:
            if key not in spec.buffers:
                flops += 2.0 * spec.sizes[g] * state[key].numel()
    return flops


def matmul_rate(n: int = 1024, m: int = 9216, reps: int = 5) -> float:
    x, y = torch.randn(n, m), torch.randn(n, m)
    x @ y.T
    t0 = time.perf_counter()
    for _ in range(reps):
        x @ y.T
    return reps * 2.0 * n * n * m / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[4, 16])
    parser.add_argument("--skip-port-above", type=float, default=1e9, help="skip the slow port for wider models")
    args = parser.parse_args()
    rate = matmul_rate()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul {rate / 1e9:.0f} GFLOP/s")
    for width in args.widths:
        torch.manual_seed(0)
        model_a = models.resnet20(width_multiplier=width)
        model_b = models.resnet20(width_multiplier=width)
        spec = P.spec_for(model_a)
        sa, sb = model_a.state_dict(), model_b.state_dict()
        floor = flop_floor(spec, sa)
        n_params = sum(v.numel() for k, v in sa.items() if k not in spec.buffers)
        t0 = time.perf_counter()
        ours = weight_matching(spec, sa, sb, seed=0)
        t_ours = time.perf_counter() - t0
        print(f"\nResNet20 x{width:g}: {n_params / 1e6:.1f}M parameters, flop floor {floor / 1e9:.1f} GFLOP/sweep "
              f"= {floor / rate:.2f} s/sweep at the measured rate")
        print(f"  lmc_utils  : {t_ours:7.2f} s, {ours.sweeps} sweeps, {t_ours / ours.sweeps:.2f} s/sweep")
        if width <= args.skip_port_above:
            t0 = time.perf_counter()
            port = weight_matching_reference(spec, sa, sb, seed=0)
            port_sweeps = port.sweeps
            t_port = time.perf_counter() - t0
            same = all(torch.equal(port.perm[g], ours.perm[g]) for g in spec.sizes)
            print(f"  numpy port : {t_port:7.2f} s, {port_sweeps} sweeps, {t_port / port_sweeps:.2f} s/sweep")
            print(f"  speed-up {t_port / t_ours:.1f}x; same permutation: {same}")


if __name__ == "__main__":
    main()
