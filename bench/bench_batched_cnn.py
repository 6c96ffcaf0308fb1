"""Would a batched trainer pay for the VGG stand-ins? Training steps of 8 VGG11 x 1/8 on FashionMNIST,
one model at a time (as ``zoo.train`` runs them) against all 8 at once, two ways: through ``torch.func``
(stacked weights, ``vmap`` over models) and as one network of grouped convolutions (one group per model,
the stacked-weights design issue #38 suggests).

Issue #38 asks for the ratio before a batched CNN trainer is built. Measured per optimisation step
(batch 128 per model, Adam), after a warm-up, in one process, all ways on the same data. BatchNorm
models are run with per-batch statistics only in the vmap arm (``vmap`` cannot update running
statistics in place), so that row is an upper bound on its speed. The grouped arm checks that the
stacked network computes the same function as the 8 models (logits within float tolerance) before
it is timed. Writes ``bench/batched_cnn.md``::

    python bench/bench_batched_cnn.py --threads 2
"""

from __future__ import annotations

import argparse
import copy
import platform
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from lmc_utils import zoo
from lmc_utils.core import data as data_mod
from lmc_utils.core.device import place


def models(norm: str, n: int) -> list[torch.nn.Module]:
    config = zoo.TrainConfig(dataset="fashion_mnist", arch="vgg",
                             model={"config": "vgg11", "norm": norm, "width_multiplier": 0.125})
    return [place(zoo.build_model(config.replace(seed=s)), "cpu").train() for s in range(n)]


def one_by_one(nets, xs, ys, steps: int) -> float:
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3, fused=True) for m in nets]
    t0 = time.perf_counter()
    for step in range(steps):
        for m, opt, x, y in zip(nets, opts, xs[step], ys[step]):
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return (time.perf_counter() - t0) / steps


