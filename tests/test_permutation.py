"""Permuting hidden units leaves a network's function unchanged; permutation algebra."""

import pytest
import torch

from lmc_utils import permutation as P
from model_zoo_cases import CASES, input_shape


def _randomise_norm_stats(model):
    """Give BN/LN non-trivial affine parameters and running statistics, so they are tested."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "running_var" in name:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif "running_mean" in name or (t.ndim == 1 and ("norm" in name or "shortcut.1" in name)):
                t.copy_(torch.randn(t.shape, generator=g) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_permutation_preserves_outputs(name):
    torch.manual_seed(0)
    model = _randomise_norm_stats(CASES[name]()).eval()
    spec = P.spec_for(model)
    x = torch.randn(8, *input_shape(name))
    before = model(x)
    perm = P.random_permutation(spec, seed=3)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perm.values())
    state = model.state_dict()
    permuted = P.apply_permutation(spec, perm, state)
    assert any(not torch.equal(state[k], permuted[k]) for k in state)  # weights really moved
    model.load_state_dict(permuted)
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_spec_covers_every_entry_and_groups(name):
    model = CASES[name]()
    spec = P.spec_for(model)
    spec.check_state(model.state_dict())
    assert set(spec.activations) == set(spec.sizes)
    assert P.PermutationSpec.from_json(spec.to_json()) == spec


def test_resnet_residual_stream_is_one_group():
    spec = P.spec_for(CASES["resnet20-batchnorm"]())
    stream1 = {k for k, _ in spec.groups["stream.1"]}
    assert {"stages.1.0.conv2.weight", "stages.1.0.shortcut.0.weight", "stages.1.2.conv2.weight",
            "stages.2.0.conv1.weight", "stages.1.1.norm2.running_mean"} <= stream1
    assert spec.axes["stages.2.0.shortcut.0.weight"] == ("stream.2", "stream.1", None, None)
    assert "stages.0.0.norm1.running_var" in spec.buffers


def test_apply_is_pure():
    model = CASES["mlp"]()
    spec = P.spec_for(model)
    state = model.state_dict()
    copy = {k: v.clone() for k, v in state.items()}
    P.apply_permutation(spec, P.random_permutation(spec, 0), state)
    assert all(torch.equal(copy[k], state[k]) for k in state)


def test_inverse_and_compose_algebra():
    spec = P.spec_for(CASES["resnet20-batchnorm"]())
    p, q = P.random_permutation(spec, 1), P.random_permutation(spec, 2)
    state = CASES["resnet20-batchnorm"]().state_dict()
    pq = P.compose(p, q)
    lhs = P.apply_permutation(spec, pq, state)
    rhs = P.apply_permutation(spec, p, P.apply_permutation(spec, q, state))
    assert all(torch.equal(lhs[k], rhs[k]) for k in state)
    ident = P.compose(P.inverse(pq), pq)
    assert all(torch.equal(v, torch.arange(len(v))) for v in ident.values())
    inv = P.inverse(pq)
    assert all(torch.equal(inv[g], P.compose(P.inverse(q), P.inverse(p))[g]) for g in inv)


def test_mismatched_architectures_are_rejected():
    spec = P.spec_for(CASES["mlp"]())
    other = CASES["mlp-nobias"]().state_dict()
    with pytest.raises(ValueError, match="does not match the permutation spec"):
        P.apply_permutation(spec, P.identity(spec), other)
    wider = P.spec_for(CASES["vgg11-batchnorm"]())
    with pytest.raises(ValueError, match="different"):
        P.apply_permutation(wider, P.identity(wider), CASES["vgg11-none"]().state_dict())


def test_unknown_model_has_no_spec():
    with pytest.raises(TypeError, match="no permutation spec"):
        P.spec_for(torch.nn.Linear(2, 2))
