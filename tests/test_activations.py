"""Activation statistics: output_moments' early end of a forward pass, and the pre-activation table."""

import pandas as pd
import torch
from torch import nn

from lmc_utils import activations as A
from lmc_utils import models


def _vgg():
    torch.manual_seed(0)
    return models.vgg("vgg11", in_channels=1, num_classes=3, image_size=8, norm="layernorm",
                      width_multiplier=0.0625).eval()


def _calls(module: nn.Module) -> list:
    seen = []
    module.register_forward_hook(lambda *_: seen.append(1))
    return seen


def test_output_moments_stops_after_the_named_modules_and_measures_the_same():
    model = _vgg()
    x = torch.randn(30, 1, 8, 8)
    first = next(iter(A.hidden_layers(model)))  # the first ReLU
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    tail = _calls(head)
    fast = A.output_moments(model, [first], x, batch_size=10)  # 3 batches: only the first runs the head
    assert len(tail) == 1
    with torch.no_grad():  # the channel moments of the layer's output, from one whole pass
        seen = []
        h = dict(model.named_modules())[first].register_forward_hook(lambda _m, _i, out: seen.append(out))
        model(x)
        h.remove()
    ref = A.channels_last(seen[0]).double()
    torch.testing.assert_close(fast[first][0], ref.mean(0))
    torch.testing.assert_close(fast[first][1], ref.std(0, unbiased=False))


def test_output_moments_runs_every_batch_whole_when_a_module_is_called_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act, self.head = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.act(self.lin(self.act(x))))

    torch.manual_seed(0)
    model, x = Twice(), torch.randn(12, 4)
    head = _calls(model.head)
    got = A.output_moments(model, ["act"], x, batch_size=4)
    assert len(head) == 3  # no early end: "act" ran twice per forward
    with torch.no_grad():
        outs = torch.cat([torch.relu(x), torch.relu(model.lin(torch.relu(x)))]).double()
    torch.testing.assert_close(got["act"][0], outs.mean(0))
    torch.testing.assert_close(got["act"][1], outs.std(0, unbiased=False))


def test_pre_activation_table_is_statistics_tables_pre_columns():
    model = _vgg()
    x = torch.randn(25, 1, 8, 8)
    full = A.statistics_table(model, x, batch_size=10)
    pre = A.pre_activation_table(model, x, batch_size=10)
    cols = ["layer", "module", "group", "channels", "pre_mean", "pre_std"]
    pd.testing.assert_frame_equal(pre[cols], full[cols], check_exact=True)
    assert list(pre.columns) == cols
