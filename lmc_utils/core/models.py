"""Model families used across the papers: MLP, VGG11/VGG16 and ResNet20 (also with Fixup).

Every ReLU is its own module (never reused), so forward hooks on it see exactly one
layer's activations; :mod:`lmc_utils.permutation` names those modules as the places where
each permutation group's features can be observed (activation matching, statistics).

Normalisation variants: ``none`` (plain), ``batchnorm`` and ``layernorm``. For conv nets
LayerNorm normalises over the channels at each spatial position (:class:`ChannelLayerNorm`,
as a Flax ``LayerNorm`` on NHWC tensors does in Git Re-Basin), which commutes with
permutations of the channels. ``resnet20(norm="fixup")`` is a ResNet20 without normalisation
trained from Fixup's initialisation (Zhang et al. 2019, :class:`FixupResNet`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("none", "batchnorm", "layernorm")
INITS = ("kaiming_uniform", "kaiming_normal")
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``[N, C, H, W]`` feature maps (per position)."""

    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the explicit copy to NHWC is the same numbers (bit for bit, forward and training, tested on
        # VGG11-LN) and 3.8x faster on CPU than layer_norm on the strided view: 10 vs 39 ms for
        # [500, 8, 28, 28] at 2 threads; a VGG11-LN x1/8 training step runs 2x faster
        y = F.layer_norm(x.permute(0, 2, 3, 1).contiguous(), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _check(norm: str, init: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")


def _norm2d(norm: str, channels: int) -> nn.Module:
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    if norm == "layernorm":
        return ChannelLayerNorm(channels)
    return nn.Identity()


def _biases(norm: str, bias: bool | None) -> tuple[bool, bool]:
    """(conv bias, head bias) for conv nets: by default no conv bias under BatchNorm."""
    if bias is None:
        return norm != "batchnorm", True
    return bias, bias


def _init(model: nn.Module, init: str) -> nn.Module:
    """``kaiming_uniform`` keeps PyTorch's default init; ``kaiming_normal`` redraws weights
    from N(0, 2/fan_in) (He et al. 2015) and zeroes biases. Norm layers start at (1, 0)."""
    if init == "kaiming_normal":
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return model


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units: Linear -> [LayerNorm] -> ReLU, then a Linear head.

    State-dict keys: ``hidden.{i}.weight|bias``, ``norms.{i}.weight|bias``, ``out.weight|bias``.
    Inputs of any shape are flattened.
    """

    def __init__(self, in_features: int, num_classes: int, width: int | list[int], depth: int,
                 norm: str, bias: bool):
        super().__init__()
        widths = list(width) if isinstance(width, (list, tuple)) else [width] * depth
        if len(widths) != depth or depth < 1:
            raise ValueError(f"MLP needs depth >= 1 hidden layers and one width per layer, got {widths} for depth {depth}")
        sizes = [in_features] + widths
        self.hidden = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(nn.LayerNorm(w, elementwise_affine=True, bias=bias) if norm == "layernorm"
                                   else nn.Identity() for w in widths)
        self.acts = nn.ModuleList(nn.ReLU() for _ in widths)
        self.out = nn.Linear(widths[-1], num_classes, bias=bias)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for linear, norm, act in zip(self.hidden, self.norms, self.acts):
            x = act(norm(linear(x)))
        return self.out(x)

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits of m MLPs of this structure at once: ``params`` maps each state-dict key to the m
        models' tensors stacked (``[m, ...]``) and model j sees ``x[j]`` (``x``: ``[m, batch, ...]``).

        One batched matrix product per layer (``torch.baddbmm``), so each model gets the arithmetic
        of :meth:`forward` up to float rounding; this is what batched training
        (:func:`lmc_utils.zoo.train_many`) differentiates.
        """
        h = x.flatten(2)
        for i, norm in enumerate(self.norms):
            h = _stacked_linear(h, params[f"hidden.{i}.weight"], params.get(f"hidden.{i}.bias"))
            if isinstance(norm, nn.LayerNorm):
                h = F.layer_norm(h, norm.normalized_shape, eps=norm.eps) * params[f"norms.{i}.weight"].unsqueeze(1)
                if f"norms.{i}.bias" in params:
                    h = h + params[f"norms.{i}.bias"].unsqueeze(1)
            h = h.relu_()  # in place: h is this layer's fresh output, and no backward needs it before the ReLU
        return _stacked_linear(h, params["out.weight"], params.get("out.bias"))


class _StackedLinear(torch.autograd.Function):
    """``h[j] @ weight[j].T + bias[j]`` for every model j (``h``: ``[m, batch, in]``, ``weight``:
    ``[m, out, in]``), with each batched product in the orientation whose result has the wider
    last dimension: on CPU a batched product with a narrow result (the 2 outputs of a Moons head, the
    2 inputs of its first layer) is several times slower than the same product transposed.
    Measured in ``bench/batched_training_09.md``; the numbers equal autograd's up to rounding."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(h, weight)
        ctx.has_bias = bias is not None
        if weight.shape[1] < h.shape[1]:  # fewer outputs than examples: (W h^T)^T, made contiguous
            if bias is None:
                return torch.bmm(weight, h.transpose(1, 2)).transpose(1, 2).contiguous()
            return torch.baddbmm(bias.unsqueeze(2), weight, h.transpose(1, 2)).transpose(1, 2).contiguous()
        if bias is None:
            return torch.bmm(h, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight = ctx.saved_tensors
        grad_h = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_h = torch.bmm(grad, weight)
        if ctx.needs_input_grad[1]:
            if weight.shape[2] >= weight.shape[1]:  # at least as many inputs as outputs: g^T h
                grad_weight = torch.bmm(grad.transpose(1, 2), h)
            else:
                grad_weight = torch.bmm(h.transpose(1, 2), grad).transpose(1, 2).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(1)
        return grad_h, grad_weight, grad_bias


def _stacked_linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``h[j] @ weight[j].T + bias[j]`` for every model j (``h``: ``[m, batch, in]``)."""
    return _StackedLinear.apply(h, weight, bias)


def mlp(in_features: int = 784, num_classes: int = 10, width: int | list[int] = 512, depth: int = 3,
        norm: str = "none", bias: bool = True, init: str = "kaiming_uniform") -> MLP:
    """Multi-layer perceptron (Ainsworth et al.'s MNIST MLP is ``width=512, depth=3``).

    ``norm`` is ``none`` or ``layernorm`` (BatchNorm is not offered for MLPs here).
    """
    _check(norm, init)
    if norm == "batchnorm":
        raise ValueError("mlp supports norm 'none' or 'layernorm'")
    return _init(MLP(in_features, num_classes, width, depth, norm, bias), init)


class VGG(nn.Module):
    """VGG feature extractor (conv3x3 -> norm -> ReLU, max-pools) + global average pool + Linear.

    State-dict keys: ``features.{i}.{conv,norm}.*`` for the i-th conv layer and ``classifier.*``.
    A max-pool is skipped when the feature map is already 1x1, so 28x28 inputs work (four
    pools: 28 -> 14 -> 7 -> 3 -> 1) as well as 32x32 (five pools).
    """

    def __init__(self, config: list[int | str], in_channels: int, num_classes: int, image_size: int,
                 norm: str, bias: bool, head_bias: bool, width_multiplier: float):
        super().__init__()
        layers: list[nn.Module] = []
        self.pool_after: list[bool] = []
        self.sizes: list[int] = []  # each conv layer's output height (= width)
        channels, size = in_channels, image_size
        for item in config:
            if item == "M":
                if size >= 2 and layers:
                    self.pool_after[-1] = True
                    size //= 2
                continue
            out = max(1, int(round(int(item) * width_multiplier)))
            block = nn.Module()
            block.conv = nn.Conv2d(channels, out, 3, padding=1, bias=bias)
            block.norm = _norm2d(norm, out)
            block.act = nn.ReLU()
            layers.append(block)
            self.pool_after.append(False)
            self.sizes.append(size)
            channels = out
        self.features = nn.ModuleList(layers)
        self.classifier = nn.Linear(channels, num_classes, bias=head_bias)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, pool in zip(self.features, self.pool_after):
            x = block.act(block.norm(block.conv(x)))
            if pool:
                x = F.max_pool2d(x, 2)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits of m VGGs of this structure at once, as :meth:`MLP.forward_stacked`: ``params`` maps
        each state-dict key to the m models' tensors stacked (``[m, ...]``), model j sees ``x[j]``
        (``x``: ``[m, batch, C, H, W]``). The m networks are one network of grouped convolutions, one
        group per model (model j owns channels ``[j * c, (j + 1) * c)`` of every layer), so each model
        gets the arithmetic of :meth:`forward` up to float rounding, and a model's outputs do not
        depend on the other groups' values. LayerNorm or no norm only: BatchNorm's running statistics
        are buffers that batched training does not keep (:func:`lmc_utils.zoo.train_many`)."""
        if self.norm == "batchnorm":
            raise ValueError("forward_stacked does not run BatchNorm VGGs (running statistics are buffers)")
        m, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, -1, *x.shape[3:])  # [batch, m * C, H, W]
        for i, pool in enumerate(self.pool_after):
            w = params[f"features.{i}.conv.weight"]
            bias = params.get(f"features.{i}.conv.bias")
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), None if bias is None else bias.reshape(-1), padding=1,
                         groups=m)
            if self.norm == "layernorm":  # per pixel and model over its channels, as ChannelLayerNorm
                c = w.shape[1]
                y = h.permute(0, 2, 3, 1).reshape(b, h.shape[2], h.shape[3], m, c)
                y = F.layer_norm(y, (c,), eps=self.features[i].norm.eps)
                y = y * params[f"features.{i}.norm.weight"] + params[f"features.{i}.norm.bias"]
                h = y.reshape(b, h.shape[2], h.shape[3], m * c).permute(0, 3, 1, 2)
            h = F.relu(h)
            if pool:
                h = F.max_pool2d(h, 2)
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1).view(b, m, -1).transpose(0, 1).contiguous()
        return _stacked_linear(h, params["classifier.weight"], params.get("classifier.bias"))


def vgg(config: str = "vgg11", in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
        norm: str = "batchnorm", bias: bool | None = None, width_multiplier: float = 1.0,
        init: str = "kaiming_uniform") -> VGG:
    """VGG11 or VGG16 (Simonyan & Zisserman) for small images.

    ``bias=None`` means bias in conv layers unless ``norm='batchnorm'`` (where BN's shift
    makes it redundant) and a bias in the classifier; ``True``/``False`` sets every layer.
    ``width_multiplier`` scales every conv's channels (e.g. 0.25 -> 16..128 channels).
    """
    _check(norm, init)
    if config not in VGG_CONFIGS:
        raise ValueError(f"unknown VGG config {config!r}; choose one of {', '.join(VGG_CONFIGS)}")
    conv_bias, head_bias = _biases(norm, bias)
    return _init(VGG(VGG_CONFIGS[config], in_channels, num_classes, image_size, norm, conv_bias, head_bias,
                     width_multiplier), init)


class BasicBlock(nn.Module):
    """ResNet basic block: conv-norm-ReLU-conv-norm, plus identity or 1x1-conv shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str, bias: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = _norm2d(norm, out_ch)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias)
        self.norm2 = _norm2d(norm, out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=bias),
                                          _norm2d(norm, out_ch))
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (He et al. 2016): stem conv, three stages of ``blocks_per_stage``
    basic blocks with ``16w, 32w, 64w`` channels, global average pool, Linear head.

    State-dict keys: ``conv1, norm1``, ``stages.{s}.{b}.{conv1,norm1,conv2,norm2,shortcut.0,shortcut.1}``,
    ``linear``.
    """

    def __init__(self, blocks_per_stage: int, in_channels: int, num_classes: int, norm: str,
                 bias: bool, head_bias: bool, width_multiplier: float):
        super().__init__()
        widths = [max(1, int(round(c * width_multiplier))) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=bias)
        self.norm1 = _norm2d(norm, widths[0])
        self.act1 = nn.ReLU()
        stages, channels = [], widths[0]
        for s, w in enumerate(widths):
            blocks = []
            for b in range(blocks_per_stage):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(BasicBlock(channels, w, stride, norm, bias))
                channels = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.linear = nn.Linear(channels, num_classes, bias=head_bias)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.linear(x)


class FixupBasicBlock(nn.Module):
    """Fixup basic block (Zhang et al. 2019, Fig. 1): no normalisation; scalar biases before each
    conv and each activation of the branch, a scalar multiplier after the last conv:
    ``out = ReLU(conv2(ReLU(conv1(x + bias1a) + bias1b) + bias2a) * scale + bias2b + shortcut)``.

    The shortcut is the identity, or for downsampling blocks a bias-free 1x1 conv of ``x + bias1a``
    (the 1x1-conv shortcut of this package's :class:`BasicBlock`, as in Fixup's ImageNet ResNets;
    Fixup's CIFAR code pads channels with zeros instead). ``norm1``, ``norm2`` and ``shortcut.1`` are
    identity slots at the convs' outputs (the places :mod:`lmc_utils.renorm` corrects, as in a
    plain :class:`BasicBlock`). State: ``bias1a, conv1, bias1b, bias2a, conv2, scale, bias2b``,
    ``shortcut.0``; the scalars have shape ``[1]``.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.bias1a = nn.Parameter(torch.zeros(1))
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.Identity()
        self.bias1b = nn.Parameter(torch.zeros(1))
        self.act1 = nn.ReLU()
        self.bias2a = nn.Parameter(torch.zeros(1))
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = nn.Identity()
        self.scale = nn.Parameter(torch.ones(1))
        self.bias2b = nn.Parameter(torch.zeros(1))
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.Identity())
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x + self.bias1a)) + self.bias1b)
        out = self.norm2(self.conv2(out + self.bias2a)) * self.scale + self.bias2b
        identity = self.shortcut(x + self.bias1a) if len(self.shortcut) > 0 else x
        return self.act2(out + identity)


