"""Check a permutation spec on a model: the test every spec, hand-written or traced, should pass.

The questions users of re-basin tools ask most are "the permuted model is not the same function"
and "weight matching does not undo a permutation I planted" (a wrong residual or head spec).
:func:`verify_spec` answers both on the user's own model, before any matching of trained models:

1. **Function preserved**: every group of the spec permuted at random (seed ``seed``) must leave the
   model's outputs unchanged on an example batch, up to a tolerance set by the dtype (in eval mode,
   so BatchNorm uses its running statistics).
2. **Planted permutation recovered**: weight matching between the model and its permuted copy must
   return exactly the inverse of the planted permutation, group by group. By default both are the model
   with every parameter redrawn from N(0, 1) (seeded), and the coordinate ascent starts where each
   group's one-axis entries alone put it (biases, norm scales and shifts, depthwise filters: one
   assignment each, which on generic weights is already exact wherever a group has such entries): the
   check is of the spec. From the identity, weight matching's coordinate ascent can stop at a local
   optimum whatever the spec: on MobileNetV2 (generic weights included) each wide expansion group
   finds, among its hundreds of units, partners that fit a wrongly permuted narrow residual stream
   better than its own few one-axis terms fit the right one. ``planted_on="model"`` checks on the
   model's own weights from the identity, as weight matching runs on trained models; the report then
   tells a local optimum (objective below the planted one's) from a wrong spec.
3. **What no group permutes**: the state entries (parameters and buffers) the spec leaves alone,
   listed for a person to check (such as the classifier's bias); integer counters such as
   ``num_batches_tracked`` are only counted.

It returns a :class:`SpecReport` and raises nothing on a model whose spec fails or cannot be built:
the report says what failed (``report.ok`` is the overall answer; ``print(report)`` reads it out).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from ..permutation import (PermutationSpec, UnsupportedModel, apply_permutation, default_example_input, inverse,
                           random_permutation, spec_for)
from .common import _matched_keys, assignment
from .weight import weight_matching

# Relative tolerance on the largest output magnitude, by dtype: a permutation only re-orders sums,
# so the outputs differ by rounding alone.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


@dataclass
class SpecReport:
    """What :func:`verify_spec` found. ``ok``: the function is preserved and the planted permutation
    recovered exactly. ``error``: why the checks could not run (no spec could be built, or it does not
    fit the model's state dict); then ``ok`` is false and the other fields are empty."""

    model: str
    groups: dict[str, int] = field(default_factory=dict)  # group -> units
    output_difference: float = float("nan")  # largest |output change| / largest |output|
    sensitive: bool = True  # the outputs change when the permuted parameters do (else no permutation can show)
    tolerance: float = float("nan")
    wrong_units: dict[str, int] = field(default_factory=dict)  # group -> units matching put elsewhere
    objective: float = float("nan")  # weight matching's objective sum <A, pi(B)> where it stopped
    planted_objective: float = float("nan")  # the objective at the planted permutation's inverse (its maximum)
    planted_on: str = "generic"  # the weights of the planted check: "generic" (N(0, 1)) or "model"
    unpermuted: list[str] = field(default_factory=list)  # floating-point state entries no group permutes
    counters: int = 0  # integer state entries (BatchNorm's num_batches_tracked), never permuted
    error: str = ""

    @property
    def function_preserved(self) -> bool:
        return not self.error and self.sensitive and self.output_difference <= self.tolerance

    @property
    def planted_recovered(self) -> bool:
        return not self.error and bool(self.groups) and not any(self.wrong_units.values())

    @property
    def ok(self) -> bool:
        return self.function_preserved and self.planted_recovered

    def __str__(self) -> str:
        head = f"permutation spec of {self.model}: {'OK' if self.ok else 'FAILED'}"
        if self.error:
            return f"{head}\n  the checks could not run: {self.error}"
        units = sum(self.groups.values())
        lines = [head, f"  {len(self.groups)} permutation groups, {units} units in all"]
        if not self.sensitive:
            lines.append("  the outputs do not change when the permuted parameters do (a zero-initialised last "
                         "layer, as torchvision's ViT head?), so no permutation could change them: give the model "
                         "non-zero output weights to check it")
        else:
            lines.append("  outputs under a random permutation of every group: "
                         + ("unchanged" if self.function_preserved else "CHANGED")
                         + f" (largest change {self.output_difference:.2e} of the largest output; "
                           f"tolerance {self.tolerance:.0e})")
        wrong = {g: n for g, n in self.wrong_units.items() if n}
        if wrong:
            listed = ", ".join(f"{g}: {n} of {self.groups[g]}" for g, n in list(wrong.items())[:8])
            lines.append(f"  planted permutation NOT recovered by weight matching, units misplaced per group: "
                         f"{listed}{' ...' if len(wrong) > 8 else ''}")
            if self.objective < self.planted_objective * (1 - 1e-6):
                lines.append(f"    weight matching stopped at a local optimum: objective {self.objective:.6g} against "
                             f"{self.planted_objective:.6g} at the planted permutation (its coordinate ascent, "
                             f"not necessarily the spec)")
            else:
                lines.append("    at the planted permutation's objective: some units are interchangeable (equal "
                             "weights), or a group permutes less than the function allows")
        else:
            lines.append("  planted permutation recovered exactly by weight matching"
                         + (" (on generic N(0, 1) weights)" if self.planted_on == "generic" else " (on the model's weights)"))
        shown = ", ".join(self.unpermuted[:12]) + (f" ... ({len(self.unpermuted)} in all)"
                                                   if len(self.unpermuted) > 12 else "")
        lines.append(f"  entries no group permutes: {shown or 'none'}"
                     + (f" (and {self.counters} integer counters such as num_batches_tracked)" if self.counters else ""))
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return "```\n" + str(self) + "\n```"


def report_tolerance(outputs: list[torch.Tensor]) -> float:
    """The relative tolerance of the outputs' dtype (:data:`TOLERANCE`)."""
    return TOLERANCE.get(outputs[0].dtype if outputs else torch.float32, 1e-4)


def _outputs(model: nn.Module, x) -> list[torch.Tensor]:
    """Every floating-point tensor the model returns for ``x`` (a tensor, or a tuple / dict of them)."""
    with torch.no_grad():
        out = model(*x) if isinstance(x, tuple) else model(x)
    stack, found = [out], []
    while stack:
        o = stack.pop()
        if isinstance(o, torch.Tensor):
            if o.is_floating_point():
                found.append(o.detach())
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
    return found


def _one_axis_start(spec: PermutationSpec, state_a, state_b) -> dict[str, torch.Tensor]:
    """Per group, the assignment of B's units to A's from the entries it alone permutes (one permuted
    axis: biases, norm parameters, depthwise filters; its stretch of a concatenated axis); the identity
    for a group without such entries. A group with one such vector (a Linear's bias) is matched by
    sorting (the rearrangement inequality), which a dense assignment would solve slowly."""
    va, vb = spec.viewed(state_a), spec.viewed(state_b)
    keys = set(_matched_keys(spec, va, include_buffers=False))
    start = {}
    for g, stretches in spec.segments.items():
        n = spec.sizes[g]
        fa, fb = [], []
        for key, axis, offset, units, sel in stretches:
            if key not in keys or sum(a is not None for a in spec.axes[key]) != 1:
                continue
            a = va[key].double().movedim(axis, 0)[offset:offset + units].reshape(units, -1)
            b = vb[key].double().movedim(axis, 0)[offset:offset + units].reshape(units, -1)
            if sel is not None:  # this stretch holds some of the group's units
                a, b = (torch.zeros(n, x.shape[1], dtype=x.dtype).index_copy(0, sel.cpu(), x) for x in (a, b))
            fa.append(a)
            fb.append(b)
        if not fa:
            start[g] = torch.arange(n)
            continue
        a, b = torch.cat(fa, 1), torch.cat(fb, 1)
        if a.shape[1] == 1 and spec.structure(g) == (1, 1):
            q = torch.empty(n, dtype=torch.long)
            q[torch.argsort(a[:, 0])] = torch.argsort(b[:, 0])
            start[g] = q
        else:
            start[g] = torch.as_tensor(assignment((a @ b.T).numpy(), *spec.structure(g)), dtype=torch.long)
    return start


def verify_spec(model: nn.Module, spec: PermutationSpec | None = None, example_input=None,
                seed: int = 0, planted_on: str = "generic") -> SpecReport:
    """Check ``spec`` (default: :func:`lmc_utils.permutation.spec_for` of ``model``) on ``model``:
    outputs unchanged under a random permutation of every group, a planted permutation recovered
    exactly by weight matching, and the state entries no group permutes (see the module docstring).

    Args:
        model: any ``nn.Module`` (not modified; checked in eval mode on a copy).
        spec: the spec to check; ``None`` builds it with ``spec_for`` (an ``UnsupportedModel`` from
            tracing is reported, not raised).
        example_input: a batch the model accepts (a tensor, or a tuple of positional arguments);
            default: :func:`lmc_utils.permutation.default_example_input`.
        seed: seed of the random permutations (and of the generic weights).
        planted_on: ``"generic"`` (default): the planted check runs on the model's parameters redrawn
            from N(0, 1); ``"model"``: on its own weights (see the module docstring).
    Returns:
        a :class:`SpecReport`; ``print`` it, or test ``report.ok``.
    """
    name = type(model).__name__
    if planted_on not in ("generic", "model"):
        raise ValueError(f"planted_on must be 'generic' or 'model', got {planted_on!r}")
    try:
        spec = spec if spec is not None else spec_for(model, example_input)
        if example_input is not None:
            x = example_input
        else:
            with torch.random.fork_rng(devices=[]):  # the same batch on every call, the caller's RNG untouched
                torch.manual_seed(seed)
                x = default_example_input(model)
        own = model.state_dict()
        state = OrderedDict((k, v.detach().clone()) for k, v in own.items())
        if hasattr(own, "_metadata"):  # versions some loaders need (torchvision's MNASNet)
            state._metadata = own._metadata
        planted = random_permutation(spec, seed)
        permuted = apply_permutation(spec, planted, state)
    except (UnsupportedModel, ValueError, KeyError) as err:
        return SpecReport(model=name, error=f"{type(err).__name__}: {err}")
    fixed = [k for k in state if all(g is None for g in spec.axes.get(k, ()))]
    report = SpecReport(model=name, groups=dict(spec.sizes), planted_on=planted_on,
                        unpermuted=sorted(k for k in fixed if state[k].is_floating_point()),
                        counters=sum(not state[k].is_floating_point() for k in fixed))
    a = copy.deepcopy(model).eval()
    b = copy.deepcopy(model).eval()
    b.load_state_dict(permuted)
    before, after = _outputs(a, x), _outputs(b, x)
    scale = max((float(t.abs().max()) for t in before if t.numel()), default=0.0)
    diff = max((float((u - v).abs().max()) for u, v in zip(before, after) if u.numel()), default=0.0)
    report.output_difference = diff / scale if scale > 0 else diff
    # a copy whose permuted parameters are each moved by 10%: the outputs must follow, or no check can fail
    gen = torch.Generator().manual_seed(seed)
    moved = OrderedDict((k, v * (1 + 0.1 * torch.randn(v.shape, generator=gen).to(v))
                         if v.is_floating_point() and k not in fixed and k not in spec.buffers else v)
                        for k, v in state.items())
    moved._metadata = getattr(state, "_metadata", None)
    b.load_state_dict(moved)
    shaken = _outputs(b, x)
    change = max((float((u - v).abs().max()) for u, v in zip(before, shaken) if u.numel()), default=0.0)
    report.sensitive = change > 10 * report_tolerance(before) * max(scale, 1e-30)
    report.tolerance = report_tolerance(before)
    if planted_on == "generic":
        gen = torch.Generator().manual_seed(seed)
        state = {k: torch.randn(v.shape, generator=gen).to(v) if v.is_floating_point() and k not in spec.buffers
                 else v for k, v in state.items()}  # used for matching only, never loaded
        permuted = apply_permutation(spec, planted, state)
    start = _one_axis_start(spec, state, permuted) if planted_on == "generic" else None
    result = weight_matching(spec, state, permuted, seed=seed, init_perm=start)
    expected = inverse(planted)
    report.wrong_units = {g: int((result.perm[g].cpu() != expected[g].cpu()).sum()) for g in spec.sizes}
    viewed = spec.viewed(state)
    report.objective = float(result.objective[-1]) if result.objective else float("nan")
    report.planted_objective = float(sum(float(viewed[k].double().pow(2).sum())
                                         for k in _matched_keys(spec, viewed, include_buffers=False)))
    return report
