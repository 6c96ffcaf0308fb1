"""The zoo plan: every model the notebooks of a profile will ask the zoo for, and what training it costs.

Which models a notebook needs follows from its parameters, but only through the study code that
turns them into :class:`~lmc_utils.zoo.TrainConfig` objects (seeds per pair, widths, spawned
parents, SWA runs, ...). Rather than restating that logic, :func:`record` *executes* the
notebooks through the normal runner in a **plan run**: the notebooks resolve their parameters as
in a real run (no dry-run caps on them, so every config is the real one), but the zoo trains
nothing: :func:`lmc_utils.run.profiles.resolve` switches the kernel's store to recording
(:func:`lmc_utils.zoo.record_requests`), which writes each requested config (and the parents a real
:func:`~lmc_utils.zoo.get` would train first) to a request file and answers with an *untrained* model of
that config, shaped as training returns it (:mod:`lmc_utils.zoo.requests`). Everything after training runs on a few examples, as in a dry run
(:func:`lmc_utils.dry_run.split_examples`, capped weight-matching sweeps, CIFAR-shaped ``FakeData``
where CIFAR is absent), so a plan run of the paper profile needs no GPU and no dataset; its numbers
mean nothing and go to a scratch folder.

The plan is exact by construction (the configs are those the study code builds from the
parameters); ``tests/test_zoo_plan.py`` checks it against the cache entries a real smoke run makes.

Kinds of requests: ``cached`` (through ``get``/``get_many``: a cache entry, what
:mod:`lmc_utils.cluster` trains ahead) and ``uncached`` (``zoo.train`` called directly, e.g. notebook
04's re-training from matched starts: trained inside the notebook every run; listed for the compute
estimate only).

Compute estimate: per config, ``(epochs + swa_epochs) x`` the examples per epoch ``x 3 x`` the
forward multiply-adds of one example (counted by forward hooks on the untrained model, so it
follows the architecture and width) ``x 2`` FLOPs, divided by the effective training throughput
of the device (:data:`THROUGHPUT`, or ``--throughput``). The throughputs are stated, not universal:
measure yours with ``bench/bench_epoch.py`` (it prints the effective FLOP/s of a ResNet20 epoch).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import dry_run
from ..core import settings
from ..core.settings import DEFAULT_THREADS  # on a busy machine --threads 1 is faster

# Effective training throughput (FLOP/s, forward + backward counted as 3x forward) by device type.
# cpu: measured with bench/bench_epoch.py (ResNet20 x1, batch 128, float32, 1 thread on a busy
# 2-core machine: 1.1e10; an idle core does several times better). cuda: an assumption (about 15% of
# an H100's dense bf16 peak, plausible for small conv nets at batch 128), not a measurement: replace
# it with bench/bench_epoch.py's figure on your GPU (or pass --throughput).
THROUGHPUT = {"cpu": 1.1e10, "cuda": 1.5e14}
THROUGHPUT_SOURCE = {"cpu": "measured with bench/bench_epoch.py on 1 busy CPU core",
                     "cuda": "assumed, not measured: run bench/bench_epoch.py on the GPU, pass --throughput"}
TRAIN_EXAMPLES = {"moons": 1000, "mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000}


class PlanError(RuntimeError):
    """A plan run failed (a notebook raised), or a request file is unreadable."""


# --------------------------------------------------------------------------- the plan (runner side)

@dataclass
class Entry:
    """One distinct training config of a plan: its cache key, the notebooks asking for it, whether
    it is a cache entry (``cached``) or trained inside the notebook (``uncached``), and whether a
    valid cache entry for this environment is already there (``in_cache``)."""

    key: str
    config: dict[str, Any]
    kind: str
    notebooks: list[str] = field(default_factory=list)
    requests: int = 0
    in_cache: bool = False
    flops: float = 0.0

    @property
    def train_config(self):
        from ..zoo import TrainConfig

        return TrainConfig.from_dict(self.config)


@dataclass
class Plan:
    """The distinct configs of a plan run (:func:`record`), in first-request order."""

    profile: str
    notebooks: list[str]
    entries: list[Entry]

    def cached(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "cached"]

    def missing(self) -> list[Entry]:
        """Cache entries still to train (parents before their children: first-request order)."""
        return [e for e in self.cached() if not e.in_cache]

    def keys(self) -> set[str]:
        return {e.key for e in self.cached()}


def read_requests(path: Path) -> list[dict[str, Any]]:
    """The request lines a plan run wrote (empty when nothing was requested)."""
    if not Path(path).exists():
        return []
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise PlanError(f"{path}:{n}: not a request line ({err})") from err
    return rows


def collect(profile: str, notebooks: Sequence[str], requests: Iterable[dict[str, Any]],
            device: str = "cpu", threads: int = DEFAULT_THREADS) -> Plan:
    """Merge request lines into distinct entries (by cache key; a config asked for by several
    notebooks is listed once, with all of them), check which are in the cache for ``device`` (a
    device type) and ``threads`` (:func:`in_cache`) and count their FLOPs."""
    entries: dict[tuple[str, str], Entry] = {}
    for r in requests:
        e = entries.setdefault((r["kind"], r["key"]), Entry(key=r["key"], config=r["config"], kind=r["kind"]))
        e.requests += 1
        if r["notebook"] not in e.notebooks:
            e.notebooks.append(r["notebook"])
    for e in entries.values():
        cfg = e.train_config
        e.in_cache = e.kind == "cached" and in_cache(cfg, device, threads)
        e.flops = training_flops(cfg)
    return Plan(profile=profile, notebooks=list(notebooks), entries=list(entries.values()))


def in_cache(config, device: str = "cpu", threads: int = DEFAULT_THREADS) -> bool:
    """Whether the cache (``LMC_CACHE_DIR``) holds a valid entry of ``config`` for notebooks that
    will run on ``device`` (``cpu``, ``cuda``, ...; this machine need not have it) at ``threads``
    torch threads: :func:`lmc_utils.zoo.checkpoint_path` and the checkpoint's own verification."""
    import torch

    from .. import zoo
    from ..core.checkpoint import CorruptCheckpoint, load_checkpoint

    dev = torch.device(device)
    saved, saved_env = torch.get_num_threads(), os.environ.get(settings.THREADS)
    os.environ[settings.THREADS] = str(threads)  # zoo.environment() applies it
    try:
        torch.set_num_threads(threads)
        path, env = zoo.checkpoint_path(config, dev), zoo.environment(dev)
    finally:
        if saved_env is None:
            os.environ.pop(settings.THREADS, None)
        else:
            os.environ[settings.THREADS] = saved_env
        torch.set_num_threads(saved)
    if not path.exists():
        return False
    try:
        load_checkpoint(path, expect_meta={"key": config.key, "env": env})
    except (CorruptCheckpoint, OSError):
        return False
    return True


