"""Weight matching at scale (issue #41): the memory estimate before a run, and ``chunk_bytes``, which
bounds the memory by making every product in slices and must give the same permutation."""

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from lmc_utils import models
from lmc_utils import permutation as P
from lmc_utils.matching import MemoryEstimate, weight_matching, weight_matching_memory


def _pair(build):
    torch.manual_seed(0)
    return build(), build()


CASES = {
    "package ResNet20": lambda: models.resnet20(width_multiplier=1, num_classes=10),
    "DenseNet (concatenations)": lambda: tvm.densenet121(weights=None, num_classes=10),
    "ResNeXt (grouped convolutions)": lambda: tvm.resnext50_32x4d(weights=None, num_classes=10),
    "ViT (attention heads)": lambda: tvm.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=4,
                                                            hidden_dim=32, mlp_dim=64, num_classes=10),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_chunked_products_give_the_same_permutation(name):
    a, b = _pair(CASES[name])
    spec = P.spec_for(a)
    sa, sb = a.state_dict(), b.state_dict()
    whole = weight_matching.uncached(spec, sa, sb, max_sweeps=3)
    sliced = weight_matching.uncached(spec, sa, sb, max_sweeps=3, chunk_bytes=2 ** 16)
    assert all(torch.equal(whole.perm[g], sliced.perm[g]) for g in spec.sizes)
    assert sliced.objective == pytest.approx(whole.objective, rel=1e-5)


def test_the_estimate_adds_up_and_chunks_bound_it():
    a, _ = _pair(lambda: models.resnet20(width_multiplier=2, num_classes=10))
    spec = P.spec_for(a)
    state = a.state_dict()
    full = weight_matching_memory(spec, state)
    matched = {k: v.numel() * 4 for k, v in state.items()
               if k not in spec.buffers and any(g is not None for g in spec.axes[k])}
    convs = sum(n for k, n in matched.items() if state[k].ndim == 4)
    kernels = sum(n for k, n in matched.items() if state[k].ndim == 4 and state[k].shape[2] > 1)
    assert isinstance(full, MemoryEstimate)
    # B's layouts always copies; A's for the convolutions ([out, in, k, k] re-laid), not for biases or norms
    assert full.weights == sum(matched.values()) + convs
    assert full.peak == full.weights + full.products + full.temporary + full.costs
    head = sum(n for k, n in matched.items() if state[k].ndim == 2 and spec.axes[k][0] is None)
    # a 3x3 convolution's [out, in * 9] matrix is a copy, and so is the classifier's [in, classes]; a 1x1
    # convolution's, a bias's, a norm's are views
    assert full.products == kernels + head
    chunked = weight_matching_memory(spec, state, chunk_bytes=2 ** 16)
    largest = max(matched.values())  # B's largest entry, permuted and laid out when matching starts
    assert chunked.products == 0 and chunked.temporary == max(2 * max(2 ** 16, 4 * 128 * 128), 2 * largest)
    assert chunked.peak < full.peak
    assert "GiB" in str(full)


def test_grouped_weights_are_counted_as_weight_matching_sees_them():
    """A grouped convolution is matched as its dense block-diagonal view: G times its stored size."""
    model = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, groups=4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))
    spec = P.spec_for(model, torch.randn(2, 3, 8, 8))
    est = weight_matching_memory(spec, model.state_dict())
    # the grouped weight seen [16, 16, 3, 3]; the convolutions' layouts copied for A and B, the biases and
    # the classifier's [2, 16] (already laid out) for B only
    assert est.weights == (2 * (16 * 3 + 16 * 16 * 9) + 16 + 16 + 2 * 16) * 4
