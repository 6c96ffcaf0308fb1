"""Benchmark: weight matching on this machine's CPU, for ResNet20 and for torchvision models.

Compares ``lmc_utils.matching.weight_matching`` with ``weight_matching_reference``, a
straightforward NumPy/SciPy port of Git Re-Basin's algorithm (for every group and every weight it
gathers B permuted on the other axes, moves the axis first, reshapes, and multiplies). Both
visit the groups in the same seeded order, so they must return the same permutation.

Reports seconds per sweep next to the flop floor (2 * n_group * numel flops per weight and
group per sweep, at the measured float32 matmul rate of this machine), and how much of the time
the linear assignments (SciPy) take. torchvision models (``--torchvision resnet50``, random init,
two independent seeds) get their spec traced with torch.fx (``lmc_utils.traced_spec``). Before each
row it prints :func:`~lmc_utils.matching.weight_matching_memory`'s estimate, and it measures the
peak of the process's resident memory above its level just before the run (sampled every 5 ms);
``--chunk-bytes`` adds, for every torchvision model, a row with the products made in slices of at
most that many bytes (the bounded-memory mode).

    python bench/bench_weight_matching.py --widths 4 16 --torchvision resnet50
    python bench/bench_weight_matching.py --widths 4 --torchvision resnet152 vit_b_16 --chunk-bytes 64e6
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import threading
import time
import sys
from pathlib import Path

import torch

from bench_batched_training import _cpu, _uptime
from lmc_utils import atomic, matching, models
from lmc_utils import permutation as P
from lmc_utils.matching import weight_matching, weight_matching_memory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from weight_matching_oracle import weight_matching_reference  # noqa: E402

# The computation itself, never the analysis cache (lmc_utils.core.memo): a rerun of the benchmark
# would otherwise time a cache hit.
_weight_matching = getattr(weight_matching, "uncached", weight_matching)


def flop_floor(spec: P.PermutationSpec, state) -> float:
    """2 x units x entries flops per product: every stretch of an axis a group permutes (the whole axis,
    or its part of a concatenation), of the entries as weight matching sees them (grouped convolutions
    dense)."""
    flops = 0.0
    for g, stretches in spec.segments.items():
        for key, axis, _, units, _ in stretches:
            if key not in spec.buffers and state[key].is_floating_point():
                t = spec.view(key, state[key])
                flops += 2.0 * units * t.numel() * units / t.shape[axis]
    return flops


class _PeakMemory:
    """The peak resident memory of this process above its level on entry, sampled every 5 ms."""

    def __init__(self):
        self.peak = 0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        gc.collect()
        try:  # hand memory freed by earlier rows back to the OS (glibc keeps small blocks), or it is reused unseen
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self._base, self._stop = self._rss(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss() - self._base)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss() - self._base)


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
    """Wraps SciPy's linear_sum_assignment as weight matching calls it, adding up its seconds: in every
    matching module that holds the name (``matching.common``, whose ``assignment`` weight matching
    calls, or ``matching.weight`` itself in older layouts)."""

    def __init__(self):
        self.seconds = 0.0
        self._modules = [m for m in (matching.common, matching.weight) if hasattr(m, "linear_sum_assignment")]
        if not self._modules:
            raise RuntimeError("bench_weight_matching: no matching module calls linear_sum_assignment any more; "
                               "update _TimedAssignments")
        self._orig = {m: m.linear_sum_assignment for m in self._modules}

    def __enter__(self):
        for m, orig in self._orig.items():
            m.linear_sum_assignment = self._timed(orig)
        return self

    def _timed(self, orig):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return orig(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed

    def __exit__(self, *exc):
        for m, orig in self._orig.items():
            m.linear_sum_assignment = orig


def bench_pair(label: str, model_a: torch.nn.Module, model_b: torch.nn.Module, port: bool,
               max_sweeps: int = 100, device: str = "cpu", chunk_bytes: int | None = None) -> dict:
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
        _weight_matching(spec, sa, sb, seed=0, max_sweeps=1)  # warm-up (kernels, allocator)
    estimate = weight_matching_memory(spec, sa, chunk_bytes=chunk_bytes)
    print(f"\n{label}: {estimate}")
    measure = _PeakMemory() if device == "cpu" else None
    with _TimedAssignments() as lsa, (measure or _Nothing()):
        t0 = time.perf_counter()
        ours = _weight_matching(spec, sa, sb, seed=0, max_sweeps=max_sweeps, chunk_bytes=chunk_bytes)
        t_ours = time.perf_counter() - t0
    print(f"\n{label}: {n_params / 1e6:.1f}M parameters, {len(spec.sizes)} groups (largest "
          f"{max(spec.sizes.values())}), spec in {t_spec:.2f} s; flop floor {floor / 1e9:.1f} GFLOP/sweep "
          f"= {floor / rate:.2f} s/sweep at the measured rate")
    print(f"  lmc_utils  : {t_ours:7.2f} s, {ours.sweeps} sweeps, {t_ours / ours.sweeps:.2f} s/sweep "
          f"({lsa.seconds / ours.sweeps:.2f} s/sweep in linear assignments, "
          f"{(t_ours - lsa.seconds) / ours.sweeps:.2f} s/sweep the rest) on {device}")
    if measure is not None:
        print(f"  peak memory {measure.peak / 2**30:.2f} GiB above the level before the run "
              f"(estimated {estimate.peak / 2**30:.2f} GiB)")
    row = {"model": label, "params_m": n_params / 1e6, "groups": len(spec.sizes), "largest": max(spec.sizes.values()),
           "sweeps": ours.sweeps, "s_per_sweep": t_ours / ours.sweeps, "floor_s": floor / rate, "rate": rate,
           "lsa_s_per_sweep": lsa.seconds / ours.sweeps, "port_s_per_sweep": None, "same": None,
           "estimate_gib": estimate.peak / 2**30, "peak_gib": None if measure is None else measure.peak / 2**30}
    if port:
        t0 = time.perf_counter()
        ref = weight_matching_reference(spec, sa, sb, seed=0, max_sweeps=max_sweeps)
        t_port = time.perf_counter() - t0
        same = all(torch.equal(ref.perm[g], ours.perm[g].cpu()) for g in spec.sizes)
        print(f"  numpy port : {t_port:7.2f} s, {ref.sweeps} sweeps, {t_port / ref.sweeps:.2f} s/sweep")
        print(f"  speed-up {t_port / t_ours:.1f}x; same permutation: {same}")
        row.update(port_s_per_sweep=t_port / ref.sweeps, same=same)
    return row


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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
        "| matmul floor | float32 matmul rate | memory estimate | peak memory | NumPy port (s/sweep) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        port = "" if r["port_s_per_sweep"] is None else \
            f"{r['port_s_per_sweep']:.2f}{'' if r['same'] else ' (different permutation!)'}"
        lines.append(f"| {r['model']} | {r['params_m']:.1f}M | {r['groups']} ({r['largest']}) | {r['sweeps']} | "
                     f"{r['s_per_sweep']:.2f} | {r['lsa_s_per_sweep']:.2f} | "
                     f"{r['s_per_sweep'] - r['lsa_s_per_sweep']:.2f} | "
                     f"{r['floor_s']:.2f} | {r['rate'] / 1e9:.0f} GFLOP/s | {r['estimate_gib']:.2f} GiB | "
                     f"{'' if r['peak_gib'] is None else format(r['peak_gib'], '.2f') + ' GiB'} | {port} |")
    lines += ["", "Two independently initialised models per row (no training), one weight-matching run with seed 0 "
              "(at most the sweeps shown for torchvision models); seconds per sweep. *Matmul floor*: 2 x group size x "
              "entries flops per weight and group, at the float32 matmul rate measured just before the row; it "
              "compares with the time *without assignments* (SciPy's linear_sum_assignment, which it does not "
              "count). *Memory estimate*: `weight_matching_memory` before the run; *peak memory*: the process's "
              "resident memory at its peak during the run above its level just before (both models' state dicts "
              "already loaded, memory freed by earlier rows handed back to the OS with glibc's malloc_trim), "
              "sampled every 5 ms. Rows "
              "*in chunks of N MB* run with `chunk_bytes=N` (no products kept, each made in slices). "
              "torchvision specs are traced with torch.fx (`lmc_utils.traced_spec`)."]
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
    parser.add_argument("--chunk-bytes", type=float, default=None,
                        help="also run every torchvision model with products in slices of at most this many bytes")
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
        if args.chunk_bytes:
            chunk = int(args.chunk_bytes)
            rows.append(bench_pair(f"torchvision {name}, in chunks of {chunk / 1e6:g} MB", model_a, model_b,
                                   port=False, max_sweeps=args.torchvision_sweeps, device=args.device,
                                   chunk_bytes=chunk))
    write_table(args.out, rows, args.device, load_before, _uptime())


if __name__ == "__main__":
    main()
