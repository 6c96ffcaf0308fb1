"""The SWA study protocol and permutation agreement."""

import numpy as np
import pandas as pd
import pytest
import torch

from lmc_utils import data, matching, verdicts, zoo
from lmc_utils.studies import swa
from lmc_utils import permutation as P
from lmc_utils.models import mlp


def test_permutation_agreement():
    spec = P.spec_for(mlp(in_features=4, width=10, depth=2))
    ident = P.identity(spec)
    assert matching.permutation_agreement(ident, ident) == {"hidden.0": 1.0, "hidden.1": 1.0}
    p = P.random_permutation(spec, 3)
    agree = matching.permutation_agreement(p, ident)
    assert agree["hidden.0"] == pytest.approx(float((p["hidden.0"] == torch.arange(10)).double().mean()))
    with pytest.raises(ValueError, match="different groups"):
        matching.permutation_agreement(p, {"x": torch.arange(3)})


def test_swa_study_on_moons():
    base = zoo.TrainConfig(dataset="moons", arch="mlp", model={"depth": 1}, optimizer="sgd", lr=0.1,
                           batch_size=64, epochs=3, swa_epochs=3, swa_lr=0.05)
    test = data.load("moons", "test")
    res = swa.run(base, [16, 64], test, data.load("moons", "train"), n_runs=2, n_orders=2, n_points=3,
                  device="cpu", progress=False)
    # 3 sample pairs per run, 2 runs, 2 widths; one independent pair per width
    assert len(res.samples) == 2 * 2 * 3 and len(res.independent) == 2
    assert len(res.identity) == 2 * (2 * 3 + 1) * 2  # every pair once per group order
    assert set(res.averages["model"]) == {"sample 1", "sample 2", "sample 3", "SWA average"}
    summary = swa.tables(res)["06_swa_summary"]
    assert list(summary["width"]) == [16, 64] and list(summary["n_runs"]) == [2, 2]
    assert summary["swa_pairs_identity_share"].between(0, 1).all()
    criteria = verdicts.load_criteria("06_swa_alignment")
    frame = swa.verdicts(res, criteria)
    verdicts.check_declared(frame, criteria)
    assert len(frame) == 5 * 2 and set(frame["subject"]) == {"width 16", "width 64"}
    with pytest.raises(ValueError, match="swa_epochs"):
        swa.run(base.replace(swa_epochs=0), [8], test, test)


def _synthetic(sample_barrier: float, independent_barrier: float, sample_share: float, independent_share: float,
               swa_gain: float, n_runs: int = 8, sd: float = 0.002) -> swa.Result:
    """A synthetic result for one width: ``n_runs`` runs with 3 samples each, ``n_runs // 2`` independent pairs."""
    rng = np.random.default_rng(0)
    samples, ident, averages, independent = [], [], [], []
    for r in range(n_runs):
        for i, j in ((1, 2), (1, 3), (2, 3)):
            samples.append({"width": 8, "run": r, "i": i, "j": j, "accuracy_barrier": 0.0,
                            "loss_barrier": max(sample_barrier + sd * rng.standard_normal(), 0.0)})
            for k in range(2):
                ident.append({"width": 8, "kind": "samples", "unit": r, "i": i, "j": j, "order": k,
                              "identity_share": min(sample_share + sd * rng.standard_normal(), 1.0)})
        losses = 0.3 + sd * rng.standard_normal(3)
        for k, loss in enumerate(losses):
            averages.append({"width": 8, "run": r, "model": f"sample {k + 1}", "loss": loss, "accuracy": 0.9})
        averages.append({"width": 8, "run": r, "model": "SWA average", "loss": losses.mean() - swa_gain,
                         "accuracy": 0.9})
    for p in range(n_runs // 2):
        independent.append({"width": 8, "pair": p, "run_a": 2 * p, "run_b": 2 * p + 1, "accuracy_barrier": 0.0,
                            "loss_barrier": independent_barrier + sd * rng.standard_normal()})
        for k in range(2):
            ident.append({"width": 8, "kind": "independent", "unit": p, "i": 2 * p, "j": 2 * p + 1, "order": k,
                          "identity_share": independent_share + sd * rng.standard_normal()})
    return swa.Result(pd.DataFrame(samples), pd.DataFrame(independent), pd.DataFrame(ident), pd.DataFrame(averages))


def test_verdicts_follow_the_synthetic_numbers():
    criteria = verdicts.load_criteria("06_swa_alignment")

    def got(res):
        return dict(zip(swa.verdicts(res, criteria)["claim"], swa.verdicts(res, criteria)["verdict"]))

    # the talk's picture: samples connected and aligned, independent runs neither, SWA better than its samples
    assert set(got(_synthetic(0.0, 0.5, 1.0, 0.1, swa_gain=0.02)).values()) == {"held"}
    # the opposite on every claim
    assert set(got(_synthetic(0.2, 0.0, 0.3, 1.0, swa_gain=-0.02)).values()) == {"did not hold"}
    # independent runs barely above the line, with two pairs: not enough to tell
    noisy = got(_synthetic(0.0, 0.012, 1.0, 0.1, swa_gain=0.02, n_runs=4, sd=0.01))
    assert noisy["independent_runs_not_connected"] == "inconclusive"


def test_with_width_sets_the_right_key():
    mlp_cfg = zoo.TrainConfig(dataset="moons", arch="mlp", model={"depth": 1})
    res_cfg = zoo.TrainConfig(dataset="cifar10", arch="resnet20", model={"norm": "batchnorm"})
    assert zoo.with_width(mlp_cfg, 32).model == {"depth": 1, "width": 32}
    assert zoo.with_width(res_cfg, 4).model == {"norm": "batchnorm", "width_multiplier": 4}


def test_batched_barriers_equal_one_curve_at_a_time():
    """The study's barriers of many pairs at once (all pairs and lambdas through batched_curves) equal
    interpolation_curve's, pair by pair, up to float rounding (BatchNorm models, at the paper profile,
    take one curve at a time with RESET: the paper dry run of notebook 06 runs that path)."""
    import torch

    from lmc_utils import data as data_mod, models
    from lmc_utils.measure.barrier import barrier_rows
    from lmc_utils.measure.interpolation import interpolation_curve
    from lmc_utils.studies.swa import _barriers

    g = torch.Generator().manual_seed(0)
    test = data_mod.TensorData(x=torch.randn(300, 6, generator=g), y=torch.randint(0, 3, (300,), generator=g),
                               num_classes=3, name="synthetic", split="test")
    states = []
    for seed in range(4):
        torch.manual_seed(seed)
        states.append(models.build("mlp", in_features=6, num_classes=3, width=16, depth=2).state_dict())
    net = models.build("mlp", in_features=6, num_classes=3, width=16, depth=2)
    got = _barriers(net, states[:3], states[1:], test, None, n_points=7)
    for (sa, sb), b in zip(zip(states[:3], states[1:]), got):
        one = barrier_rows(interpolation_curve(net, sa, sb, test, n_points=7)).iloc[0]
        assert abs(b["loss_barrier"] - one["loss_barrier"]) < 1e-5
        assert abs(b["accuracy_barrier"] - one["accuracy_barrier"]) < 1e-9
