"""Command line of the model zoo: plan a profile's models, and train the missing ones as jobs.

    python -m lmc_utils.zoo plan --profile paper                 # every notebook's configs, cached?, hours
    python -m lmc_utils.zoo plan --profile paper 00 06 --json plan.json
    python -m lmc_utils.zoo train --profile paper --executor slurm --slurm-partition gpu
    python -m lmc_utils.zoo train --profile smoke --executor local --parallel 4
    python -m lmc_utils.zoo rekey                                # entries of equivalent earlier code: renamed

(``python -m lmc_utils.run.zoo_cli`` is the same command; ``lmc_utils/zoo/__main__.py`` hands ``-m`` over to it.)
``plan`` is :mod:`lmc_utils.zoo_plan`; ``train`` is :mod:`lmc_utils.cluster`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import yaml

from . import plan as zoo_plan
from .profiles import PROFILES, ProfileError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--profile", default="paper", help=f"one of {', '.join(PROFILES)} (default: paper)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override a notebook parameter, as for lmc_utils.run (VALUE is parsed as YAML)")
    parser.add_argument("--plan", type=Path, metavar="JSON",
                        help="read the plan from this file (written by plan --json) instead of a plan run")
    parser.add_argument("--threads", type=int, default=zoo_plan.DEFAULT_THREADS,
                        help="torch threads the notebooks will run with (lmc_utils.run --threads; part of a "
                             f"cache entry's name; default {zoo_plan.DEFAULT_THREADS}); train jobs use it too")


def main(argv: Sequence[str] | None = None) -> int:
    from .runner import RunError

    parser = argparse.ArgumentParser(prog="python -m lmc_utils.zoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    plan_p = sub.add_parser("plan", help="list the distinct training configs the notebooks request")
    _common(plan_p)
    plan_p.add_argument("--json", type=Path, metavar="FILE", help="also write the plan as JSON")
    plan_p.add_argument("--device", default="cuda", choices=sorted(zoo_plan.THROUGHPUT),
                        help="device type the models will train on: of the estimate and of the cache entries "
                             "looked for (default: cuda)")
    plan_p.add_argument("--throughput", type=float, metavar="FLOPS",
                        help="effective training FLOP/s of that device (default: zoo_plan.THROUGHPUT)")
    train_p = sub.add_parser("train", help="train every missing cache entry of the plan as independent jobs")
    _common(train_p)
    train_p.add_argument("--executor", choices=("local", "slurm"), default="local",
                         help="submitit executor: local processes or SLURM job arrays (default: local)")
    train_p.add_argument("--folder", type=Path, help="job logs and pickles (default: build/zoo-jobs/<profile>)")
    train_p.add_argument("--device", default=None,
                         help="device each job trains on: cpu | cuda (default: cuda on slurm, auto on local)")
    train_p.add_argument("--parallel", type=int, default=4, help="jobs running at once (default: 4)")
    train_p.add_argument("--timeout-min", type=int, default=24 * 60, help="per-job time limit in minutes")
    train_p.add_argument("--gpus-per-job", type=int, default=None, help="GPUs per job (default: 1 on slurm, 0 local)")
    train_p.add_argument("--cpus-per-job", type=int, default=None, help="CPU cores per job (slurm)")
    train_p.add_argument("--mem-gb", type=float, default=None, help="memory per job (slurm)")
    train_p.add_argument("--slurm-partition", default=None, help="SLURM partition")
    train_p.add_argument("--no-wait", action="store_true",
                         help="submit and exit (SLURM); run train again later to see what is still missing")
    train_p.add_argument("--slurm-arg", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                         help="any other submitit parameter, e.g. --slurm-arg slurm_account myacct")
    rekey_p = sub.add_parser("rekey", help="rename the cache entries that earlier, equivalent training code made "
                                           "(lmc_utils.zoo.store.EQUIVALENT_CODE) instead of retraining them")
    rekey_p.add_argument("--list", action="store_true", help="only list what would be renamed")
    args = parser.parse_args(argv)
    if args.command == "rekey":
        from .. import zoo

        renamed = zoo.rekey(apply=not args.list)
        for old, new in renamed:
            print(f"{old.name} -> {new.name}")
        print(f"{len(renamed)} cache entr{'y' if len(renamed) == 1 else 'ies'} "
              f"{'would be ' if args.list else ''}renamed to training code {zoo.code_digest()}")
        return 0
    try:
        params = {name: yaml.safe_load(value) for name, value in args.parameter}
        if args.command == "train" and args.device is None:
            args.device = "cuda" if args.executor == "slurm" else "auto"
        device_type = _device_type(args.device)
        if args.plan is not None:
            plan = zoo_plan.from_json(args.plan.read_text(encoding="utf-8"), device=device_type, threads=args.threads)
        else:
            plan = zoo_plan.record(args.profile, args.notebooks, params, device=device_type, threads=args.threads)
        if args.command == "plan":
            print(zoo_plan.render(plan, device=device_type, throughput=args.throughput))
            if args.json:
                from ..core.atomic import write_text

                write_text(args.json, zoo_plan.to_json(plan) + "\n")
                print(f"plan written to {args.json}")
            return 0
        from . import cluster

        extra = {name: yaml.safe_load(value) for name, value in args.slurm_arg}
        report = cluster.train_plan(plan, executor=args.executor, folder=args.folder, device=args.device,
                                    parallel=args.parallel, timeout_min=args.timeout_min,
                                    gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                                    mem_gb=args.mem_gb, partition=args.slurm_partition, threads=args.threads,
                                    extra=extra, wait=not args.no_wait)
        print(cluster.render(report))
        return 0 if all(j.state in ("done", "submitted") for j in report.jobs) else 1
    except (ProfileError, RunError, zoo_plan.PlanError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _device_type(device: str) -> str:
    """``cpu`` / ``cuda`` / ... of a device name; ``auto``: what this machine has."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device.split(":", 1)[0]


if __name__ == "__main__":
    sys.exit(main())
