"""Interpolation, barriers and RESET."""

import numpy as np
import pandas as pd
import pytest
import torch

from lmc_utils import interpolation as I
from lmc_utils import models
from lmc_utils.data import TensorData


def _data(n=64, shape=(1, 28, 28), classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g),
                      classes, "random", "test")


def test_interpolate_endpoints_and_midpoint():
    a = models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125).state_dict()
    b = models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125).state_dict()
    for k in b:
        if "num_batches_tracked" in k:
            b[k] += 5
    assert all(torch.equal(I.interpolate(a, b, 0.0)[k], a[k]) for k in a)
    assert all(torch.equal(I.interpolate(a, b, 1.0)[k], b[k]) for k in a if a[k].is_floating_point())
    mid = I.interpolate(a, b, 0.5)
    k = "features.0.conv.weight"
    torch.testing.assert_close(mid[k], (a[k] + b[k]) / 2)
    assert torch.equal(mid["features.0.norm.num_batches_tracked"], a["features.0.norm.num_batches_tracked"])


def test_interpolate_rejects_mismatched_states():
    a = models.mlp(in_features=4, width=8, depth=1).state_dict()
    b = models.mlp(in_features=4, width=9, depth=1).state_dict()
    with pytest.raises(ValueError, match="shapes"):
        I.interpolate(a, b, 0.5)


@pytest.mark.parametrize("norm", ["batchnorm", "layernorm", "none"])
def test_barrier_of_a_model_with_itself_is_zero(norm):
    model = models.vgg("vgg11", in_channels=1, image_size=28, norm=norm, width_multiplier=0.125)
    data = _data()
    I.reset_batchnorm(model, data)
    s = model.state_dict()
    for reset in (False, True):
        curve = I.interpolation_curve(model, s, s, {"a": data, "b": _data(seed=1)}, n_points=5, reset_bn=reset)
        assert list(curve["split"].unique()) == ["a", "b"]
        b = I.barrier(curve)
        assert (b.to_numpy() == 0).all(), b


def test_barrier_formula():
    lam = np.linspace(0, 1, 5)
    curve = pd.DataFrame({"lam": lam, "loss": [1.0, 2.0, 4.0, 3.0, 2.0], "accuracy": [0.9, 0.5, 0.2, 0.6, 0.7]})
    b = I.barrier(curve).iloc[0]
    # line through the endpoint losses: 1, 1.25, 1.5, 1.75, 2 -> max excess 2.5 at lam = 0.5
    assert b["loss"] == pytest.approx(2.5)
    # line through the endpoint accuracies: 0.9 ... 0.7 -> largest drop 0.8 - 0.2 = 0.6
    assert b["accuracy"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="endpoints"):
        I.barrier(curve[curve["lam"] > 0])


def test_reset_batchnorm_recomputes_exact_statistics():
    model = models.vgg("vgg11", in_channels=1, image_size=28, norm="batchnorm", width_multiplier=0.125)
    data = _data(n=96)
    seen = []
    model.features[0].conv.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    I.reset_batchnorm(model, data, batch_size=32)
    pre = torch.cat(seen)  # conv outputs feeding the first BN
    bn = model.features[0].norm
    torch.testing.assert_close(bn.running_mean, pre.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    # running_var is the average of per-batch unbiased variances (equal batches)
    per_batch = torch.stack([c.var((0, 2, 3), unbiased=True) for c in pre.split(32)]).mean(0)
    torch.testing.assert_close(bn.running_var, per_batch, rtol=1e-4, atol=1e-5)
    assert not model.training and bn.momentum == 0.1


def test_curve_restores_the_scratch_model():
    model = models.mlp(in_features=784, width=16, depth=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = models.mlp(in_features=784, width=16, depth=1).state_dict()
    I.interpolation_curve(model, other, other, _data(), n_points=3)
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)


def test_curve_with_the_models_own_state_dict_is_not_corrupted():
    """Regression: ``model.state_dict()`` aliases the model's tensors; using the model as the
    scratch network must not move endpoint A while the curve is computed."""
    torch.manual_seed(0)
    model_a = models.mlp(in_features=784, width=32, depth=2)
    state_b = models.mlp(in_features=784, width=32, depth=2).state_dict()
    data = _data(n=128)
    safe = I.interpolation_curve(models.mlp(in_features=784, width=32, depth=2),
                                 {k: v.clone() for k, v in model_a.state_dict().items()}, state_b, data, n_points=6)
    aliased = I.interpolation_curve(model_a, model_a.state_dict(), state_b, data, n_points=6)
    pd.testing.assert_frame_equal(safe, aliased)


def test_evaluate_state_matches_loading_by_hand_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125).state_dict()
    data, reset_on = _data(n=32), _data(n=48, seed=1)
    got = I.evaluate_state(model, other, data, reset_data=reset_on)
    by_hand = models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125)
    by_hand.load_state_dict(other)
    assert got == I.evaluate(I.reset_batchnorm(by_hand, reset_on), data)
    assert got != I.evaluate_state(model, other, data)  # without RESET the stored statistics are used
    assert model.training and all(torch.equal(before[k], model.state_dict()[k]) for k in before)


