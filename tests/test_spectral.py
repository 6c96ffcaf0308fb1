"""Singular-vector alignment: permutations move singular vectors, never singular values."""

import pytest
import torch

from lmc_utils import matching, models, spectral
from lmc_utils import permutation as P


def _model(seed=0):
    torch.manual_seed(seed)
    return models.mlp(in_features=20, num_classes=10, width=24, depth=2, init="kaiming_normal")


def test_layer_matrices_flatten_conv_kernels():
    state = models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125).state_dict()
    mats = spectral.layer_matrices(state)
    assert mats["features.1.conv"].shape == (16, 8 * 9) and mats["classifier"].shape == (10, 64)
    assert "features.1.norm" not in mats  # 1-D norm weights are not matrices


def test_permutation_changes_vectors_but_not_values():
    state = _model().state_dict()
    spec = P.spec_for(_model())
    permuted = P.apply_permutation(spec, P.random_permutation(spec, 0), state)
    a, b = spectral.spectra(state), spectral.spectra(permuted)
    for layer in a:
        torch.testing.assert_close(a[layer].s, b[layer].s)
    assert spectral.diagonal_alignment(a["hidden.1"], b["hidden.1"])["u"].mean() < 0.9


def test_matching_a_planted_permutation_gives_the_identity_pattern():
    state = _model().state_dict()
    spec = P.spec_for(_model())
    planted = P.apply_permutation(spec, P.random_permutation(spec, 1), state)
    found = matching.weight_matching(spec, state, planted).perm
    a, b = spectral.spectra(state), spectral.spectra(P.apply_permutation(spec, found, planted))
    for layer in a:
        for m in (spectral.alignment(a[layer].u, b[layer].u), spectral.alignment(a[layer].v, b[layer].v)):
            torch.testing.assert_close(m, torch.eye(m.shape[0], dtype=m.dtype), atol=1e-6, rtol=0)


def test_objective_decomposition_and_top_k_share():
    a = spectral.svd(torch.randn(12, 30, dtype=torch.float64))
    w_b = torch.randn(12, 30, dtype=torch.float64)
    b = spectral.svd(w_b)
    w_a = a.u @ torch.diag(a.s) @ a.v.T
    assert float(spectral.objective_terms(a, b).sum()) == pytest.approx(float((w_a * w_b).sum()))
    share = spectral.top_k_share(a, a, [1, 3, 12])
    assert share[12] == pytest.approx(1.0)
    assert share[1] == pytest.approx(float(a.s[0] ** 2 / (a.s ** 2).sum()))


def test_input_alignment_count_and_scale():
    v = torch.eye(4, dtype=torch.float64)[:, :2]  # right singular vectors e1, e2
    z = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    torch.testing.assert_close(spectral.input_alignment(v, z), torch.tensor([0.3, 0.4], dtype=torch.float64))
    assert spectral.count_large(torch.tensor([10.0, 6.0, 5.0, 1.0])) == 3
    s = torch.tensor([4.0, 2.0, 1.0])
    assert spectral.fit_scale(3 * s, s) == pytest.approx(3.0)
