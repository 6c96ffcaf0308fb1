"""Model arguments are checked up front, with one message naming the argument and the value."""

import pytest
import torch

from lmc_utils import models


@pytest.mark.parametrize("arch,kwargs,match", [
    ("mlp", {"width": -4}, r"width must be a positive integer, got -4"),
    ("mlp", {"width": 0}, r"width must be a positive integer, got 0"),
    ("mlp", {"width": "ten"}, r"width must be a positive integer, got 'ten'"),
    ("mlp", {"depth": 0}, r"depth must be a positive integer"),
    ("mlp", {"widht": 8}, r"unknown argument\(s\) \['widht'\]"),
    ("vgg", {"width_multiplier": -1}, r"width_multiplier must be a positive number, got -1"),
    ("resnet20", {"width_multiplier": 0}, r"width_multiplier must be a positive number, got 0"),
])
def test_bad_model_arguments_name_the_argument(arch, kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.build(arch, **kwargs)


def test_good_arguments_build():
    assert models.num_parameters(models.build("mlp", in_features=2, num_classes=2, width=[4, 3], depth=2)) == \
        (2 * 4 + 4) + (4 * 3 + 3) + (3 * 2 + 2)
    models.build("vgg", width_multiplier=0.125, in_channels=1, image_size=28)


@pytest.mark.parametrize("kwargs", [
    {"width": 6, "depth": 2},  # more outputs than examples per layer: baddbmm, and (W h^T)^T for the head
    {"width": [40, 3], "depth": 2, "norm": "layernorm"},
    {"width": 5, "depth": 1, "bias": False},
    {"width": 7, "depth": 3, "norm": "layernorm", "bias": False},
])
def test_forward_stacked_equals_forward_per_model_with_its_gradients(kwargs):
    torch.manual_seed(0)
    nets = [models.mlp(in_features=20, num_classes=3, **kwargs) for _ in range(3)]
    x = torch.randn(3, 8, 20)
    names = [k for k, _ in nets[0].named_parameters()]
    stacked = {k: torch.stack([dict(n.named_parameters())[k].detach() for n in nets]).requires_grad_() for k in names}
    out = nets[0].forward_stacked(stacked, x)
    out.square().sum().backward()
    for j, net in enumerate(nets):
        ref = net(x[j])
        torch.testing.assert_close(out[j], ref, rtol=1e-5, atol=1e-6)
        ref.square().sum().backward()
        for k, w in net.named_parameters():
            torch.testing.assert_close(stacked[k].grad[j], w.grad, rtol=1e-4, atol=1e-5)


def test_channel_layernorm_is_layernorm_over_channels_bit_for_bit():
    """ChannelLayerNorm's contiguous NHWC copy (a CPU speed-up) changes no number: output and
    gradients equal layer_norm on the strided channels-last view, exactly."""
    import torch.nn.functional as F
    from lmc_utils.models import ChannelLayerNorm
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, 5, 7, generator=g, requires_grad=True)
    norm = ChannelLayerNorm(6)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(6, generator=g) + 0.5)
        norm.bias.copy_(torch.randn(6, generator=g))
    w = norm.weight.detach().clone().requires_grad_(True)
    b = norm.bias.detach().clone().requires_grad_(True)
    ref = F.layer_norm(x.permute(0, 2, 3, 1), (6,), w, b, norm.eps).permute(0, 3, 1, 2)
    out = norm(x)
    assert torch.equal(out, ref)
    up = torch.randn(out.shape, generator=g)
    gx, gw, gb = torch.autograd.grad((out * up).sum(), (x, norm.weight, norm.bias))
    rx, rw, rb = torch.autograd.grad((ref * up).sum(), (x, w, b))
    assert torch.equal(gx, rx) and torch.equal(gw, rw) and torch.equal(gb, rb)
