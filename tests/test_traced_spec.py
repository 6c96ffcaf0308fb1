"""Specs traced with torch.fx: the package's hand specs, torchvision CNNs, and clear refusals.

For every supported torchvision CNN at random init: permuting by a random permutation of the traced
spec leaves the outputs unchanged (BatchNorm in eval mode with non-trivial running statistics), and
weight matching from the identity against a permuted copy recovers the planted permutation exactly
on the model's own weights (ResNet18 and VGG11-BN here; ``tests/test_verify_spec.py`` checks every
supported torchvision model with ``verify_spec`` on generic weights). Models are built
once per module (``_tv`` fixture) since they are large. torchvision's VGGs keep their conv features,
7x7 adaptive pool and flatten, but their two 4096-unit classifier layers are replaced by 64-unit ones
of the same layout (the full head alone costs about 1 TFLOP per weight-matching sweep); weight
matching of the full-size models is timed in ``bench/bench_weight_matching.py``.
"""

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from lmc_utils import matching
from lmc_utils import permutation as P
from lmc_utils.traced_spec import UnsupportedModel, traced_spec
from weight_matching_oracle import weight_matching_reference
from model_zoo_cases import CASES, input_shape, vgg_small_head, with_random_norms

TORCHVISION = ("resnet18", "resnet50", "wide_resnet50_2", "vgg11_bn", "vgg16")


def _canonical(spec: P.PermutationSpec):
    """The spec up to group names: the set of groups (each the set of (key, axis) it permutes),
    and each group's activation modules."""
    groups = {g: frozenset(e) for g, e in spec.groups.items()}
    return set(groups.values()), {groups[g]: frozenset(v) for g, v in spec.activations.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tracing_package_models_gives_their_hand_specs(name):
    model = CASES[name]()
    hand, traced = P.spec_for(model), traced_spec(model)
    assert set(traced.axes) == set(hand.axes) and traced.buffers == hand.buffers
    assert _canonical(traced) == _canonical(hand)
    assert traced.views == {} and sorted(traced.sizes.values()) == sorted(hand.sizes.values())


@pytest.fixture(scope="module")
def _tv():
    """name -> (model, spec, state a, planted permutation, state b = perm(a)), built on first use."""
    built = {}

    def get(name):
        if name not in built:
            torch.manual_seed(0)
            model = vgg_small_head(name) if name.startswith("vgg") else getattr(tvm, name)(weights=None, num_classes=10)
            model = with_random_norms(model)
            spec = P.spec_for(model)
            state_a = {k: v.clone() for k, v in model.state_dict().items()}
            perm = P.random_permutation(spec, seed=3)
            built[name] = (model, spec, state_a, perm, P.apply_permutation(spec, perm, state_a))
        return built[name]

    return get


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_permutation_preserves_outputs(_tv, name):
    model, spec, state_a, perm, state_b = _tv(name)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.load_state_dict(state_a)
        before = model(x)
        model.load_state_dict(state_b)
        after = model(x)
        model.load_state_dict(state_a)
    assert sum(int((p != torch.arange(len(p))).sum()) for p in perm.values()) > 0.9 * sum(spec.sizes.values())
    assert before.abs().max() > 1e-3  # a non-degenerate output
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5 * float(before.abs().max()))


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn"])
def test_torchvision_weight_matching_recovers_planted_permutation(_tv, name):
    _, spec, state_a, perm, state_b = _tv(name)
    res = matching.weight_matching(spec, state_a, state_b, seed=0)
    expected = P.inverse(perm)
    wrong = {g: int((res.perm[g] != expected[g]).sum()) for g in spec.sizes}
    assert not any(wrong.values()), f"mismatched units per group: { {g: n for g, n in wrong.items() if n} }"
    aligned = P.apply_permutation(spec, res.perm, state_b)
    assert all(torch.equal(aligned[k], state_a[k]) for k in state_a)


def test_resnet50_residual_streams_and_head(_tv):
    _, spec, *_ = _tv("resnet50")
    groups = {g: {k for k, _ in e} for g, e in spec.groups.items()}
    stream = spec.axes["layer2.0.downsample.0.weight"][0]
    # every block output of stage 2, its shortcut and BN, and the next stage's inputs share one group
    assert {"layer2.0.conv3.weight", "layer2.3.conv3.weight", "layer2.3.bn3.running_mean",
            "layer2.0.downsample.1.weight", "layer3.0.conv1.weight", "layer3.0.downsample.0.weight"} <= groups[stream]
    assert spec.axes["layer3.0.downsample.0.weight"][1] == stream
    assert spec.axes["layer2.1.conv1.weight"][1] == stream
    inner = spec.axes["layer2.1.conv1.weight"][0]
    assert inner != stream and spec.axes["layer2.1.conv2.weight"][1] == inner
    assert spec.axes["fc.weight"][0] is None and spec.sizes[spec.axes["fc.weight"][1]] == 2048
    assert spec.axes["conv1.weight"][1] is None  # the input image is never permuted
    assert len(spec.sizes) == 1 + 4 + 2 * 16  # stem + four streams + two inner groups per bottleneck
    assert "layer1.0.bn1.running_var" in spec.buffers


def test_vgg16_classifier_reads_flattened_7x7_maps(_tv):
    _, spec, *_ = _tv("vgg16")
    last_conv = spec.axes["features.28.weight"][0]
    assert spec.views == {"classifier.0.weight": (64, 512, 49)}
    assert spec.axes["classifier.0.weight"] == ("classifier.0", last_conv, None)
    assert spec.axes["classifier.6.weight"] == (None, "classifier.3")


