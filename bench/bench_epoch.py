"""Benchmark: seconds per training epoch of ResNet20 (x1, BatchNorm) on CIFAR-10-shaped data through the
GPU data path (bench/gpu_data.py, beside this script: device tensors, device crop + flip, channels-last,
bf16 autocast, optional torch.compile), at the paper's batch size 128; and the effective FLOP/s that
lmc_utils.zoo_plan's compute estimate divides by (``--throughput`` of ``python -m lmc_utils.zoo plan``).
``bench/gpu_check.sh`` runs it on a GPU with the other first checks.

    python bench/bench_epoch.py                        # CUDA if present: a full 50,000-image epoch
    python bench/bench_epoch.py --device cpu --examples 1280 --no-bf16   # CPU: a slice, scaled up
    python bench/bench_epoch.py --compile              # with torch.compile (first epoch compiles)

Random images stand in for CIFAR-10 (the timing does not depend on the pixels). With fewer
``--examples`` than 50,000 the epoch time is scaled linearly to 50,000 and says so.
"""

from __future__ import annotations

import argparse

import torch

import gpu_data  # bench/gpu_data.py, beside this script
from lmc_utils import zoo
from lmc_utils.core.data import TensorData
from lmc_utils.core.device import place
from lmc_utils.run import plan as zoo_plan

CIFAR_TRAIN = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--examples", type=int, default=CIFAR_TRAIN)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (the best is reported)")
    parser.add_argument("--width", type=int, default=1)
    parser.add_argument("--no-bf16", action="store_true", help="float32 forward passes")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = parser.parse_args()
    dev = torch.device(args.device)
    cfg = zoo.TrainConfig(dataset="cifar10", arch="resnet20", model={"norm": "batchnorm",
                                                                     "width_multiplier": args.width},
                          batch_size=args.batch_size, augment=True)
    g = torch.Generator().manual_seed(0)
    data = gpu_data.to_device(TensorData(x=torch.randn(args.examples, 3, 32, 32, generator=g),
                                         y=torch.randint(0, 10, (args.examples,), generator=g),
                                         num_classes=10, name="cifar10", split="train"), dev)
    model = gpu_data.compiled(place(zoo.build_model(cfg), dev), args.compile)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    gen = gpu_data.generator(dev, 0)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {name}; ResNet20 x{args.width}, batch {args.batch_size}, "
          f"{args.examples} examples, bf16 {not args.no_bf16}, compile {args.compile}")
    times = []
    for epoch in range(args.epochs + 1):  # the first is a warm-up (cuDNN autotuning, compilation)
        row = gpu_data.train_epoch(model, data, opt, args.batch_size, gen, bf16=not args.no_bf16)
        print(f"epoch {epoch}{' (warm-up)' if epoch == 0 else ''}: {row['seconds']:.2f} s, loss {row['train_loss']:.3f}")
        if epoch:
            times.append(row["seconds"])
    best = min(times) * CIFAR_TRAIN / args.examples
    flops = CIFAR_TRAIN * 6.0 * zoo_plan.forward_macs(cfg)
    scaled = "" if args.examples == CIFAR_TRAIN else f" (scaled from {args.examples} examples)"
    print(f"ResNet20 x{args.width} CIFAR-10 epoch: {best:.2f} s{scaled}; effective {flops / best:.3g} FLOP/s")


if __name__ == "__main__":
    main()
