"""Benchmark: seconds per training epoch of the MNIST MLP (3 hidden layers of 512) on this CPU,
through ``lmc_utils.zoo.train`` exactly as the notebooks train it.

    LMC_DATA_DIR=... python bench/bench_training.py
"""

from __future__ import annotations

import argparse

import torch

from lmc_utils import zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[512, 128])
    parser.add_argument("--depth", type=int, nargs="+", default=[3, 2])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for depth in args.depth:
        for bs in args.batch_size:
            config = zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 512, "depth": depth},
                                     optimizer="adam", lr=1e-3, batch_size=bs, epochs=args.epochs)
            trained = zoo.train(config, device="cpu", progress=False)
            secs = [h["seconds"] for h in trained.history]
            print(f"MLP {depth} hidden x 512, batch {bs}: epochs {', '.join(f'{s:.2f}' for s in secs)} s "
                  f"(best {min(secs):.2f} s); train accuracy {trained.history[-1]['train_accuracy']:.4f}")


if __name__ == "__main__":
    main()