class _PooledHead(nn.Module):
    """conv -> BN -> ReLU -> 3x3 max pool -> flatten -> Linear -> ReLU -> Linear, with a residual."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.AdaptiveMaxPool2d(3)
        self.fc = nn.Linear(6 * 9, 16)
        self.ln = nn.LayerNorm(16)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        h = h + torch.relu(self.conv2(h))
        h = self.pool(h).view(h.size(0), -1)
        return self.out(torch.relu(self.ln(self.fc(h))))


def test_flatten_view_small_model_invariance_and_recovery():
    torch.manual_seed(0)
    model = with_random_norms(_PooledHead())
    x = torch.randn(8, 2, 12, 12)
    spec = P.spec_for(model, x)
    assert spec.views == {"fc.weight": (16, 6, 9)} and spec.axes["conv2.weight"][:2] == ("conv", "conv")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    perm = P.random_permutation(spec, 5)
    permuted = P.apply_permutation(spec, perm, state)
    assert permuted["fc.weight"].shape == state["fc.weight"].shape
    before = model(x)
    model.load_state_dict(permuted)
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-6)
    res = matching.weight_matching(spec, state, permuted, seed=0)
    assert all(torch.equal(res.perm[g], P.inverse(perm)[g]) for g in spec.sizes)
    ref = weight_matching_reference(spec, state, permuted, seed=0)
    assert all(torch.equal(ref.perm[g], res.perm[g]) for g in spec.sizes)
    assert P.PermutationSpec.from_json(spec.to_json()) == spec


def test_activation_matching_on_a_traced_spec():
    torch.manual_seed(0)
    model = with_random_norms(_PooledHead())
    x = torch.randn(64, 2, 12, 12)
    spec = P.spec_for(model, x)
    assert spec.activations == {"conv": ("bn",), "fc": ("ln",)}  # the shared-free modules carrying each group
    other = with_random_norms(_PooledHead())
    other.load_state_dict(P.apply_permutation(spec, P.random_permutation(spec, 2), model.state_dict()))
    res = matching.activation_matching(model, other, x, spec=spec)
    other.load_state_dict(P.apply_permutation(spec, res.perm, other.state_dict()))
    torch.testing.assert_close(other(x), model(x), rtol=1e-5, atol=1e-6)


def test_spec_for_leaves_the_model_as_it_was():
    model = _PooledHead().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    P.spec_for(model, torch.randn(4, 2, 8, 8))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
def test_depthwise_convolutions_keep_their_input_group(name):
    """MobileNet's depthwise convolutions (one filter per channel) permute with the channels they read,
    and its squeeze-and-excitation gates (V3) with the channels they scale: the traced spec preserves
    the function under a random permutation of every group."""
    from lmc_utils.matching import verify_spec

    torch.manual_seed(0)
    model = with_random_norms(getattr(tvm, name)(weights=None, num_classes=10))
    spec = P.spec_for(model)
    depthwise = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise
    for n in depthwise:
        g = spec.axes[f"{n}.weight"][0]
        assert g is not None and spec.axes[f"{n}.weight"][1:] == (None, None, None)
    report = verify_spec(model, spec)
    assert report.function_preserved, str(report)


@pytest.mark.parametrize("name, pattern", [
    ("shufflenet_v2_x0_5", r"node 'view' .*reshape \[2, 48, 8, 8\] -> \[2, 2, 24, 8, 8\] of concatenated features"),
    ("swin_t", r"node '_get_relative_position_bias' .*parameter 'features.1.0.attn.relative_position_bias_table' "
               r"is used outside a layer"),
])
def test_unsupported_torchvision_models_are_refused_by_node(name, pattern):
    with pytest.raises(UnsupportedModel, match=pattern):
        P.spec_for(getattr(tvm, name)(weights=None))


class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.block = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.block(self.fc(x)))


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        h = self.fc(x[:, None].expand(-1, 3, -1))  # [N, 3 tokens, 8]
        return self.out(torch.nn.functional.scaled_dot_product_attention(h, h, h)[:, 0])


class _CatSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 8), nn.Linear(4, 8), nn.Linear(4, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        return self.out(torch.cat([self.a(x), self.b(x)], dim=1) + self.c(x))


class _Mixing(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.mix = nn.Parameter(torch.randn(8, 8))
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.fc(x) @ self.mix)


class _Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.spare, self.out = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


@pytest.mark.parametrize("model, pattern", [
    (_Encoder(), r"node 'block' .*attention \(TransformerEncoderLayer\) is not supported"),
    (_Attention(), r"node 'scaled_dot_product_attention' .*attention outside nn.MultiheadAttention"),
    (_CatSum(), r"node 'add' .*a sum or product of concatenated features is not supported"),
    (_Mixing(), r"node 'matmul' .*parameter 'mix' is used outside a layer"),
    (_Unused(), r"state entry 'spare.weight' belongs to no layer"),
    (_Branchy(), r"torch.fx cannot trace it"),
    (nn.Linear(2, 2), r"no permutation spec for Linear"),
])
def test_unsupported_constructs_raise_one_clear_error(model, pattern):
    with pytest.raises(UnsupportedModel, match=pattern):
        P.spec_for(model, torch.randn(2, 4) if not isinstance(model, nn.Linear) else None)


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
def test_weight_norm_parametrisation_is_refused():
    model = nn.Sequential(nn.utils.weight_norm(nn.Linear(4, 8)), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(UnsupportedModel, match=r"state entry '0.weight_[gv]'"):
        P.spec_for(model)
