"""Where a notebook's time goes: wall-clock seconds per phase (training, matching, curve evaluation, ...).

:func:`profile_notebook` runs a notebook's source (``notebooks/NN_topic.py``, the jupytext twin of the
``.ipynb``) as a script in this process, with the runner's settings (profile, threads, figures in a
scratch folder), and charges every moment to a **phase**: the phase of the innermost function on the
call stack that is one of the phase entry points of :data:`PHASES` (``sys.setprofile`` watches Python
calls and returns). Time outside every entry point (the study's own loops, the notebook's cells, imports)
is ``other``. A function of one phase called inside another is charged to its own phase: RESET inside
an interpolation curve is RESET, the forward passes around it are the curve's.

The profiler's own cost is part of the totals (each Python call costs a callback): compare ``total`` with
the notebook's run time without it (``--no-phases``) to see it; the shares are what the table is for.
``bench/profile_notebooks.py`` (``make profile``) writes the table.
"""

from __future__ import annotations

import importlib
import inspect
import runpy
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .runner import kernel_environment

# phase -> entry points: "module" (every function and method defined in it) or "module:function"
PHASES: dict[str, tuple[str, ...]] = {
    "training": ("lmc_utils.zoo.trainers",),
    "loading models": ("lmc_utils.zoo.store:_load", "lmc_utils.core.checkpoint"),
    "data": ("lmc_utils.core.data:load",),
    "matching": ("lmc_utils.matching.weight", "lmc_utils.matching.activation", "lmc_utils.matching.ste",
                 "lmc_utils.matching.sinkhorn", "lmc_utils.matching.merge"),
    "curve evaluation": ("lmc_utils.measure.interpolation:interpolation_curve",
                         "lmc_utils.measure.interpolation:batched_curves", "lmc_utils.measure.interpolation:plane_grid",
                         "lmc_utils.measure.evaluation"),
    "RESET / REPAIR statistics": ("lmc_utils.measure.interpolation:reset_batchnorm", "lmc_utils.measure.renorm",
                                  "lmc_utils.measure.activations"),
    "Taylor (gradients, HVPs)": ("lmc_utils.measure.taylor",),
    "spectra (SVDs)": ("lmc_utils.measure.spectral",),
    "pruning": ("lmc_utils.measure.pruning",),
    "analysis cache": ("lmc_utils.core.memo",),  # fingerprints, loading and storing results (lmc_utils.core.memo)
    "verdicts and tables": ("lmc_utils.claims",),
    "plotting and writing": ("lmc_utils.figures",),
}
OTHER = "other"


def _functions(module) -> Iterator:
    for obj in vars(module).values():
        if inspect.isfunction(obj) and obj.__module__ == module.__name__:
            yield obj
        elif inspect.isclass(obj) and obj.__module__ == module.__name__:
            for member in vars(obj).values():
                member = getattr(member, "__func__", member)  # static and class methods
                if inspect.isfunction(member):
                    yield member


def entry_codes(phases: Mapping[str, Sequence[str]] = PHASES) -> dict:
    """Code object -> phase, for every entry point of ``phases`` (a package name covers its modules)."""
    codes = {}
    for phase, entries in phases.items():
        for entry in entries:
            name, _, function = entry.partition(":")
            module = importlib.import_module(name)
            modules = [module]
            if hasattr(module, "__path__"):  # a package: every module of it
                modules += [importlib.import_module(f"{name}.{p.stem}") for p in sorted(Path(module.__path__[0]).glob("*.py"))
                            if p.stem not in ("__init__", "__main__")]
            for m in modules:
                for f in ([getattr(m, function)] if function else _functions(m)):
                    codes[inspect.unwrap(f).__code__] = phase
    return codes


@dataclass
class PhaseClock:
    """Charges wall-clock time to the phase of the innermost entry point on the stack (see the module)."""

    codes: dict
    seconds: dict[str, float] = field(default_factory=dict)
    _stack: list = field(default_factory=list)  # (frame, phase) of the entry points being run
    _last: float = 0.0

    def _charge(self) -> None:
        now = time.perf_counter()
        phase = self._stack[-1][1] if self._stack else OTHER
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now

    def __call__(self, frame, event, arg) -> None:
        if event == "call":
            phase = self.codes.get(frame.f_code)
            if phase is not None:
                self._charge()
                self._stack.append((frame, phase))
        elif event == "return" and self._stack and self._stack[-1][0] is frame:
            self._charge()
            self._stack.pop()

    @contextmanager
    def running(self) -> Iterator["PhaseClock"]:
        self._last = time.perf_counter()
        sys.setprofile(self)
        try:
            yield self
        finally:
            sys.setprofile(None)
            self._charge()


def profile_notebook(source: Path, profile: str, figures: Path, threads: int, phases: bool = True) -> dict[str, float]:
    """Run ``source`` (a notebook's ``.py``) at ``profile`` with ``threads`` torch threads, figures and
    tables into ``figures``, and return seconds per phase (``total`` among them; with ``phases=False``
    only ``total``, without the profiler's cost). The model cache is ``LMC_CACHE_DIR`` as set."""
    import matplotlib
    import torch

    matplotlib.use("Agg")
    code = Path(source).read_text(encoding="utf-8").replace('profile: str = "cpu"', f'profile: str = "{profile}"', 1)
    torch.set_num_threads(threads)
    clock = PhaseClock(entry_codes() if phases else {})
    script = Path(figures) / f"{Path(source).stem}.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(code, encoding="utf-8")
    start = time.perf_counter()
    with kernel_environment(threads, figures_base=Path(figures)):  # what the runner gives its kernels
        try:
            if phases:
                with clock.running():
                    runpy.run_path(str(script), run_name="__main__")
            else:
                runpy.run_path(str(script), run_name="__main__")
        finally:
            import matplotlib.pyplot as plt

            plt.close("all")
    out = dict(clock.seconds)
    out["total"] = time.perf_counter() - start
    return out
