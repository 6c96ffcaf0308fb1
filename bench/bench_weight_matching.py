"""Benchmark: weight matching on this machine's CPU, for ResNet20 and for torchvision models.

Compares ``lmc_utils.matching.weight_matching`` with ``weight_matching_reference``, a
straightforward NumPy/SciPy port of Git Re-Basin's algorithm (for every group and every weight it
gathers B permuted on the other axes, moves the axis first, reshapes, and multiplies). Both
visit the groups in the same seeded order, so they must return the same permutation.

Reports seconds per sweep next to the flop floor (2 * n_group * numel flops per weight and
group per sweep, at the measured float32 matmul rate of this machine), and how much of the time
the linear assignments (SciPy) take. torchvision models (``--torchvision resnet50``, random init,
two independent seeds) get their spec traced with torch.fx (``lmc_utils.traced_spec``).

    python bench/bench_weight_matching.py --widths 4 16 --torchvision resnet50
"""

from __future__ import annotations

import argparse
import os
import time
import sys
from pathlib import Path

import torch

from bench_batched_training import _cpu, _uptime
from lmc_utils import atomic, matching, models
from lmc_utils import permutation as P
from lmc_utils.matching import weight_matching

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from weight_matching_oracle import weight_matching_reference  # noqa: E402


def flop_floor(spec: P.PermutationSpec, state) -> float:
    flops = 0.0
    for g, entries in spec.groups.items():
        for key, _ in entries:
            if key not in spec.buffers:
                flops += 2.0 * spec.sizes[g] * state[key].numel()
    return flops


