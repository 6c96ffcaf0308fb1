"""The SWA study protocol and permutation agreement."""

import pytest
import torch

from lmc_utils import data, matching, zoo
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
    res = swa.swa_alignment(base, [16, 64], test, data.load("moons", "train"), n_independent=1,
                                n_points=3, device="cpu")
    assert len(res.samples) == 2 * 3 and len(res.independent) == 2
    assert set(res.averages["model"]) == {"sample 1", "sample 2", "sample 3", "SWA average"}
    summary = swa.swa_summary(res)
    assert list(summary["width"]) == [16, 64]
    assert summary["swa_pairs_identity_share"].between(0, 1).all()
    text = swa.describe_swa(summary)
    assert "width 16" in text and "Verdicts" in text
    with pytest.raises(ValueError, match="swa_epochs"):
        swa.swa_alignment(base.replace(swa_epochs=0), [8], test, test)


def test_with_width_sets_the_right_key():
    mlp_cfg = zoo.TrainConfig(dataset="moons", arch="mlp", model={"depth": 1})
    res_cfg = zoo.TrainConfig(dataset="cifar10", arch="resnet20", model={"norm": "batchnorm"})
    assert zoo.with_width(mlp_cfg, 32).model == {"depth": 1, "width": 32}
    assert zoo.with_width(res_cfg, 4).model == {"norm": "batchnorm", "width_multiplier": 4}
