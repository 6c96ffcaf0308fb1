"""Matching a model against a randomly permuted copy of itself recovers the permutation."""

import pytest
import torch

from lmc_utils import matching, models
from lmc_utils.data import TensorData
from lmc_utils.interpolation import reset_batchnorm
from lmc_utils import permutation as P
from weight_matching_oracle import weight_matching_reference

ARCHS = {
    "mlp": (lambda: models.mlp(in_features=20, num_classes=10, width=32, depth=3, init="kaiming_normal"), (20,)),
    "mlp-layernorm": (lambda: models.mlp(in_features=20, num_classes=10, width=32, depth=3, norm="layernorm", init="kaiming_normal"), (20,)),
    "vgg11-batchnorm": (lambda: models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125), (1, 28, 28)),
    "vgg11-none": (lambda: models.vgg("vgg11", in_channels=1, image_size=28, norm="none", width_multiplier=0.125, init="kaiming_normal"), (1, 28, 28)),
    "resnet20-batchnorm": (lambda: models.resnet20(in_channels=3, width_multiplier=0.5), (3, 16, 16)),
    "resnet20-layernorm": (lambda: models.resnet20(in_channels=3, norm="layernorm", width_multiplier=0.5), (3, 16, 16)),
}


def _pair(name, seed=0):
    torch.manual_seed(seed)
    model = ARCHS[name][0]()
    # BN statistics of the data (as after training): with the default (0, 1) statistics a
    # random deep net has dead units, whose order no activation can reveal.
    x = torch.randn(256, *ARCHS[name][1])
    reset_batchnorm(model, TensorData(x, torch.zeros(256, dtype=torch.long), 10, "random", "train"))
    spec = P.spec_for(model)
    perm = P.random_permutation(spec, seed=seed + 10)
    state_a = model.state_dict()
    state_b = P.apply_permutation(spec, perm, state_a)
    return model, spec, perm, state_a, state_b


def _assert_recovers(spec, perm, found, alive=None):
    """``found`` equals the inverse of the planted ``perm`` (b = perm(a)) on every unit of
    a, or on the ``alive`` units only (group -> bool mask over a's units)."""
    expected = P.inverse(perm)
    wrong = {}
    for g in spec.sizes:
        mask = alive[g] if alive is not None else torch.ones(spec.sizes[g], dtype=torch.bool)
        n_wrong = int((found[g] != expected[g])[mask].sum())
        if n_wrong:
            wrong[g] = n_wrong
    assert not wrong, f"mismatched units per group: {wrong}"


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_weight_matching_recovers_planted_permutation(name):
    _, spec, perm, a, b = _pair(name)
    res = matching.weight_matching(spec, a, b, seed=0)
    _assert_recovers(spec, perm, res.perm)
    aligned = P.apply_permutation(spec, res.perm, b)
    assert all(torch.equal(aligned[k], a[k]) for k in a)
    assert res.objective[-1] >= res.objective[0]
    assert res.objective == sorted(res.objective)  # coordinate ascent never decreases


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_activation_matching_recovers_planted_permutation(name):
    model_a, spec, perm, a, b = _pair(name)
    model_b = ARCHS[name][0]().eval()
    model_b.load_state_dict(b)
    x = torch.randn(256, *ARCHS[name][1])
    res = matching.activation_matching(model_a, model_b, x, batch_size=64)
    # A unit that is zero on every input (dead ReLU) has no activations to match by; random
    # nets have a few (a plain VGG many in its 1x1 deep layers). Every live unit must be recovered.
    self_corr = matching.activation_correlations(model_a, model_a, x)
    alive = {g: c.diagonal() > 0.999 for g, c in self_corr.items()}
    n_dead = sum(int((~m).sum()) for m in alive.values())
    assert n_dead < sum(spec.sizes.values()) // 4
    _assert_recovers(spec, perm, res.perm, alive)
    # Whatever order the dead units get, the aligned model computes the same function.
    model_b.load_state_dict(P.apply_permutation(spec, res.perm, b))
    torch.testing.assert_close(model_b(x), model_a(x), rtol=1e-5, atol=1e-5)


def test_activation_correlation_is_pearson():
    model = models.mlp(in_features=6, num_classes=3, width=5, depth=1).eval()
    x = torch.randn(300, 6)
    c = matching.activation_correlations(model, model, x, batch_size=300)["hidden.0"]
    h = torch.relu(model.hidden[0](x)).double()
    expected = torch.corrcoef(h.T)
    torch.testing.assert_close(c, torch.nan_to_num(expected, nan=0.0), rtol=1e-6, atol=1e-9)


def test_weight_matching_reduces_distance_between_independent_models():
    torch.manual_seed(0)
    a = models.mlp(in_features=20, num_classes=10, width=64, depth=2).state_dict()
    b = models.mlp(in_features=20, num_classes=10, width=64, depth=2).state_dict()
    spec = P.spec_for(models.mlp(in_features=20, num_classes=10, width=64, depth=2))
    res = matching.weight_matching(spec, a, b, seed=1)
    aligned = P.apply_permutation(spec, res.perm, b)
    dist = lambda s: sum(float((a[k] - s[k]).pow(2).sum()) for k in a) ** 0.5  # noqa: E731
    assert dist(aligned) < dist(b)
    assert res.objective[-1] > res.objective[0]