def test_restored_puts_the_model_back_when_the_block_raises():
    model = models.mlp(in_features=784, width=16, depth=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"):
        with I.restored(model):
            model.load_state_dict(models.mlp(in_features=784, width=16, depth=1).state_dict())
            model.train()
            raise RuntimeError("boom")
    assert not model.training and all(torch.equal(before[k], model.state_dict()[k]) for k in before)


def test_batched_curves_equal_one_pair_curves():
    from lmc_utils.interpolation import batched_curves, curve_barriers

    torch.manual_seed(0)
    nets = [models.mlp(in_features=6, num_classes=3, width=8, depth=2) for _ in range(3)]
    states = [n.state_dict() for n in nets]
    x = torch.randn(70, 6)
    ds = TensorData(x, torch.randint(0, 3, (70,)), 3, "random", "test")
    pairs = [(0, 1), (0, 2), (1, 2), (2, 2)]
    # max_models=4 with 5 lambdas: one pair per vmap call, so chunking is exercised too
    got = batched_curves(nets[0], [states[i] for i, _ in pairs], [states[j] for _, j in pairs], ds, n_points=5,
                         max_models=4, batch_size=32)
    for p, (i, j) in enumerate(pairs):
        ref = I.interpolation_curve(nets[0], states[i], states[j], ds, n_points=5)
        np.testing.assert_allclose(got["loss"][p], ref["loss"].to_numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["accuracy"][p], ref["accuracy"].to_numpy(), atol=1e-12)
        b = curve_barriers(got["loss"][p:p + 1], got["lam"])
        assert b["barrier"][0] == pytest.approx(I.barrier(ref).loc["data", "loss"], abs=1e-5)
    # a model with itself: both barriers are exactly zero
    same = curve_barriers(got["loss"][3:], got["lam"])
    assert same["barrier"][0] == pytest.approx(0, abs=1e-6) and same["epsilon"][0] == pytest.approx(0, abs=1e-6)


def test_batched_curves_equal_one_pair_curves_for_a_layernorm_vgg():
    """Stacked evaluation of a CNN (vmap over the weights: grouped convolutions) equals one model at a
    time up to float rounding (accuracies to one example of 40, should rounding tip an argmax)."""
    from lmc_utils.interpolation import batched_curves

    torch.manual_seed(0)
    nets = [models.vgg("vgg11", in_channels=1, num_classes=10, image_size=28, norm="layernorm",
                       width_multiplier=0.0625) for _ in range(2)]
    states = [n.state_dict() for n in nets]
    ds = TensorData(torch.randn(40, 1, 28, 28), torch.randint(0, 10, (40,)), 10, "random", "test")
    got = batched_curves(nets[0], [states[0], states[1]], [states[1], states[1]], ds, n_points=3, batch_size=16)
    for p, (i, j) in enumerate([(0, 1), (1, 1)]):
        ref = I.interpolation_curve(nets[0], states[i], states[j], ds, n_points=3)
        np.testing.assert_allclose(got["loss"][p], ref["loss"].to_numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["accuracy"][p], ref["accuracy"].to_numpy(), atol=1 / 40 + 1e-12)
    bn = models.vgg("vgg11", in_channels=1, num_classes=10, image_size=28, norm="batchnorm", width_multiplier=0.0625)
    with pytest.raises(ValueError, match="BatchNorm"):  # interpolated statistics need RESET, one model at a time
        batched_curves(bn, [bn.state_dict()], [bn.state_dict()], ds, n_points=3)


def test_curve_barriers_epsilon_against_chord():
    from lmc_utils.interpolation import curve_barriers

    lams = np.linspace(0, 1, 5)
    # endpoints 0 and 1, peak 1.5 at the middle: barrier 1.5 - 0.5 = 1.0, epsilon 1.5 - 1 = 0.5
    out = curve_barriers(np.array([[0.0, 0.5, 1.5, 0.9, 1.0]]), lams)
    assert out["barrier"][0] == pytest.approx(1.0) and out["epsilon"][0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="grid"):
        curve_barriers(np.zeros((2, 3)), lams)
