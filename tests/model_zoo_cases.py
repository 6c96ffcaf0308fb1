"""Small instances of every architecture and norm variant, for property tests."""

import torch
import torchvision.models as tvm
from torch import nn

from lmc_utils import models


def as_if_trained(model: torch.nn.Module, seed: int = 5) -> torch.nn.Module:
    """``model`` with every parameter moved off its initialisation by seeded noise (for Fixup, whose
    zero-initialised branch convs and head would make every output identically zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def with_random_norms(model: nn.Module, seed: int = 1) -> nn.Module:
    """``model`` in eval mode with non-trivial norm parameters (BatchNorm and GroupNorm scales and
    shifts) and BatchNorm running statistics, as after training, so that a wrong permutation of them shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.weight is not None:
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.2 + 1.0)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def vgg_small_head(name: str) -> nn.Module:
    """torchvision's VGG ``name`` (10 classes) with its conv features, 7x7 pool and flatten, but its two
    4096-unit classifier layers replaced by 64-unit ones of the same layout (the full head alone costs
    about 1 TFLOP per weight-matching sweep)."""
    model = getattr(tvm, name)(weights=None, num_classes=10)
    model.classifier[0] = nn.Linear(512 * 7 * 7, 64)
    model.classifier[3] = nn.Linear(64, 64)
    model.classifier[6] = nn.Linear(64, 10)
    return model


CASES = {
    "mlp": lambda: models.mlp(in_features=12, num_classes=5, width=16, depth=3),
    "mlp-layernorm": lambda: models.mlp(in_features=12, num_classes=5, width=16, depth=3, norm="layernorm"),
    "mlp-nobias": lambda: models.mlp(in_features=12, num_classes=5, width=[16, 12, 8], depth=3, bias=False),
    "vgg11-none": lambda: models.vgg("vgg11", in_channels=1, image_size=28, norm="none", width_multiplier=0.125),
    "vgg11-batchnorm": lambda: models.vgg("vgg11", in_channels=1, image_size=28, norm="batchnorm", width_multiplier=0.125),
    "vgg11-layernorm": lambda: models.vgg("vgg11", in_channels=3, image_size=32, norm="layernorm", width_multiplier=0.125),
    "vgg16-batchnorm": lambda: models.vgg("vgg16", in_channels=3, image_size=32, norm="batchnorm", width_multiplier=0.0625),
    "resnet20-none": lambda: models.resnet20(in_channels=3, norm="none", width_multiplier=0.5),
    "resnet20-batchnorm": lambda: models.resnet20(in_channels=3, norm="batchnorm", width_multiplier=0.5),
    "resnet20-layernorm": lambda: models.resnet20(in_channels=1, norm="layernorm", width_multiplier=0.5),
    "resnet20-fixup": lambda: as_if_trained(models.resnet20(in_channels=3, norm="fixup", width_multiplier=0.5)),
}


def input_shape(name: str) -> tuple[int, ...]:
    if name.startswith("mlp"):
        return (12,)
    if name in ("vgg11-none", "vgg11-batchnorm", "resnet20-layernorm"):
        return (1, 28, 28)
    return (3, 32, 32)
