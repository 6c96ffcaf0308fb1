"""Small instances of every architecture and norm variant, for property tests."""

import torch

from lmc_utils import models


def as_if_trained(model: torch.nn.Module, seed: int = 5) -> torch.nn.Module:
    """``model`` with every parameter moved off its initialisation by seeded noise (for Fixup, whose
    zero-initialised branch convs and head would make every output identically zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
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
