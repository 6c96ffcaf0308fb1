"""Notebook 02's protocol on tiny Moons MLPs, and the layer-input hooks it relies on."""

import torch

from lmc_utils import data, models, spectral, zoo
from lmc_utils.studies import singular_vectors as spectral_study

MOONS = zoo.TrainConfig(dataset="moons", arch="mlp", model={"depth": 2}, optimizer="adam", lr=0.01,
                        batch_size=64, epochs=3)


def test_layer_inputs_are_what_each_weight_matrix_multiplies():
    torch.manual_seed(0)
    mlp = models.mlp(in_features=6, num_classes=3, width=8, depth=2)
    x = torch.randn(20, 6)
    z = spectral.layer_inputs(mlp, x)
    torch.testing.assert_close(z["hidden.0"], x.double())
    mats = spectral.layer_matrices(mlp.state_dict())
    out = z["out"] @ mats["out"].T + mlp.out.bias.double()
    torch.testing.assert_close(out, mlp(x).double(), rtol=1e-5, atol=1e-5)

    vgg = models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.0625).eval()
    conv = vgg.features[1].conv
    seen = {}
    conv.register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach()))
    xi = torch.randn(2, 1, 28, 28)
    z = spectral.layer_inputs(vgg, xi, max_rows=None)
    vgg(xi)
    w = spectral.layer_matrices(vgg.state_dict())["features.1.conv"]
    out = seen["out"]  # [2, c, h, w]; rows of z are (example, position) in that order
    expected = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]).double()
    bias = conv.bias.double() if conv.bias is not None else 0
    torch.testing.assert_close(z["features.1.conv"] @ w.T + bias, expected, rtol=1e-4, atol=1e-4)


def test_top_k_contribution_ends_at_the_cosine_of_the_matrices():
    a, b = torch.randn(6, 9, dtype=torch.float64), torch.randn(6, 9, dtype=torch.float64)
    sa, sb = spectral.svd(a), spectral.svd(b)
    c = spectral.top_k_contribution(sa, sb, [1, 6])
    assert abs(c[6] - float((a * b).sum() / (a.norm() * b.norm()))) < 1e-12
    assert abs(c[1]) <= 1


def test_singular_vector_study_on_moons():
    test = data.load("moons", "test", subset=200)
    match = data.load("moons", "train", subset=200)
    res = spectral_study.singular_vector_study(MOONS, [8, 16], 2, test, match, top=2, device="cpu")
    assert set(res.diagonal["method"]) == set(spectral_study.METHODS)
    assert (res.invariance["max_singular_value_change"] < 1e-9).all()
    naive = res.diagonal[res.diagonal["method"] == "naive"]
    assert naive["u"].between(0, 1 + 1e-9).all()
    summary = spectral_study.width_summary(res, top=2)
    assert list(summary["width"]) == [8, 16] and (summary["large_fraction"] <= 1).all()
    text = spectral_study.describe(res, top=2)
    assert "Claim 1" in text and "Claim 4" in text
    sink = spectral_study.sinkhorn_comparison(MOONS, [8], 2, test, sinkhorn={"steps": 20}, device="cpu")
    assert set(sink["solver"]) == {"iterative", "sinkhorn"}
    assert (sink[sink["solver"] == "iterative"]["gap_to_iterative"] == 0).all()
    assert "Sinkhorn" in spectral_study.describe_sinkhorn(sink)