def test_matching_rejects_mismatched_architectures():
    spec = P.spec_for(models.mlp(in_features=20, width=32, depth=2))
    a = models.mlp(in_features=20, width=32, depth=2).state_dict()
    b = models.mlp(in_features=20, width=48, depth=2).state_dict()
    with pytest.raises(ValueError, match="different width"):
        matching.weight_matching(spec, a, b)
    with pytest.raises(ValueError, match="same architecture"):
        matching.activation_matching(models.mlp(in_features=20, width=32, depth=2),
                                     models.mlp(in_features=20, width=48, depth=2), torch.randn(4, 20))


@pytest.mark.parametrize("arch", ["mlp", "vgg11-batchnorm", "resnet20-batchnorm"])
def test_fast_weight_matching_equals_the_reference_algorithm(arch):
    """Independent models (several sweeps, many changes): the fast implementation returns exactly
    the permutation, sweep count and objective history of the direct port."""
    torch.manual_seed(1)
    a, b = ARCHS[arch][0]().state_dict(), ARCHS[arch][0]().state_dict()
    spec = P.spec_for(ARCHS[arch][0]())
    for seed in (0, 1):
        fast = matching.weight_matching(spec, a, b, seed=seed)
        ref = weight_matching_reference(spec, a, b, seed=seed)
        assert fast.sweeps == ref.sweeps and fast.sweeps >= 2
        assert all(torch.equal(fast.perm[g], ref.perm[g]) for g in spec.sizes)
        assert fast.objective == pytest.approx(ref.objective, rel=1e-5)


def test_unit_agreement_pools_groups_by_size():
    p = {"a": torch.tensor([0, 1]), "b": torch.tensor([0, 1, 2, 3])}
    q = {"a": torch.tensor([1, 0]), "b": torch.tensor([0, 1, 3, 2])}
    assert matching.unit_agreement(p, q) == pytest.approx(2 / 6)
    assert matching.unit_agreement(p, p) == 1.0


# --- implementations of activation matching (Qu & Horvath 2024, App. D.2, Table 2) ---------------

def _mlp_pair():
    model_a, spec, perm, _, b = _pair("mlp")
    model_b = ARCHS["mlp"][0]().eval()
    model_b.load_state_dict(b)
    return model_a.eval(), model_b, spec, perm


@pytest.mark.parametrize("statistics", matching.STATISTICS)
@pytest.mark.parametrize("refeed", [False, True])
def test_every_activation_matching_implementation_recovers_a_planted_permutation(statistics, refeed):
    model_a, model_b, spec, perm = _mlp_pair()
    x = torch.randn(512, 20, generator=torch.Generator().manual_seed(4))
    res = matching.activation_matching(model_a, model_b, x, batch_size=128, statistics=statistics, refeed=refeed)
    _assert_recovers(spec, perm, res.perm)
    assert res.sweeps == (len(spec.sizes) if refeed else 0)


def test_refeeding_recovers_residual_streams_in_forward_order():
    torch.manual_seed(0)
    make = lambda: models.resnet20(in_channels=1, norm="layernorm", width_multiplier=0.25).eval()  # noqa: E731
    model_a, model_b = make(), make()
    spec = P.spec_for(model_a)
    perm = P.random_permutation(spec, seed=10)
    b = P.apply_permutation(spec, perm, model_a.state_dict())
    model_b.load_state_dict(b)
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    res = matching.activation_matching(model_a, model_b, x, batch_size=32, refeed=True)
    alive = {g: c.diagonal() > 0.999 for g, c in matching.activation_correlations(model_a, model_a, x).items()}
    assert sum(int(m.sum()) for m in alive.values()) > 0.75 * sum(spec.sizes.values())
    _assert_recovers(spec, perm, res.perm, alive)
    assert torch.equal(model_b.state_dict()["conv1.weight"], b["conv1.weight"])  # B itself is not modified


def test_float32_sums_and_float64_means_agree_when_well_conditioned():
    model_a, model_b, spec, _ = _mlp_pair()
    x = torch.randn(512, 20, generator=torch.Generator().manual_seed(5))
    c64 = matching.activation_correlations(model_a, model_b, x, batch_size=128)  # equal batches: same averages
    c32 = matching.activation_correlations(model_a, model_b, x, batch_size=128, statistics="float32_sums")
    for g in spec.sizes:
        assert c32[g].dtype == torch.float64
        assert float((c32[g] - c64[g]).abs().max()) < 1e-5


def test_float32_sums_lose_the_correlations_of_activations_far_from_zero():
    """Units with a large common offset: E[a^2] - E[a]^2 cancels catastrophically in float32
    (Ainsworth et al.'s implementation), not in float64 (Jordan et al.'s)."""
    model_a, model_b, spec, perm = _mlp_pair()
    with torch.no_grad():
        for m in (model_a, model_b):
            m.hidden[0].bias += 3e4  # every first-layer unit active, mean ~3e4, std ~1
    x = torch.randn(512, 20, generator=torch.Generator().manual_seed(6))
    c64 = matching.activation_correlations(model_a, model_b, x, batch_size=128)["hidden.0"]
    c32 = matching.activation_correlations(model_a, model_b, x, batch_size=128,
                                           statistics="float32_sums")["hidden.0"]
    expected = P.inverse(perm)["hidden.0"]
    self64 = c64[torch.arange(len(expected)), expected]
    assert float(self64.min()) > 0.999  # float64: each unit still correlates 1 with its copy
    assert float((c32 - c64).abs().max()) > 0.1


def test_unknown_statistics_is_one_clear_error():
    model_a, model_b, _, _ = _mlp_pair()
    with pytest.raises(ValueError, match="unknown statistics 'float16'"):
        matching.activation_matching(model_a, model_b, torch.randn(8, 20), statistics="float16")