class FixupResNet(nn.Module):
    """CIFAR-style ResNet without normalisation, initialised by Fixup (Zhang et al. 2019): stem conv,
    ``+ bias1``, ReLU; three stages of :class:`FixupBasicBlock` with ``16w, 32w, 64w`` channels;
    global average pool; ``+ bias2``; Linear head.

    Initialisation (:meth:`reset_fixup`): the last conv of every residual branch and the classifier
    (weight and bias) are zero; the other branch conv is He-normal (fan-out) scaled by
    ``L ** (-1 / (2m - 2))`` with ``L`` residual branches and ``m = 2`` layers per branch; 1x1
    shortcut convs are He-normal (fan-out); the stem conv keeps PyTorch's default; scalar biases
    start at 0 and multipliers at 1. At initialisation every block is therefore ``ReLU(shortcut(x))``.

    State-dict keys: ``conv1, bias1``, ``stages.{s}.{b}.{bias1a,conv1,bias1b,bias2a,conv2,scale,bias2b,
    shortcut.0}``, ``bias2, linear``.
    """

    layers_per_branch = 2

    def __init__(self, blocks_per_stage: int, in_channels: int, num_classes: int, width_multiplier: float):
        super().__init__()
        widths = [max(1, int(round(c * width_multiplier))) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.norm1 = nn.Identity()
        self.bias1 = nn.Parameter(torch.zeros(1))
        self.act1 = nn.ReLU()
        stages, channels = [], widths[0]
        for s, w in enumerate(widths):
            blocks = []
            for b in range(blocks_per_stage):
                stride = 2 if (s > 0 and b == 0) else 1
                blocks.append(FixupBasicBlock(channels, w, stride))
                channels = w
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.bias2 = nn.Parameter(torch.zeros(1))
        self.linear = nn.Linear(channels, num_classes)
        self.norm = "fixup"
        self.reset_fixup()

    @property
    def num_branches(self) -> int:
        """``L``: the number of residual branches (blocks)."""
        return sum(len(stage) for stage in self.stages)

    @torch.no_grad()
    def reset_fixup(self) -> None:
        """Fixup's initialisation (see the class docstring), drawn from the global RNG."""
        m = self.layers_per_branch
        branch_scale = self.num_branches ** (-1.0 / (2 * m - 2))
        for block in (b for stage in self.stages for b in stage):
            nn.init.kaiming_normal_(block.conv1.weight, mode="fan_out", nonlinearity="relu")
            block.conv1.weight.mul_(branch_scale)
            nn.init.zeros_(block.conv2.weight)
            if len(block.shortcut) > 0:
                nn.init.kaiming_normal_(block.shortcut[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.conv1(x)) + self.bias1)
        for stage in self.stages:
            x = stage(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.linear(x + self.bias2)


def resnet20(in_channels: int = 3, num_classes: int = 10, norm: str = "batchnorm", bias: bool | None = None,
             width_multiplier: float = 1.0, init: str = "kaiming_uniform") -> ResNet | FixupResNet:
    """ResNet20 (3 stages x 3 basic blocks); ``width_multiplier=4`` gives the paper's "4x width".

    Downsampling blocks use a 1x1 conv + norm shortcut. ``bias=None``: no conv bias with
    BatchNorm, bias otherwise, and a biased head; ``True``/``False`` sets every layer.
    ``norm="fixup"``: a :class:`FixupResNet` (scalar biases instead of per-channel ones, its own
    initialisation; ``bias`` and ``init`` must be left at their defaults).
    """
    if norm == "fixup":
        if bias is not None or init != "kaiming_uniform":
            raise ValueError("resnet20 with norm='fixup' has scalar biases and Fixup's own initialisation; "
                             f"leave bias and init unset (got bias={bias!r}, init={init!r})")
        return FixupResNet(3, in_channels, num_classes, width_multiplier)
    _check(norm, init)
    conv_bias, head_bias = _biases(norm, bias)
    return _init(ResNet(3, in_channels, num_classes, norm, conv_bias, head_bias, width_multiplier), init)


ARCHITECTURES = {"mlp": mlp, "vgg": vgg, "resnet20": resnet20}


def build(arch: str, **kwargs) -> nn.Module:
    """Build a model by family name (``mlp | vgg | resnet20``) with that family's keyword arguments.

    Arguments are checked first, so a typo or a bad size is one message naming the argument, the
    value and what is allowed (not torch's negative-dimension error, nor a model of width 0)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    check_arguments(arch, kwargs)
    return ARCHITECTURES[arch](**kwargs)


_POSITIVE_INTS = ("in_features", "num_classes", "depth", "in_channels", "image_size")


def check_arguments(arch: str, kwargs: dict) -> None:
    """Raise ``ValueError`` naming the argument for unknown names, non-positive sizes or widths."""
    import inspect

    allowed = set(inspect.signature(ARCHITECTURES[arch]).parameters)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"{arch}: unknown argument(s) {unknown}; allowed: {sorted(allowed)}")

    def positive_int(name, v):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{arch}: {name} must be a positive integer, got {v!r}")

    for name in _POSITIVE_INTS:
        if name in kwargs:
            positive_int(name, kwargs[name])
    if "width" in kwargs:
        widths = kwargs["width"] if isinstance(kwargs["width"], (list, tuple)) else [kwargs["width"]]
        for w in widths:
            positive_int("width", w)
    if "width_multiplier" in kwargs:
        m = kwargs["width_multiplier"]
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0:
            raise ValueError(f"{arch}: width_multiplier must be a positive number, got {m!r}")


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
