"""Benchmark: implementations of activation matching (Qu & Horvath 2024, App. D.2, Table 2) on the
cpu profile's models.

Implementations (:func:`lmc_utils.matching.activation_matching`):

* ``A: float32 sums`` -- one pass, float32 sums over all samples divided at the end (Ainsworth et al.);
* ``ours: float64 means`` -- one pass, float64 averages of per-batch averages (the package's default;
  Qu & Horvath's choice);
* ``B: re-feed`` -- float64 means, groups matched one at a time in forward order, the data fed again
  through the partially permuted model B for each group (Jordan et al.);
* ``A + re-feed`` -- float32 sums with re-feeding (completes the 2 x 2 grid).

Models: notebook 00's cpu-profile experiments ``mlp_mnist`` (MLP 3 x 512, MNIST) and
``vgg11_bn_fashion`` (VGG11-BN, channels x 1/8, FashionMNIST), through the zoo (cached), with the
profile's configs; ``--epochs N`` shortens training (the output says which). Pairs: seeds
``(2i, 2i + 1)``. Matching on ``--match-samples`` training images (notebook 00's 2000, seed 1) in
batches of ``--batch-size``; midpoint (lambda = 0.5) test loss and accuracy on ``--eval-subset`` test
images, BatchNorm statistics reset on the matching images first (RESET).

Per experiment, pair and implementation it prints: wall seconds and this process's CPU seconds
(best of ``--repeats``; run with one thread), the share of units on which the permutation agrees
with each other implementation's, the largest absolute difference of its correlation matrices from
the float64 one-pass ones (re-feeding: the same statistics, so only for the one-pass variants), and
the midpoint's test loss and accuracy.

    LMC_DATA_DIR=... python bench/bench_activation_matching.py --pairs 2
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from lmc_utils import data as data_mod
from lmc_utils import matching, profiles, zoo
from lmc_utils import permutation as P
from lmc_utils.evaluation import evaluate
from lmc_utils.interpolation import interpolate, reset_batchnorm

VARIANTS = {
    "A: float32 sums": dict(statistics="float32_sums", refeed=False),
    "ours: float64 means": dict(statistics="float64_mean", refeed=False),
    "B: re-feed": dict(statistics="float64_mean", refeed=True),
    "A + re-feed": dict(statistics="float32_sums", refeed=True),
}
EXPERIMENTS = ("mlp_mnist", "vgg11_bn_fashion")


def _timed(fn, repeats: int):
    best_c = best_w = float("inf")
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        best_c, best_w = min(best_c, time.process_time() - c), min(best_w, time.perf_counter() - w)
    return out, best_c, best_w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="train this many epochs (default: the profile's)")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    parser.add_argument("--match-samples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--eval-subset", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    section = profiles.notebook_sections("cpu")["00_rebasin_basics"]["experiments"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    names = list(VARIANTS)
    for exp in args.experiments:
        base = zoo.TrainConfig(**section[exp])
        if args.epochs is not None:
            base = base.replace(epochs=args.epochs)
        print(f"\n### {exp}: {zoo.describe(base)}\n")
        pairs = zoo.independent_pairs(base, args.pairs, device="cpu")
        stats = data_mod.load(base.dataset, "train", subset=args.match_samples, seed=1)
        test = data_mod.load(base.dataset, "test", subset=args.eval_subset)
        print("| pair | implementation | wall s | CPU s | " + " | ".join(f"agrees with {n}" for n in names)
              + " | max abs. corr. diff. vs float64 | midpoint loss | midpoint accuracy |")
        print("|---|---|---:|---:|" + "---:|" * len(names) + "---:|---:|---:|")
        for i, (ta, tb) in enumerate(pairs):
            a, b = ta.model.eval(), tb.model.eval()
            spec = P.spec_for(a)
            c64 = matching.activation_correlations(a, b, stats.x, spec, args.batch_size)
            found = {}
            for name, kw in VARIANTS.items():
                res, c, w = _timed(lambda: matching.activation_matching(a, b, stats.x, spec, args.batch_size, **kw),
                                   args.repeats)
                found[name] = (res.perm, c, w)
            for name, kw in VARIANTS.items():
                perm, c, w = found[name]
                agree = [f"{matching.unit_agreement(perm, found[o][0]):.3f}" for o in names]
                diff = "–"
                if not kw["refeed"]:
                    cs = matching.activation_correlations(a, b, stats.x, spec, args.batch_size, kw["statistics"])
                    diff = f"{max(float((cs[g] - c64[g]).abs().max()) for g in cs):.1e}"
                mid = copy.deepcopy(a)
                mid.load_state_dict(interpolate(a.state_dict(), P.apply_permutation(spec, perm, b.state_dict()), 0.5))
                reset_batchnorm(mid, stats)
                loss, acc = evaluate(mid, test)
                print(f"| {i} | {name} | {w:.2f} | {c:.2f} | " + " | ".join(agree)
                      + f" | {diff} | {loss:.3f} | {100 * acc:.1f}% |", flush=True)
            naive = copy.deepcopy(a)
            naive.load_state_dict(interpolate(a.state_dict(), b.state_dict(), 0.5))
            loss, acc = evaluate(reset_batchnorm(naive, stats), test)
            print(f"| {i} | (no matching) | | | " + " | ".join(
                f"{matching.unit_agreement(P.identity(spec), found[o][0]):.3f}" for o in names)
                + f" | | {loss:.3f} | {100 * acc:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