def from_json(text: str, device: str = "cpu", threads: int = DEFAULT_THREADS) -> Plan:
    """A plan written by :func:`to_json`, with ``in_cache`` checked again (the cache may have grown)."""
    d = json.loads(text)
    requests = [{"notebook": n, "kind": e["kind"], "key": e["key"], "config": e["config"]}
                for e in d["entries"] for n in e["notebooks"]]
    return collect(d["profile"], d["notebooks"], requests, device=device, threads=threads)


def record(profile: str, names: Sequence[str] = (), parameters: dict[str, Any] | None = None,
           device: str = "cpu", threads: int = DEFAULT_THREADS, root: Path | None = None) -> Plan:
    """Run ``names`` (default: all) at ``profile`` as a plan run (module docstring) in a scratch
    folder (``root``, default a fresh one under ``build/plan/``, removed afterwards) and return the
    :class:`Plan`, with ``in_cache`` checked against the user's cache (``LMC_CACHE_DIR``) for
    notebooks on ``device`` at ``threads`` threads (:func:`in_cache`). The plan run itself uses
    one thread per kernel.
    Raises :class:`PlanError` if a notebook failed (the plan would be incomplete)."""
    from . import runner as run_mod
    from ..core.paths import build_dir

    keep = root is not None
    if root is None:
        (build_dir() / "plan").mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f"{profile}-", dir=build_dir() / "plan"))
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    requests = root / "requests.jsonl"
    requests.unlink(missing_ok=True)
    try:
        rows = run_mod.run(profile, names, parameters, resume=False, threads=1, figures_base=root / "figures",
                           kernel_variables=dry_run.plan_variables(requests, root / "cache"))
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            keep = True  # the partial notebooks say what went wrong
            raise PlanError("plan run failed for " + "; ".join(f"{r['notebook']}: {r['status']}" for r in failed)
                            + f" (executed notebooks in {root / 'figures' / 'executed'})")
        return collect(profile, [r["notebook"] for r in rows], read_requests(requests), device=device,
                       threads=threads)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- compute estimate

