"""Where the time of a warm run goes: seconds per phase of each notebook (lmc_utils.run.phases).

Runs each notebook's source as a script (one process per notebook, models from the cache
``LMC_CACHE_DIR``: run the notebooks once first, or the table is mostly training; the analysis cache
off unless ``--analysis-cache``), figures into a scratch folder, and writes a Markdown table of seconds
per phase (and each phase's share):

    LMC_DATA_DIR=... python bench/profile_notebooks.py --profile cpu --threads 2 00 06 09
    make profile NOTEBOOKS="00 06 09"          # the same, into bench/phases_<profile>.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_batched_training import _cpu  # the CPU's model name, as the other benchmarks record it

ROOT = Path(__file__).resolve().parent.parent


def one(notebook: str, profile: str, threads: int, phases: bool, analysis_cache: bool = False) -> dict[str, float]:
    """Profile one notebook in a fresh process; seconds per phase. The analysis cache is off unless
    ``analysis_cache`` (the table is about what the computations cost)."""
    env = {**os.environ, "LMC_ANALYSIS_CACHE": "on" if analysis_cache else "off"}
    with tempfile.TemporaryDirectory(prefix="lmc-phases-") as scratch:
        out = subprocess.run([sys.executable, __file__, "--one", notebook, "--profile", profile, "--threads",
                              str(threads), "--scratch", scratch] + ([] if phases else ["--no-phases"]),
                             capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{notebook} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: dict[str, dict[str, float]], profile: str, threads: int) -> str:
    from lmc_utils.run.phases import OTHER, PHASES

    phases = [p for p in [*PHASES, OTHER] if any(r.get(p, 0) > 0.05 for r in rows.values())]
    head = ["notebook", "total (s)", *phases]
    lines = [f"Warm run at the `{profile}` profile, {threads} threads, {_cpu()}: seconds per phase "
             f"(share of the notebook's total), `bench/profile_notebooks.py`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    sums = {p: 0.0 for p in [*phases, "total"]}
    for name, r in rows.items():
        cells = [name, f"{r['total']:.1f}"]
        for p in phases:
            cells.append(f"{r.get(p, 0.0):.1f} ({100 * r.get(p, 0.0) / r['total']:.0f}%)")
            sums[p] += r.get(p, 0.0)
        sums["total"] += r["total"]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > 1:
        lines.append("| **all** | " + f"{sums['total']:.1f} | "
                     + " | ".join(f"{sums[p]:.1f} ({100 * sums[p] / sums['total']:.0f}%)" for p in phases) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook numbers (default: all)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the table here too")
    parser.add_argument("--no-phases", action="store_true", help="total only, without the profiler's cost")
    parser.add_argument("--analysis-cache", action="store_true",
                        help="use the analysis cache (default: off, so every analysis is computed and timed)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        from lmc_utils.run.phases import profile_notebook

        source = next((ROOT / "notebooks").glob(f"{args.one}*.py"))
        seconds = profile_notebook(source, args.profile, args.scratch, args.threads, phases=not args.no_phases)
        print(json.dumps(seconds))
        return
    names = args.notebooks or sorted(p.stem[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    rows = {}
    for n in names:
        stem = next((ROOT / "notebooks").glob(f"{n}*.py")).stem
        rows[stem] = one(n, args.profile, args.threads, phases=not args.no_phases, analysis_cache=args.analysis_cache)
        print(f"{stem}: {rows[stem]['total']:.1f} s", flush=True)
    text = table(rows, args.profile, args.threads)
    print(text)
    if args.out:
        from lmc_utils.atomic import write_text

        write_text(args.out, text)


if __name__ == "__main__":
    main()
