"""Fixup ResNet20 (Zhang et al. 2019; Qu & Horvath 2024, Table 7): initialisation, permutation
spec (hand and traced), planted-permutation recovery, a few training steps, and REPAIR on it.
Function invariance and the traced spec run with every other model (``model_zoo_cases.CASES``)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lmc_utils import activations, matching, models, renorm
from lmc_utils import permutation as P
from lmc_utils.interpolation import interpolate
from model_zoo_cases import as_if_trained


def _fixup(width: float = 0.25, seed: int = 0, in_channels: int = 1) -> models.FixupResNet:
    torch.manual_seed(seed)
    return models.resnet20(in_channels=in_channels, num_classes=3, norm="fixup", width_multiplier=width)


def test_fixup_initialisation():
    model = _fixup(width=1.0, in_channels=3)
    assert isinstance(model, models.FixupResNet) and model.num_branches == 9
    blocks = [b for stage in model.stages for b in stage]
    assert all(torch.count_nonzero(b.conv2.weight) == 0 for b in blocks)
    assert torch.count_nonzero(model.linear.weight) == 0 and torch.count_nonzero(model.linear.bias) == 0
    assert all(b.conv1.bias is None and b.conv2.bias is None for b in blocks)
    # conv1 of a branch: He normal (fan-out) times L^(-1/(2m-2)) = 9^(-1/2); the largest layer has 36,864 weights
    w = model.stages[2][1].conv1.weight
    expected = math.sqrt(2 / (w.shape[0] * 9)) / 3
    assert abs(float(w.detach().std()) / expected - 1) < 0.03
    sc = model.stages[1][0].shortcut[0].weight  # 1x1 shortcut: He normal (fan-out), not scaled
    assert abs(float(sc.detach().std()) / math.sqrt(2 / sc.shape[0]) - 1) < 0.15
    for name, p in model.named_parameters():
        if p.numel() == 1:
            assert float(p.detach()) == (1.0 if name.endswith("scale") else 0.0), name


def test_each_block_is_its_shortcut_at_initialisation():
    model = _fixup(width=0.5, in_channels=3).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in (b for stage in model.stages for b in stage):
            c = block.conv1.in_channels
            x = torch.rand(4, c, 8, 8, generator=g)  # non-negative, as after a ReLU
            if len(block.shortcut) == 0:
                assert torch.equal(block(x), x)  # identity branch: the block is the identity
            else:
                assert torch.equal(block(x), F.relu(block.shortcut(x)))
        assert torch.equal(model(torch.randn(2, 3, 16, 16, generator=g)), torch.zeros(2, 3))


def test_fixup_rejects_bias_and_init_arguments():
    with pytest.raises(ValueError, match="norm='fixup'"):
        models.resnet20(norm="fixup", bias=True)
    with pytest.raises(ValueError, match="norm='fixup'"):
        models.resnet20(norm="fixup", init="kaiming_normal")


def test_fixup_spec_leaves_scalars_unpermuted_and_shares_streams():
    model = _fixup()
    spec = P.spec_for(model)
    scalars = [k for k, v in model.state_dict().items() if v.numel() == 1]
    assert len(scalars) == 2 + 9 * 5 and all(spec.axes[k] == (None,) for k in scalars)
    assert spec.axes["stages.1.0.shortcut.0.weight"] == ("stream.1", "stream.0", None, None)
    assert spec.axes["stages.1.2.conv2.weight"] == ("stream.1", "stages.1.2.inner", None, None)
    assert spec.axes["linear.weight"] == (None, "stream.2") and spec.activations["stages.0.1.inner"] == ("stages.0.1.act1",)


def _train_steps(model, steps: int = 3, seed: int = 0) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_tiny_fixup_trains_and_is_matched_back_after_a_planted_permutation():
    model = _fixup()
    losses = _train_steps(model, steps=3)
    assert losses[0] == pytest.approx(math.log(3), abs=1e-6)  # zero head: uniform predictions
    assert losses[-1] < losses[0]
    assert torch.count_nonzero(model.stages[0][0].conv2.weight) > 0  # the branches left zero
    model.eval()
    spec = P.spec_for(model)
    perm = P.random_permutation(spec, seed=7)
    other = _fixup(seed=1)
    other.load_state_dict(P.apply_permutation(spec, perm, model.state_dict()))
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(x), model(x), rtol=1e-5, atol=1e-6)
    # Barely trained, the branches are almost zero and weight matching's coordinate ascent can stall
    # (the perturbed model below is its test); activations still tell every live unit apart.
    found = matching.activation_matching(model, other, x).perm
    alive = {g: c.diagonal() > 0.999 for g, c in matching.activation_correlations(model, model, x).items()}
    assert sum(int(m.sum()) for m in alive.values()) > 0.9 * sum(spec.sizes.values())
    inv = P.inverse(perm)
    assert all(torch.equal(found[g][alive[g]], inv[g][alive[g]]) for g in spec.sizes)


def test_weight_matching_recovers_a_planted_permutation_of_a_perturbed_fixup():
    model = as_if_trained(_fixup(width=0.5, in_channels=3))
    spec = P.spec_for(model)
    perm = P.random_permutation(spec, seed=3)
    a = model.state_dict()
    found = matching.weight_matching(spec, a, P.apply_permutation(spec, perm, a), seed=1).perm
    assert all(torch.equal(found[g], P.inverse(perm)[g]) for g in spec.sizes)


def test_repair_of_a_fixup_midpoint_meets_its_goal_and_keeps_endpoints():
    a, b = as_if_trained(_fixup(seed=0), seed=1).eval(), as_if_trained(_fixup(seed=1), seed=2).eval()
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    goal = renorm.goal_statistics([a, b], [1.0, 0.0], x)
    with torch.no_grad():
        torch.testing.assert_close(renorm.repair(a, goal, x, sequential=True)(x), a(x), rtol=1e-4, atol=1e-5)
    mid = _fixup(seed=2)
    mid.load_state_dict(interpolate(a.state_dict(), b.state_dict(), 0.5))
    goal = renorm.goal_statistics([a, b], [0.5, 0.5], x)
    fixed = renorm.repair(mid.eval(), goal, x, sequential=True)
    names = [p.name for p in renorm.correction_points(fixed)]
    assert len(names) == 1 + 9 * 2 + 2
    got = activations.output_moments(fixed, names, x)
    for n in names:
        torch.testing.assert_close(got[n][1], goal[n][1], rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(got[n][0], goal[n][0], rtol=1e-3, atol=1e-4)