def forward_macs(config) -> int:
    """Multiply-adds of one forward pass of one example through ``config``'s model (linear and
    convolution layers; normalisations and activations are not counted)."""
    import torch
    from torch import nn

    from .. import zoo

    model = zoo.build_model(config).eval()
    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Linear):
            total[0] += module.in_features * module.out_features * (output.numel() // module.out_features)
        elif isinstance(module, nn.Conv2d):
            per_out = (module.in_channels // module.groups) * math.prod(module.kernel_size)
            total[0] += output.numel() * per_out

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *zoo.INPUT_SHAPES[config.dataset]))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def training_flops(config) -> float:
    """FLOPs to train ``config``: epochs (with SWA epochs) x examples x 3 x 2 x :func:`forward_macs`
    (a child of a spawned parent counts its own epochs; the parent is its own entry)."""
    examples = config.train_subset or TRAIN_EXAMPLES[config.dataset]
    if config.dataset == "moons":
        examples = min(examples, TRAIN_EXAMPLES["moons"])
    return float(config.epochs + config.swa_epochs) * examples * 6.0 * forward_macs(config)


# --------------------------------------------------------------------------- report

def describe_model(config: dict[str, Any]) -> str:
    model = config.get("model") or {}
    width = model.get("width_multiplier", model.get("width"))
    extra = ", ".join(f"{k}={v}" for k, v in sorted(model.items()) if k not in ("width", "width_multiplier"))
    return f"{config['arch']}" + (f" x{width}" if width is not None else "") + (f" ({extra})" if extra else "")


def render(plan: Plan, device: str = "cuda", throughput: float | None = None) -> str:
    """The plan as text: one line per distinct config (key, architecture, dataset, seed, epochs,
    cached or not, notebooks), a per-architecture table (configs, epochs, estimated seconds per
    epoch and in all on ``device``) and the totals."""
    rate = throughput or THROUGHPUT[device]
    source = "given (--throughput)" if throughput else THROUGHPUT_SOURCE[device]
    lines = [f"zoo plan: profile {plan.profile}, notebooks {', '.join(plan.notebooks)}", ""]
    lines.append(f"{'key':<16}  {'model':<34} {'dataset':<13} {'seed':>5} {'epochs':>7}  {'cached':<6}  notebooks")
    for e in plan.entries:
        c = e.config
        epochs = f"{c['epochs']}" + (f"+{c['swa_epochs']}" if c.get("swa_epochs") else "")
        state = ("yes" if e.in_cache else "no") if e.kind == "cached" else "never"
        lines.append(f"{e.key[:16]:<16}  {describe_model(c):<34.34} {c['dataset']:<13} {c['seed']:>5} {epochs:>7}  "
                     f"{state:<6}  {', '.join(n.split('_', 1)[0] for n in e.notebooks)}"
                     + (" (from a parent)" if c.get("parent") else ""))
    lines += ["", f"estimate on {device} at {rate:.3g} FLOP/s ({source}):",
              f"{'model':<34} {'dataset':<13} {'configs':>7} {'missing':>7} {'epochs':>8} {'s/epoch':>9} {'hours':>9}"]
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in plan.entries:
        groups.setdefault((describe_model(e.config), e.config["dataset"]), []).append(e)
    total = missing_total = 0.0
    for (model, dataset), es in groups.items():
        epochs = sum(e.config["epochs"] + e.config.get("swa_epochs", 0) for e in es)
        flops = sum(e.flops for e in es)
        todo = [e for e in es if e.kind == "uncached" or not e.in_cache]
        total += flops
        missing_total += sum(e.flops for e in todo)
        per_epoch = flops / max(1, epochs) / rate
        lines.append(f"{model:<34.34} {dataset:<13} {len(es):>7} {len(todo):>7} {epochs:>8} {per_epoch:>9.3g} "
                     f"{flops / rate / 3600:>9.3g}")
    cached = plan.cached()
    lines += ["", f"{len(cached)} cache entries ({len(plan.missing())} missing), "
                  f"{len(plan.entries) - len(cached)} uncached trainings (inside the notebooks); "
                  f"estimated {total / rate / 3600:.3g} h in all, {missing_total / rate / 3600:.3g} h still to train"]
    return "\n".join(lines)


def to_json(plan: Plan) -> str:
    """The plan as JSON (what ``plan --json`` writes and ``train`` can read back)."""
    return json.dumps({"profile": plan.profile, "notebooks": plan.notebooks,
                       "entries": [{"key": e.key, "kind": e.kind, "notebooks": e.notebooks, "requests": e.requests,
                                    "in_cache": e.in_cache, "flops": e.flops, "config": e.config}
                                   for e in plan.entries]}, indent=1)