def batched(nets, xs, ys, steps: int) -> float:
    base = copy.deepcopy(nets[0]).to("meta")
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in base.modules()):
        torch.func.replace_all_batch_norm_modules_(base)  # per-batch statistics: vmap cannot update buffers
    params, buffers = stack_module_state(nets)
    params = {k: v.detach().contiguous().requires_grad_() for k, v in params.items()}
    buffers = {k: v for k, v in buffers.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    opt = torch.optim.Adam(list(params.values()), lr=1e-3, fused=True)

    def loss(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    step_grad = vmap(grad(loss), in_dims=(0, 0, 0, 0))
    t0 = time.perf_counter()
    for step in range(steps):
        g = step_grad(params, buffers, torch.stack(xs[step]), torch.stack(ys[step]))
        for k, v in params.items():
            v.grad = g[k]
        opt.step()
    return (time.perf_counter() - t0) / steps


class GroupedVGG(torch.nn.Module):
    """``len(nets)`` VGGs as one network of grouped convolutions: model j owns channels
    ``[j * c, (j + 1) * c)`` of every layer, so its BatchNorm (running statistics included) and its
    per-pixel LayerNorm see only its own channels; inputs are stacked along the channel axis
    (one batch per model), the heads are one batched product."""

    def __init__(self, nets):
        super().__init__()
        m, first = len(nets), nets[0]
        self.m, self.norm, self.pool_after = m, first.norm, list(first.pool_after)
        self.convs, self.norms = torch.nn.ModuleList(), torch.nn.ModuleList()
        for i, block in enumerate(first.features):
            c = block.conv
            conv = torch.nn.Conv2d(c.in_channels * m, c.out_channels * m, 3, padding=1, groups=m,
                                   bias=c.bias is not None)
            with torch.no_grad():
                conv.weight.copy_(torch.cat([n.features[i].conv.weight for n in nets]))
                if c.bias is not None:
                    conv.bias.copy_(torch.cat([n.features[i].conv.bias for n in nets]))
            self.convs.append(conv)
            if self.norm == "batchnorm":
                bn = torch.nn.BatchNorm2d(c.out_channels * m)
                with torch.no_grad():
                    bn.weight.copy_(torch.cat([n.features[i].norm.weight for n in nets]))
                    bn.bias.copy_(torch.cat([n.features[i].norm.bias for n in nets]))
                self.norms.append(bn)
            else:
                ln = torch.nn.Module()
                ln.weight = torch.nn.Parameter(torch.stack([n.features[i].norm.weight.detach() for n in nets]))
                ln.bias = torch.nn.Parameter(torch.stack([n.features[i].norm.bias.detach() for n in nets]))
                self.norms.append(ln)
        self.head_w = torch.nn.Parameter(torch.stack([n.classifier.weight.detach() for n in nets]))  # [m, K, C]
        self.head_b = torch.nn.Parameter(torch.stack([n.classifier.bias.detach() for n in nets]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [m, B, C0, H, W] -> logits [m, B, K]
        m, b = x.shape[:2]
        x = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])
        for conv, norm, pool in zip(self.convs, self.norms, self.pool_after):
            x = conv(x)
            if self.norm == "batchnorm":
                x = norm(x)
            else:
                h = x.permute(0, 2, 3, 1).reshape(b, x.shape[2], x.shape[3], m, -1)
                h = F.layer_norm(h, (h.shape[-1],)) * norm.weight + norm.bias
                x = h.reshape(b, x.shape[2], x.shape[3], -1).permute(0, 3, 1, 2)
            x = F.relu(x)
            if pool:
                x = F.max_pool2d(x, 2)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1).view(b, m, -1).transpose(0, 1)  # [m, B, C]
        return torch.baddbmm(self.head_b.unsqueeze(1), x, self.head_w.transpose(1, 2))


def grouped(nets, xs, ys, steps: int) -> float:
    net = GroupedVGG(nets).train()
    with torch.no_grad():  # the same function as the models it stacks (batch statistics in both)
        x = torch.stack(xs[0])
        want = torch.stack([copy.deepcopy(n)(xi) for n, xi in zip(nets, x)])
        got = GroupedVGG(nets).train()(x)
        if not torch.allclose(got, want, atol=1e-3, rtol=1e-3):  # float rounding through 8 normalised layers
            raise AssertionError(f"grouped VGG differs from its models by {float((got - want).abs().max()):.2e}")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    t0 = time.perf_counter()
    for step in range(steps):
        x, y = torch.stack(xs[step]), torch.stack(ys[step])
        logits = net(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def zoo_batched(norm: str, n: int, steps: int) -> float:
    """Seconds per optimisation step of all ``n`` models through the zoo's own batched trainer
    (:func:`lmc_utils.zoo.train_many`, grouped convolutions in fixed slots; LayerNorm only), from its
    recorded epoch time on ``steps`` batches of 128 per model (one warm-up epoch first)."""
    config = zoo.TrainConfig(dataset="fashion_mnist", arch="vgg", trainer="batched", batch_size=128, epochs=1,
                             model={"config": "vgg11", "norm": norm, "width_multiplier": 0.125},
                             optimizer="adam", lr=1e-3, train_subset=128 * steps)
    zoo.train_many([config.replace(seed=s, train_subset=256) for s in range(n)], progress=False)
    trained = zoo.train_many([config.replace(seed=s) for s in range(n)], progress=False)
    return trained[0].history[-1]["seconds"] * n / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = data_mod.load("fashion_mnist", "train", subset=128 * args.models * (args.steps + 2))
    chunks = train.x.split(128), train.y.split(128)
    per_step = lambda k: ([c for c in chunks[0][k * args.models:(k + 1) * args.models]],  # noqa: E731
                          [c for c in chunks[1][k * args.models:(k + 1) * args.models]])
    xs, ys = zip(*[per_step(k) for k in range(args.steps + 2)])
    rows = []
    for norm in ("batchnorm", "layernorm"):
        nets = models(norm, args.models)
        one_by_one(nets, xs[:2], ys[:2], 2)  # warm-up
        single = one_by_one(nets, xs[2:], ys[2:], args.steps)
        nets = models(norm, args.models)
        batched(nets, xs[:2], ys[:2], 2)
        together = batched(nets, xs[2:], ys[2:], args.steps)
        nets = models(norm, args.models)
        grouped(nets, xs[:2], ys[:2], 2)
        convs = grouped(nets, xs[2:], ys[2:], args.steps)
        trainer = zoo_batched(norm, args.models, args.steps) if norm == "layernorm" else float("nan")
        rows.append((norm, single, together, convs, trainer))
        print(norm, f"one by one {single:.3f} s/step, vmap {together:.3f} s/step, grouped convolutions {convs:.3f} s/step",
              flush=True)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = ["# Batched CNN training against one by one (issue #38)", "",
             f"Generated by `bench/bench_batched_cnn.py --threads {args.threads}`: torch {torch.__version__}, "
             f"{args.threads} thread(s), {cpu}; load after: `{load}`.", "",
             f"{args.models} VGG11 x 1/8 on FashionMNIST, batch 128 per model, Adam; seconds per optimisation step "
             f"of all {args.models} models, mean of {args.steps} steps after 2 warm-up steps, both arms in one process.",
             "", "| norm | one by one (s/step) | vmap (s/step) | speed-up | grouped convolutions (s/step) | speed-up "
             "| `zoo.train_many` (s/step) | speed-up |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for norm, single, together, convs, trainer in rows:
        zoo_cells = "n/a | n/a" if trainer != trainer else f"{trainer:.3f} | {single / trainer:.2f}x"
        lines.append(f"| {norm} | {single:.3f} | {together:.3f} | {single / together:.2f}x | {convs:.3f} | "
                     f"{single / convs:.2f}x | {zoo_cells} |")
    lines += ["", "The vmap BatchNorm arm uses per-batch statistics (no running statistics), so it does less work "
              "than a real BatchNorm trainer would. The grouped-convolution arm is a whole trainer's step: one "
              "network whose every layer is a grouped convolution with one group per model (BatchNorm with its "
              "running statistics, LayerNorm per pixel and model, the heads one batched product). `zoo.train_many` is "
              "the zoo's batched trainer on the same design (`VGG.forward_stacked`; a model in the fixed slot "
              "`seed % slots` of passes of 4 at x1/8, so its weights do not depend on the others in its batch), "
              "timed from its recorded epoch seconds over the same number of steps; it trains LayerNorm and "
              "norm-free VGGs only (BatchNorm's running statistics are not batched yet). A speed-up below 1x "
              "means the batched trainer would not pay on this machine."]
    out = Path(__file__).with_name("batched_cnn.md")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
