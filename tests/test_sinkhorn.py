"""Weight matching through the Sinkhorn relaxation (Peña et al. 2023) against the iterative solver."""

import pytest
import torch

from lmc_utils import matching, models, zoo
from lmc_utils import permutation as P
from lmc_utils.distance import l2_distance

from conftest import needs_mnist


def _mlp(seed, width=16, depth=3):
    torch.manual_seed(seed)
    return models.mlp(in_features=12, num_classes=5, width=width, depth=depth)


def test_sinkhorn_is_doubly_stochastic():
    p = matching.sinkhorn._sinkhorn(torch.randn(7, 7, generator=torch.Generator().manual_seed(0)), 100)
    torch.testing.assert_close(p.sum(0), torch.ones(7), atol=1e-4, rtol=0)
    torch.testing.assert_close(p.sum(1), torch.ones(7), atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["mlp", "vgg"])
def test_sinkhorn_recovers_a_planted_permutation(arch):
    model = _mlp(0) if arch == "mlp" else models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.0625)
    spec = P.spec_for(model)
    state = model.state_dict()
    planted = P.random_permutation(spec, 3)
    shuffled = P.apply_permutation(spec, planted, state)
    res = matching.sinkhorn_weight_matching(spec, state, shuffled, steps=60)
    recovered = P.apply_permutation(spec, res.perm, shuffled)
    for k in state:
        torch.testing.assert_close(recovered[k], state[k])
    assert res.objective[-1] >= res.objective[0]


def test_sinkhorn_rejects_bad_input():
    a, b = _mlp(0), _mlp(1, width=8)
    with pytest.raises(ValueError):
        matching.sinkhorn_weight_matching(P.spec_for(a), a.state_dict(), a.state_dict(), steps=0)
    with pytest.raises(ValueError):
        matching.sinkhorn_weight_matching(P.spec_for(a), a.state_dict(), b.state_dict())


def _gap(spec, sa, sb, **kw) -> float:
    it = matching.weight_matching(spec, sa, sb)
    sk = matching.sinkhorn_weight_matching(spec, sa, sb, **kw)
    d_it = l2_distance(sa, P.apply_permutation(spec, it.perm, sb)) ** 2
    d_sk = l2_distance(sa, P.apply_permutation(spec, sk.perm, sb)) ** 2
    return d_sk / d_it - 1


def test_sinkhorn_is_within_one_percent_of_iterative_on_random_mlps():
    a, b = _mlp(0, width=32), _mlp(1, width=32)
    assert _gap(P.spec_for(a), a.state_dict(), b.state_dict()) <= 0.01


@needs_mnist
def test_sinkhorn_is_within_one_percent_of_iterative_on_trained_mnist_mlps():
    cfg = zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 32, "depth": 2}, optimizer="adam", lr=0.001,
                          batch_size=128, epochs=1, train_subset=4000)
    a, b = (zoo.train(cfg.replace(seed=s), device="cpu", progress=False).model for s in (0, 1))
    gap = _gap(P.spec_for(a), a.state_dict(), b.state_dict())
    assert gap <= 0.01, f"Sinkhorn is {100 * gap:.2f}% above the iterative solution"
