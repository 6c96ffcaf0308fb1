"""verify_spec: the public check of a permutation spec on a model (issue #41).

Correct specs pass (outputs unchanged, planted permutation recovered exactly), a deliberately wrong
spec fails with a readable report, and a model no spec can be built for is reported, not raised."""

import dataclasses

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from lmc_utils import models
from lmc_utils import permutation as P
from lmc_utils.matching import SpecReport, verify_spec
from model_zoo_cases import vgg_small_head, with_random_norms


MODELS = {
    "package MLP": lambda: models.mlp(width=32, depth=3),
    "package ResNet20": lambda: models.resnet20(width_multiplier=1, num_classes=10),
    "torchvision ResNet18": lambda: tvm.resnet18(weights=None, num_classes=10),
    "torchvision VGG11-BN": lambda: vgg_small_head("vgg11_bn"),
    "torchvision VGG16": lambda: vgg_small_head("vgg16"),
    "torchvision MobileNetV2": lambda: tvm.mobilenet_v2(weights=None, num_classes=10),
    "torchvision MobileNetV3-Small": lambda: tvm.mobilenet_v3_small(weights=None, num_classes=10),
    "torchvision DenseNet121": lambda: tvm.densenet121(weights=None, num_classes=10),
    # beyond the list, cheap: concatenated branches, grouped convolutions with SE, Fire modules
    "torchvision GoogLeNet": lambda: tvm.googlenet(weights=None, num_classes=10, aux_logits=False, init_weights=True),
    "torchvision RegNetY-400MF": lambda: tvm.regnet_y_400mf(weights=None, num_classes=10),
    "torchvision SqueezeNet1.0": lambda: tvm.squeezenet1_0(weights=None, num_classes=10),
    "torchvision MNASNet0.5": lambda: tvm.mnasnet0_5(weights=None, num_classes=10),
    "torchvision ConvNeXt-T": lambda: tvm.convnext_tiny(weights=None, num_classes=10),
}


def _vit_b_16() -> nn.Module:
    model = tvm.vit_b_16(weights=None, num_classes=10)
    nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision initialises it to zero
    return model


# ResNet50-size models: about 10-30 s each on one thread
LARGE_MODELS = {
    "torchvision ResNet50": lambda: tvm.resnet50(weights=None, num_classes=10),
    "torchvision WRN50-2": lambda: tvm.wide_resnet50_2(weights=None, num_classes=10),
    "torchvision ResNeXt50": lambda: tvm.resnext50_32x4d(weights=None, num_classes=10),
    "torchvision ViT-B/16": _vit_b_16,
}


@pytest.mark.parametrize("name", sorted(MODELS) + [pytest.param(n, marks=pytest.mark.slow) for n in sorted(LARGE_MODELS)])
def test_correct_specs_pass(name):
    torch.manual_seed(0)
    model = with_random_norms({**MODELS, **LARGE_MODELS}[name]())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = verify_spec(model)
    assert report.ok, str(report)
    assert report.function_preserved and report.planted_recovered and not report.error
    assert report.output_difference < report.tolerance and sum(report.groups.values()) > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the model is left as it was
    assert "OK" in str(report) and "recovered exactly" in str(report)


def test_the_report_lists_what_no_group_permutes():
    report = verify_spec(with_random_norms(tvm.resnet18(weights=None, num_classes=10)))
    assert report.unpermuted == ["fc.bias"]  # the classifier's bias: its axis is the classes
    assert report.counters == 20  # num_batches_tracked of every BatchNorm layer


def test_a_wrong_spec_fails_with_a_readable_report():
    """The second hidden layer's input axis left unpermuted: its inputs are shuffled but its weights are
    not, so the function changes; the report must say so and not raise."""
    torch.manual_seed(0)
    model = models.mlp(width=32, depth=3)
    spec = P.spec_for(model)
    wrong = dataclasses.replace(spec, axes={**spec.axes, "hidden.1.weight": ("hidden.1", None)})
    report = verify_spec(model, wrong)
    assert not report.ok and not report.function_preserved
    assert report.output_difference > 100 * report.tolerance
    text = str(report)
    assert "FAILED" in text and "CHANGED" in text
    assert isinstance(report, SpecReport) and report._repr_markdown_().startswith("```")


def test_a_model_without_a_spec_is_reported_not_raised():
    report = verify_spec(tvm.shufflenet_v2_x0_5(weights=None))
    assert not report.ok and "UnsupportedModel" in report.error
    assert "node 'view'" in str(report) and "of concatenated features" in str(report)


def test_a_correct_spec_that_weight_matching_cannot_recover_is_told_apart():
    """MobileNetV2 on its own weights at random init: the traced spec preserves the function, but
    weight matching's coordinate ascent stops at a local optimum of its objective (its 1x1 projections'
    terms drown the others); the report says which it is. On generic weights (the default) the same
    spec's planted permutation is recovered exactly."""
    torch.manual_seed(0)
    model = tvm.mobilenet_v2(weights=None, num_classes=10)
    report = verify_spec(model, planted_on="model")
    assert report.function_preserved and not report.planted_recovered
    assert report.objective < report.planted_objective
    assert "local optimum" in str(report)
    generic = verify_spec(model)
    assert generic.ok and "on generic N(0, 1) weights" in str(generic)
    good = verify_spec(models.mlp(width=16, depth=2), planted_on="model")
    assert good.objective == pytest.approx(good.planted_objective, rel=1e-6)
    assert "on the model's weights" in str(good)
    with pytest.raises(ValueError, match="planted_on"):
        verify_spec(model, planted_on="trained")


def test_a_spec_of_another_architecture_is_reported():
    small = models.mlp(width=16, depth=2)
    report = verify_spec(models.mlp(width=32, depth=2), P.spec_for(small))
    assert not report.ok and "different width" in report.error


def test_the_same_call_gives_the_same_report_and_leaves_the_global_rng_alone():
    model = models.mlp(width=16, depth=2)
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    first = verify_spec(model)
    assert torch.equal(torch.rand(1), expected_next)
    assert verify_spec(model) == first
