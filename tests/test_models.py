"""Model arguments are checked up front, with one message naming the argument and the value."""

import pytest

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