def matmul_rate(n: int = 1024, m: int = 9216, reps: int = 5, device: str = "cpu") -> float:
    """float32 FLOP/s of an ``[n, m] @ [m, n]`` product (the shape of a cost-matrix term)."""
    x, y = torch.randn(n, m, device=device), torch.randn(n, m, device=device)
    x @ y.T
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        x @ y.T
    _sync(device)
    return reps * 2.0 * n * n * m / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _TimedAssignments:
    """Wraps SciPy's linear_sum_assignment as weight matching calls it, adding up its seconds."""

    def __init__(self):
        self.seconds = 0.0
        self._orig = matching.weight.linear_sum_assignment

    def __enter__(self):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return self._orig(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        matching.weight.linear_sum_assignment = timed
        return self

    def __exit__(self, *exc):
        matching.weight.linear_sum_assignment = self._orig


def bench_pair(label: str, model_a: torch.nn.Module, model_b: torch.nn.Module, port: bool,
               max_sweeps: int = 100, device: str = "cpu") -> dict:
    """Weight-match two models of one architecture; print and return s/sweep, the floor (at the
    matmul rate measured just before, since the load of a shared machine changes) and the
    assignment share."""
    rate = matmul_rate(device=device)
    t0 = time.perf_counter()
    spec = P.spec_for(model_a)
    t_spec = time.perf_counter() - t0
    sa, sb = model_a.state_dict(), model_b.state_dict()
    floor = flop_floor(spec, sa)
    n_params = sum(v.numel() for k, v in sa.items() if k not in spec.buffers)
    if device != "cpu":
        sa = {k: v.to(device) for k, v in sa.items()}
        sb = {k: v.to(device) for k, v in sb.items()}
        weight_matching(spec, sa, sb, seed=0, max_sweeps=1)  # warm-up (kernels, allocator)
    with _TimedAssignments() as lsa:
        t0 = time.perf_counter()
        ours = weight_matching(spec, sa, sb, seed=0, max_sweeps=max_sweeps)
        t_ours = time.perf_counter() - t0
    print(f"\n{label}: {n_params / 1e6:.1f}M parameters, {len(spec.sizes)} groups (largest "
          f"{max(spec.sizes.values())}), spec in {t_spec:.2f} s; flop floor {floor / 1e9:.1f} GFLOP/sweep "
          f"= {floor / rate:.2f} s/sweep at the measured rate")
    print(f"  lmc_utils  : {t_ours:7.2f} s, {ours.sweeps} sweeps, {t_ours / ours.sweeps:.2f} s/sweep "
          f"({lsa.seconds / ours.sweeps:.2f} s/sweep in linear assignments, "
          f"{(t_ours - lsa.seconds) / ours.sweeps:.2f} s/sweep the rest) on {device}")
    row = {"model": label, "params_m": n_params / 1e6, "groups": len(spec.sizes), "largest": max(spec.sizes.values()),
           "sweeps": ours.sweeps, "s_per_sweep": t_ours / ours.sweeps, "floor_s": floor / rate, "rate": rate,
           "lsa_s_per_sweep": lsa.seconds / ours.sweeps, "port_s_per_sweep": None, "same": None}
    if port:
        t0 = time.perf_counter()
        ref = weight_matching_reference(spec, sa, sb, seed=0, max_sweeps=max_sweeps)
        t_port = time.perf_counter() - t0
        same = all(torch.equal(ref.perm[g], ours.perm[g].cpu()) for g in spec.sizes)
        print(f"  numpy port : {t_port:7.2f} s, {ref.sweeps} sweeps, {t_port / ref.sweeps:.2f} s/sweep")
        print(f"  speed-up {t_port / t_ours:.1f}x; same permutation: {same}")
        row.update(port_s_per_sweep=t_port / ref.sweeps, same=same)
    return row


def write_table(path: Path, rows: list[dict], device: str, load_before: str, load_after: str) -> None:
    """The results as Markdown (``bench/weight_matching.md``), with the machine's load."""
    lines = [
        "# Weight matching: seconds per sweep against the matmul floor",
        "",
        f"Generated by `bench/bench_weight_matching.py`: torch {torch.__version__}, {torch.get_num_threads()} "
        f"intra-op thread(s) (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), {_cpu()}, "
        f"{os.cpu_count()} logical CPUs, cost matrices on {device}.",
        "",
        f"Machine load before: `{load_before}`  ",
        f"Machine load after: `{load_after}`  ",
        "(other processes shared the CPU; a load above the number of cores inflates every column).",
        "",
        "| model | parameters | groups (largest) | sweeps | s/sweep | of which assignments | without assignments "
        "| matmul floor | float32 matmul rate | NumPy port (s/sweep) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        port = "" if r["port_s_per_sweep"] is None else \
            f"{r['port_s_per_sweep']:.2f}{'' if r['same'] else ' (different permutation!)'}"
        lines.append(f"| {r['model']} | {r['params_m']:.1f}M | {r['groups']} ({r['largest']}) | {r['sweeps']} | "
                     f"{r['s_per_sweep']:.2f} | {r['lsa_s_per_sweep']:.2f} | "
                     f"{r['s_per_sweep'] - r['lsa_s_per_sweep']:.2f} | "
                     f"{r['floor_s']:.2f} | {r['rate'] / 1e9:.0f} GFLOP/s | {port} |")
    lines += ["", "Two independently initialised models per row (no training), one weight-matching run with seed 0 "
              "(at most the sweeps shown for torchvision models); seconds per sweep. *Matmul floor*: 2 x group size x "
              "entries flops per weight and group, at the float32 matmul rate measured just before the row; it "
              "compares with the time *without assignments* (SciPy's linear_sum_assignment, which it does not "
              "count). torchvision specs are traced with torch.fx (`lmc_utils.traced_spec`)."]
    atomic.write_text(path, "\n".join(lines) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=float, nargs="*", default=[4, 16], help="ResNet20 width multipliers")
    parser.add_argument("--skip-port-above", type=float, default=1e9, help="skip the slow port for wider models")
    parser.add_argument("--torchvision", nargs="*", default=["resnet50"],
                        help="torchvision model names (random init, traced spec)")
    parser.add_argument("--torchvision-sweeps", type=int, default=5,
                        help="at most this many sweeps per torchvision model")
    parser.add_argument("--device", default="cpu", help="where the cost matrices are built (cpu, cuda)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("weight_matching.md"))
    args = parser.parse_args()
    load_before = _uptime()
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cost matrices on {args.device}")
    for width in args.widths:
        torch.manual_seed(0)
        model_a = models.resnet20(width_multiplier=width)
        model_b = models.resnet20(width_multiplier=width)
        rows.append(bench_pair(f"ResNet20 x{width:g}", model_a, model_b, port=width <= args.skip_port_above,
                               device=args.device))
    for name in args.torchvision:
        import torchvision.models as tvm

        torch.manual_seed(0)
        model_a = getattr(tvm, name)(weights=None)
        model_b = getattr(tvm, name)(weights=None)
        rows.append(bench_pair(f"torchvision {name}", model_a, model_b, port=False,
                               max_sweeps=args.torchvision_sweeps, device=args.device))
    write_table(args.out, rows, args.device, load_before, _uptime())


if __name__ == "__main__":
    main()
