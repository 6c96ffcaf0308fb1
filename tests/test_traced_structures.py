"""Traced specs beyond one group per axis (issue #41): grouped convolutions (blocked groups, weights
viewed block-diagonal), channel concatenation (each part keeps its group at its offset), GroupNorm
with several groups, and multi-head attention (heads permuted as wholes, the query/key and value units
within them; ViT's class token and position embedding with the residual stream); each checked for
the function it must preserve, the permutations it must refuse, and matching staying inside the
structure."""

import dataclasses

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from lmc_utils import permutation as P
from lmc_utils.matching import activation_matching, sinkhorn_weight_matching, verify_spec, weight_matching
from model_zoo_cases import with_random_norms


class _Grouped(nn.Module):
    """A 1x1 stem, a grouped 3x3 convolution (4 groups), GroupNorm with 2 groups, a depthwise
    convolution with a channel multiplier of 2, and a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 1)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.norm = nn.GroupNorm(2, 16)
        self.multiplied = nn.Conv2d(16, 32, 3, padding=1, groups=16)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        h = torch.relu(self.norm(self.grouped(torch.relu(self.stem(x)))))
        h = torch.relu(self.multiplied(h))
        return self.head(h.mean(dim=(2, 3)))


class _Concatenating(nn.Module):
    """DenseNet in miniature: every layer reads the concatenation of the stem and all earlier layers,
    through a BatchNorm over the concatenated channels."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.norms = nn.ModuleList([nn.BatchNorm2d(8 + 4 * i) for i in range(3)])
        self.layers = nn.ModuleList([nn.Conv2d(8 + 4 * i, 4, 3, padding=1) for i in range(3)])
        self.final = nn.BatchNorm2d(20)
        self.head = nn.Linear(20, 3)

    def forward(self, x):
        features = [self.stem(x)]
        for norm, layer in zip(self.norms, self.layers):
            features.append(layer(torch.relu(norm(torch.cat(features, 1)))))
        h = torch.relu(self.final(torch.cat(features, 1)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


X = torch.randn(2, 3, 8, 8)


def test_grouped_convolutions_permute_within_their_groups():
    torch.manual_seed(0)
    model = with_random_norms(_Grouped())
    spec = P.spec_for(model, X)
    stem, grouped, multiplied = spec.axes["stem.weight"][0], spec.axes["grouped.weight"][0], spec.axes["multiplied.weight"][0]
    assert spec.axes["grouped.weight"] == (grouped, stem, None, None)
    # stem's channels feed 4 convolution groups; grouped's output is normalised in 2 groups and feeds 16
    # (the multiplier: one input channel per group, which no permutation may move); multiplied's output
    # stays within its 16 groups of 2
    assert spec.blocks == {stem: 4, grouped: 16, multiplied: 16}
    assert spec.grouped == {"grouped.weight": 4, "multiplied.weight": 16}
    assert spec.view("grouped.weight", model.grouped.weight).shape == (16, 16, 3, 3)
    assert verify_spec(model, spec, X).ok
    perm = P.random_permutation(spec, 1)
    per = 16 // 4
    assert torch.equal(perm[stem] // per, torch.arange(16) // per)  # within its blocks
    assert torch.equal(perm[grouped], torch.arange(16))  # blocks of one unit: never moved


def test_a_permutation_across_convolution_groups_is_refused_and_would_change_the_function():
    torch.manual_seed(0)
    model = with_random_norms(_Grouped())
    spec = P.spec_for(model, X)
    stem = spec.axes["stem.weight"][0]
    across = P.identity(spec)
    across[stem] = torch.roll(torch.arange(16), 1)  # moves a unit into the next convolution group
    with pytest.raises(ValueError, match="moves units between its 4 blocks"):
        P.apply_permutation(spec, across, model.state_dict())
    # a spec without the blocks (a wrong one) lets such a permutation through: the function changes
    unblocked = dataclasses.replace(spec, blocks={})
    report = verify_spec(model, unblocked, X)
    assert not report.function_preserved


def test_resnext_bottlenecks_are_blocked_by_their_cardinality():
    model = tvm.resnext50_32x4d(weights=None)
    spec = P.spec_for(model)
    inner = spec.axes["layer1.0.conv2.weight"]
    assert spec.grouped["layer1.0.conv2.weight"] == 32
    assert spec.blocks[inner[0]] == 32 and spec.blocks[inner[1]] == 32
    assert spec.sizes[inner[1]] == 128 and len(spec.grouped) == 16


def test_weight_and_activation_matching_stay_within_the_blocks():
    torch.manual_seed(0)
    a, b = with_random_norms(_Grouped()), with_random_norms(_Grouped())
    spec = P.spec_for(a, X)
    wm = weight_matching(spec, a.state_dict(), b.state_dict())
    am = activation_matching(a, b, torch.randn(64, 3, 8, 8), spec)
    for result in (wm, am):
        for g, n in spec.blocks.items():
            per = spec.sizes[g] // n
            assert torch.equal(result.perm[g] // per, torch.arange(spec.sizes[g]) // per), g
        P.apply_permutation(spec, result.perm, b.state_dict())  # accepted
    with pytest.raises(NotImplementedError, match="plain spec"):
        sinkhorn_weight_matching(spec, a.state_dict(), b.state_dict(), steps=1)


def test_concatenated_channels_keep_each_parts_group_at_its_offset():
    torch.manual_seed(0)
    model = with_random_norms(_Concatenating())
    spec = P.spec_for(model, X)
    stem = spec.axes["stem.weight"][0]
    parts = [spec.axes[f"layers.{i}.weight"][0] for i in range(3)]
    final = spec.axes["final.weight"][0]
    assert spec.concats[final] == ((stem, 8), (parts[0], 4), (parts[1], 4), (parts[2], 4))
    assert spec.axes["head.weight"] == (None, final)
    assert spec.axes["layers.2.weight"][1] == spec.axes["norms.2.weight"][0]
    assert spec.parts(final) == [(stem, 0, 8, None), (parts[0], 8, 4, None), (parts[1], 12, 4, None), (parts[2], 16, 4, None)]
    assert set(spec.sizes) == {stem, *parts}  # a concatenation is no group of its own
    assert verify_spec(model, spec, X).ok
    perm = P.random_permutation(spec, 2)
    index = spec.index(final, perm)
    assert torch.equal(index[8:12], perm[parts[0]] + 8) and torch.equal(index[:8], perm[stem])


def test_a_concatenation_in_the_wrong_order_is_caught():
    torch.manual_seed(0)
    model = with_random_norms(_Concatenating())
    spec = P.spec_for(model, X)
    final = spec.axes["final.weight"][0]
    stem, first = spec.concats[final][0], spec.concats[final][1]
    swapped = dict(spec.concats)
    # the stem's 8 channels said to come second: same total, wrong offsets
    swapped[final] = (first, stem) + spec.concats[final][2:]
    report = verify_spec(model, dataclasses.replace(spec, concats=swapped), X)
    assert not report.function_preserved


def test_densenet_consumers_read_every_earlier_layer():
    model = tvm.densenet121(weights=None)
    spec = P.spec_for(model)
    name = spec.axes["features.denseblock1.denselayer6.conv1.weight"][1]
    assert [n for _, n in spec.concats[name]] == [64] + [32] * 5
    assert spec.axes["features.denseblock1.denselayer6.norm1.weight"] == (name,)
    assert spec.axes["classifier.weight"][1] in spec.concats


def test_specs_with_blocks_and_concatenations_survive_json():
    for model in (_Grouped(), _Concatenating()):
        spec = P.spec_for(model, X)
        again = P.PermutationSpec.from_json(spec.to_json())
        assert again == spec and not again.is_plain
    plain = P.spec_for(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    assert plain.is_plain and "blocks" not in plain.to_json()  # a plain spec's text is as before


def _small_vit() -> nn.Module:
    torch.manual_seed(0)
    model = tvm.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=4, hidden_dim=32,
                                  mlp_dim=64, num_classes=10)
    nn.init.normal_(model.heads.head.weight, std=0.5)  # torchvision initialises it to zero
    return model.eval()


def test_vit_attention_heads_are_one_group_permuted_by_whole_heads():
    model = _small_vit()
    spec = P.spec_for(model)
    stream = spec.axes["conv_proj.weight"][0]
    assert spec.axes["class_token"] == (None, None, stream)
    assert spec.axes["encoder.pos_embedding"] == (None, None, stream)
    qkv, inputs = spec.axes["encoder.layers.encoder_layer_0.self_attention.in_proj_weight"]
    assert inputs == stream
    units = spec.concats[qkv][0][0]
    assert spec.sizes[units] == 64 and spec.heads[units] == 4 and spec.structure(units) == (4, 2)
    # queries and keys: the first half of every head's 16 units, twice; values: the second half
    assert spec.concats[qkv] == ((units, 32, 16, 0), (units, 32, 16, 0), (units, 32, 16, 8))
    out, values = spec.axes["encoder.layers.encoder_layer_0.self_attention.out_proj.weight"]
    assert out == stream and spec.concats[values] == ((units, 32, 16, 8),)
    assert spec.axes["heads.head.weight"] == (None, stream)
    report = verify_spec(model)
    assert report.ok, str(report)

    perm = P.random_permutation(spec, 4)[units]
    heads = perm.view(4, 16) // 16
    assert bool((heads == heads[:, :1]).all()) and sorted(heads[:, 0].tolist()) == [0, 1, 2, 3]
    assert bool(((perm % 16) // 8 == (torch.arange(64) % 16) // 8).all())  # query/key units stay query/key


def test_a_permutation_splitting_a_head_is_refused_and_a_spec_without_heads_fails():
    model = _small_vit()
    spec = P.spec_for(model)
    units = next(iter(spec.heads))
    split = P.identity(spec)
    split[units] = torch.arange(64)
    split[units][[0, 16]] = split[units][[16, 0]]  # one query unit of head 0 swapped with one of head 1
    with pytest.raises(ValueError, match="does not move whole heads"):
        P.apply_permutation(spec, split, model.state_dict())
    free = dataclasses.replace(spec, heads={}, blocks={})  # units free to move between heads
    assert not verify_spec(model, free).function_preserved


def test_multihead_attention_alone_and_sequence_first():
    class _Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 12)
            self.attn = nn.MultiheadAttention(12, 3)  # [tokens, N, D]
            self.norm = nn.LayerNorm(12)
            self.out = nn.Linear(12, 2)

        def forward(self, x):
            h = self.fc(x)
            h = self.norm(h + self.attn(h, h, h, need_weights=False)[0])
            return self.out(h.mean(dim=0))

    torch.manual_seed(0)
    model = _Block().eval()
    x = torch.randn(5, 2, 6)
    spec = P.spec_for(model, x)
    assert spec.heads == {"attn heads": 3}
    assert verify_spec(model, spec, x).ok


def test_a_model_whose_outputs_ignore_the_input_is_reported_as_unchecked():
    model = _small_vit()
    nn.init.zeros_(model.heads.head.weight)  # as torchvision builds it
    report = verify_spec(model)
    assert not report.sensitive and not report.function_preserved and not report.ok
    assert "do not change when the permuted parameters do" in str(report)


def test_activation_matching_refuses_a_model_whose_groups_it_cannot_see():
    """ViT's attention heads and its token features have no layer whose outputs carry them on axis 1:
    activation matching says so, rather than return a permutation of some groups only."""
    a, b = _small_vit(), _small_vit()
    with pytest.raises(ValueError, match=r"names none for 4 of 5 groups .*use weight_matching"):
        activation_matching(a, b, torch.randn(8, 3, 32, 32))
