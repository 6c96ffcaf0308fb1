"""Permutation specs derived from a model's dataflow graph (``torch.fx``), for models without a hand-written one.

:func:`traced_spec` traces the model with :func:`torch.fx.symbolic_trace`, runs it once on an
example input to learn every intermediate shape, and walks the graph tracking, for every tensor,
which permutation group acts on its channel axis (axis 1; the feature axis of a 2-D tensor):

* a Conv/Linear layer starts a new group on its output and is permuted on its input axis by the
  group of its input (the input image and the model's outputs are never permuted);
* BatchNorm, LayerNorm over the features, GroupNorm with one group or one group per channel,
  elementwise activations, dropout and pooling keep their input's group (their parameters and
  running statistics are permuted with it), and so does a depthwise convolution (one filter per
  channel, as in MobileNet: its weight ``[C, 1, *kernel]`` is permuted on its channel axis);
* an elementwise sum or product of two tensors (a residual connection) merges their groups;
* a scalar parameter (one element, e.g. Fixup's scalar biases and multipliers) added to or
  multiplying permuted features acts on every channel alike: it keeps their group and is not permuted;
* flattening ``[N, C, h, w]`` into ``[N, C*h*w]`` (after a pool larger than 1x1, as in
  torchvision's VGG) keeps the group on ``C``: the next Linear's weight is *viewed* as
  ``[out, C, h*w]`` (the spec's ``views``), so a permutation moves whole blocks of ``h*w`` inputs.

Anything else -- grouped convolution (ResNeXt), a depthwise one with a channel multiplier, concatenation
along the channel axis, attention,
a parameter of more than one element used outside a layer (class token, position embedding), a reshape that moves the channel
axis, an unknown layer or function -- raises one :class:`UnsupportedModel` error naming the graph node,
never a wrong spec. Groups are named after the first layer that produces them.
"""

from __future__ import annotations

import contextlib
import io
import math
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..core.models import ChannelLayerNorm
from .spec import PermutationSpec

FIXED = 0  # the union-find element of everything that is never permuted (inputs, outputs)

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.ELU,
                       nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Softplus)
_PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                 nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_ATTENTION_MODULES = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                      nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer)
# functions / methods that act on each element or each channel separately (keep the group)
_PASS_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.gelu, F.silu, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh,
                   F.leaky_relu, F.elu, F.hardswish, F.hardsigmoid, F.hardtanh, F.mish, F.softplus,
                   F.dropout, F.dropout2d, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d,
                   F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                   F.adaptive_avg_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
                   torch.abs, torch.exp, torch.square, torch.sqrt, operator.neg, torch.neg, torch.clamp}
_PASS_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous", "clone", "abs", "exp",
                 "square", "sqrt", "neg", "clamp", "clamp_", "clamp_min", "clamp_min_", "float", "to"}
_BINARY_FUNCTIONS = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub,
                     operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div}
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_RESHAPES = {torch.flatten, torch.reshape}
_RESHAPE_METHODS = {"flatten", "view", "reshape"}
_ATTENTION_FUNCTIONS = {F.scaled_dot_product_attention, F.multi_head_attention_forward}


class UnsupportedModel(TypeError):
    """The model's graph has something a permutation spec cannot be derived for (named in the message)."""


@dataclass(frozen=True)
class _Tag:
    """Which group permutes a tensor's channel axis; ``spatial`` > 1 after flattening ``[N, C, h, w]``
    (the features are ``C`` blocks of ``spatial`` consecutive entries)."""

    group: int
    spatial: int = 1


_RAW = "raw parameter"  # the tag of a parameter/buffer read outside a layer (get_attr)


@dataclass
class _Layer:
    """A Conv/Linear/norm layer seen in the graph: its output and input groups and how it is seen."""

    kind: str  # "conv" | "linear" | "norm" | "depthwise"
    out: int
    inp: int | None = None
    spatial: int = 1  # spatial of the input (Linear after a flatten)
    calls: int = 0


@dataclass
class _Walk:
    parent: list[int] = field(default_factory=lambda: [FIXED])
    size: list[int | None] = field(default_factory=lambda: [None])
    creator: list[str] = field(default_factory=lambda: ["(fixed)"])

    def new(self, size: int, creator: str) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.creator.append(creator)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int, where: str) -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        if a != FIXED and b != FIXED and self.size[a] != self.size[b]:
            raise UnsupportedModel(f"{where}: combines {self.size[a]} and {self.size[b]} channels")
        if b == FIXED or (a != FIXED and b < a):
            a, b = b, a
        self.parent[b] = a  # the root is FIXED, or else the group created first
        return a


class _Tracer(fx.Tracer):
    """``torch.fx`` tracer that keeps this package's :class:`ChannelLayerNorm` as one layer."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, ChannelLayerNorm) or super().is_leaf_module(m, qualname)


def _meta(node: Any) -> TensorMetadata | None:
    if isinstance(node, fx.Node):
        m = node.meta.get("tensor_meta")
        return m if isinstance(m, TensorMetadata) else None
    return None


def default_example_input(model: nn.Module) -> torch.Tensor:
    """Two random inputs for the model's first layer: ``[2, C, 64, 64]`` for a Conv2d (64 for each
    spatial axis of a Conv1d/3d), ``[2, in_features]`` for a Linear."""
    p = next(model.parameters(), None)
    for m in model.modules():
        if isinstance(m, _CONVS):
            dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(m)]
            return torch.randn(2, m.in_channels, *([64] * dims),
                               device=p.device, dtype=p.dtype)
        if isinstance(m, nn.Linear):
            return torch.randn(2, m.in_features, device=p.device, dtype=p.dtype)
    raise UnsupportedModel(f"no permutation spec for {type(model).__name__}: it has no Conv or Linear layer "
                           f"(pass example_input to trace it anyway)")


def _is_query(node: fx.Node) -> bool:
    """Shape queries and assertions, which return no tensor."""
    if node.op == "call_function":
        return node.target in (getattr, torch._assert, len)
    return node.op == "call_method" and node.target in ("size", "dim", "numel")


def _describe(node: fx.Node) -> str:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"node {node.name!r} ({node.op} {target})"


def traced_spec(model: nn.Module, example_input: torch.Tensor | None = None) -> PermutationSpec:
    """The permutation spec of ``model``, derived from its ``torch.fx`` graph (see the module docstring).

    Args:
        model: any ``nn.Module`` whose forward ``torch.fx`` can trace (traced as in eval mode; the
            model is not modified).
        example_input: one batch the model accepts (default: :func:`default_example_input`); only its
            shapes matter (it must be large enough for every pooling layer).
    Returns:
        a :class:`~lmc_utils.permutation.PermutationSpec` covering every state-dict entry, with
        ``activations`` (per group, the layers called once whose outputs carry it: activation modules
        if any, else norm layers, else the Conv/Linear layers) and ``views`` (see above).
    Raises:
        UnsupportedModel: naming the graph node (or state entry) a spec cannot be derived for.
    """
    name = type(model).__name__
    was_training = model.training
    model.eval()
    try:
        try:
            tracer = _Tracer()
            graph = tracer.trace(model)
        except Exception as e:  # noqa: BLE001 - torch.fx raises many kinds on untraceable code
            raise UnsupportedModel(f"no permutation spec for {name}: torch.fx cannot trace it "
                                   f"({type(e).__name__}: {e})") from e
        gm = fx.GraphModule(tracer.root, graph)
        x = example_input if example_input is not None else default_example_input(model)
        try:
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints tracebacks
                ShapeProp(gm).propagate(x)
        except Exception as e:  # noqa: BLE001
            cause = e.__cause__ or e
            raise ValueError(f"{name} does not run on an example input of shape {tuple(x.shape)} "
                             f"({type(cause).__name__}: {cause}); pass a larger example_input") from e
        try:
            return _spec_from_graph(model, gm)
        except UnsupportedModel as e:
            raise UnsupportedModel(f"no permutation spec for {name}: {e}") from None
    finally:
        model.train(was_training)


def _spec_from_graph(model: nn.Module, gm: fx.GraphModule) -> PermutationSpec:
    modules = dict(model.named_modules())
    walk = _Walk()
    tags: dict[fx.Node, Any] = {}
    layers: dict[str, _Layer] = {}
    calls: dict[str, int] = {}
    observed: list[tuple[str, str, _Tag]] = []  # (module, category, tag of its output)
    raw_keys: list[str] = []

    def tag_of(arg: Any) -> Any:
        return tags.get(arg) if isinstance(arg, fx.Node) else None

    def tensor_args(node: fx.Node) -> list[fx.Node]:
        out: list[fx.Node] = []
        fx.node.map_arg((node.args, node.kwargs), lambda a: out.append(a) if _meta(a) is not None else None)
        return out

    def first(node: fx.Node) -> fx.Node:
        a = node.args[0] if node.args else None
        if not isinstance(a, fx.Node) or _meta(a) is None:
            raise UnsupportedModel(f"{_describe(node)}: expected a tensor as first argument")
        return a

    def plain(node: fx.Node, t: Any, what: str) -> _Tag:
        if t == _RAW or not isinstance(t, _Tag):
            raise UnsupportedModel(f"{_describe(node)}: {what} of a parameter read outside a layer")
        if t.spatial != 1:
            raise UnsupportedModel(f"{_describe(node)}: {what} of flattened [N, C*h*w] features")
        return t

    for node in gm.graph.nodes:
        meta = _meta(node)
        where = _describe(node)
        if node.op == "placeholder":
            tags[node] = _Tag(FIXED)
            continue
        if node.op == "output":
            def fix(a):
                t = tag_of(a)
                if isinstance(t, _Tag):
                    walk.union(t.group, FIXED, where)
            fx.node.map_arg(node.args, fix)
            continue
        if node.op == "get_attr":
            tags[node] = _RAW if meta is not None else None
            if meta is not None:
                raw_keys.append(node.target)
            continue
        if meta is None and node.op != "call_module":
            if node.op == "call_function" and node.target in _ATTENTION_FUNCTIONS:
                raise UnsupportedModel(f"{where}: attention is not supported")
            if not _is_query(node) and any(isinstance(tags.get(a), _Tag) and walk.find(tags[a].group) != FIXED
                                           for a in tensor_args(node)):
                raise UnsupportedModel(f"{where}: an operation on permuted features that returns several "
                                       f"tensors (split, chunk, ...) is not supported")
            continue  # shapes, sizes, asserts: no tensor flows on
        in_tensors = tensor_args(node)
        in_tags = [tags.get(a) for a in in_tensors]
        # Anything computed only from never-permuted tensors is never permuted, whatever it is.
        if node.op != "call_module" and in_tags and all(
                t == _RAW or (isinstance(t, _Tag) and walk.find(t.group) == FIXED) for t in in_tags) \
                and any(t != _RAW for t in in_tags):
            tags[node] = _Tag(FIXED)
            continue
        if _RAW in in_tags and not (_is_binary(node) and all(
                math.prod(_meta(a).shape) == 1 for a, t in zip(in_tensors, in_tags) if t == _RAW)):
            raw = [a.target for a, t in zip(in_tensors, in_tags) if t == _RAW]
            raise UnsupportedModel(f"{where}: parameter {raw[0]!r} is used outside a layer on permuted "
                                   f"features (e.g. a class token or position embedding)")

        if node.op == "call_module":
            mod = modules[node.target]
            calls[node.target] = calls.get(node.target, 0) + 1
            tags[node] = _module(node, mod, walk, layers, observed, first, plain, tag_of, where, meta)
        elif node.op in ("call_function", "call_method"):
            tags[node] = _function(node, walk, first, plain, tag_of, in_tensors, where, meta)
        else:  # pragma: no cover - fx has no other ops
            raise UnsupportedModel(f"{where}: unsupported graph op")
    return _build(model, walk, layers, calls, observed, raw_keys)


def _module(node, mod, walk, layers, observed, first, plain, tag_of, where, meta) -> Any:
    target = node.target
    if isinstance(mod, _ATTENTION_MODULES):
        raise UnsupportedModel(f"{where}: attention ({type(mod).__name__}) is not supported")
    x = first(node)
    t = tag_of(x)
    if isinstance(t, _Tag) and walk.find(t.group) == FIXED and not any(True for _ in mod.parameters()) \
            and not any(True for _ in mod.buffers()):
        return _Tag(FIXED)  # a parameter-free module of never-permuted inputs
    if isinstance(mod, _CONVS):
        if mod.groups != 1 and mod.groups == mod.in_channels == mod.out_channels:
            # one filter per channel: output channel c is computed from input channel c alone
            return _channelwise(target, "depthwise", plain(node, t, "depthwise convolution"), walk, layers,
                                observed, where)
        if mod.groups != 1:
            kind = "depthwise" if mod.groups == mod.in_channels else "grouped"
            why = ("with a channel multiplier" if kind == "depthwise"
                   else "(permutations would have to stay within each group of channels)")
            raise UnsupportedModel(f"{where}: {kind} convolution (groups={mod.groups}) {why} is not supported")
        t = plain(node, t, "convolution")
        return _Tag(_layer(target, "conv", mod.out_channels, t, walk, layers, observed, where))
    if isinstance(mod, nn.Linear):
        xm = _meta(x)
        if len(xm.shape) != 2:
            raise UnsupportedModel(f"{where}: Linear on a {len(xm.shape)}-D input (only [N, features] is supported)")
        if t == _RAW or not isinstance(t, _Tag):
            raise UnsupportedModel(f"{where}: Linear of a parameter read outside a layer")
        return _Tag(_layer(target, "linear", mod.out_features, t, walk, layers, observed, where))
    norm = _is_channel_norm(mod, _meta(x))
    if norm is not None:
        if norm:
            raise UnsupportedModel(f"{where}: {norm}")
        t = plain(node, t, type(mod).__name__)
        g = walk.find(t.group)
        size = _num_channels(mod)
        if g != FIXED and walk.size[g] != size:
            raise UnsupportedModel(f"{where}: {type(mod).__name__} of {size} channels on {walk.size[g]}")
        return _channelwise(target, "norm", t, walk, layers, observed, where)
    if isinstance(mod, _ACTIVATION_MODULES):
        observed.append((target, "act", plain(node, t, type(mod).__name__)))
        return t
    if isinstance(mod, _PASS_MODULES):
        return plain(node, t, type(mod).__name__) if not isinstance(mod, (nn.Identity, nn.Dropout)) else t
    if isinstance(mod, nn.Flatten):
        return _reshape(node, x, t, walk, where, meta)
    raise UnsupportedModel(f"{where}: unsupported layer {type(mod).__name__}")


def _num_channels(mod: nn.Module) -> int:
    if hasattr(mod, "num_features"):  # BatchNorm, InstanceNorm
        return mod.num_features
    if isinstance(mod, nn.LayerNorm):
        return mod.normalized_shape[0]
    if isinstance(mod, nn.GroupNorm):
        return mod.num_channels
    return mod.weight.shape[0]  # ChannelLayerNorm


def _is_channel_norm(mod: nn.Module, xm: TensorMetadata | None) -> str | None:
    """``""`` for a norm layer that commutes with channel permutations, a reason for one that does
    not, ``None`` for anything else."""
    if isinstance(mod, _BATCHNORMS) or isinstance(mod, ChannelLayerNorm):
        return ""
    if isinstance(mod, nn.LayerNorm):
        if len(mod.normalized_shape) != 1 or xm is None or len(xm.shape) != 2:
            return (f"LayerNorm over {tuple(mod.normalized_shape)} of a {len(xm.shape) if xm else '?'}-D input "
                    f"(only over the features of [N, features] is supported)")
        return ""
    if isinstance(mod, nn.GroupNorm):
        if mod.num_groups in (1, mod.num_channels):
            return ""
        return f"GroupNorm with {mod.num_groups} groups of channels (permutations would have to stay within a group)"
    if isinstance(mod, (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)):
        return ""
    return None


def _channelwise(target, kind: str, t: _Tag, walk: _Walk, layers, observed, where) -> _Tag:
    """A layer acting on each channel alone (a norm layer, a depthwise convolution) keeps its input's
    group, and its parameters are permuted with it (a layer called again merges the groups it sees)."""
    prev = layers.get(target)
    if prev is None:
        layers[target] = _Layer(kind, t.group)
    else:
        walk.union(prev.out, t.group, where)
    layers[target].calls += 1
    observed.append((target, "norm" if kind == "norm" else "layer", t))
    return t


def _layer(target, kind, size, t: _Tag, walk: _Walk, layers, observed, where) -> int:
    """The output group of a Conv/Linear call (a layer called again keeps its groups, merged)."""
    prev = layers.get(target)
    if prev is None:
        layers[target] = _Layer(kind, walk.new(size, target), t.group, t.spatial)
    else:
        if prev.spatial != t.spatial:
            raise UnsupportedModel(f"{where}: layer called on inputs of different layouts")
        walk.union(prev.inp, t.group, where)
    layers[target].calls += 1
    out = layers[target].out
    observed.append((target, "layer", _Tag(out)))
    return out


def _reshape(node, x, t, walk, where, meta) -> Any:
    """flatten / view / reshape: the identity, or ``[N, C, *spatial] -> [N, C * prod(spatial)]``."""
    src = tuple(_meta(x).shape)
    dst = tuple(meta.shape)
    if src == dst:
        return t
    if t == _RAW or not isinstance(t, _Tag):
        raise UnsupportedModel(f"{where}: reshape of a parameter read outside a layer")
    if len(src) >= 3 and len(dst) == 2 and dst[0] == src[0] and dst[1] == math.prod(src[1:]):
        return _Tag(t.group, t.spatial * math.prod(src[2:]))
    raise UnsupportedModel(f"{where}: reshape {list(src)} -> {list(dst)} moves the channel axis")


def _is_binary(node: fx.Node) -> bool:
    """An elementwise sum, difference, product or quotient (function or method)."""
    if node.op == "call_function":
        return node.target in _BINARY_FUNCTIONS
    return node.op == "call_method" and node.target in _BINARY_METHODS


def _function(node, walk, first, plain, tag_of, in_tensors, where, meta) -> Any:
    op, target = node.op, node.target
    is_fn = op == "call_function"
    if (is_fn and target in _ATTENTION_FUNCTIONS) or (not is_fn and target == "softmax"):
        raise UnsupportedModel(f"{where}: attention is not supported")
    if (is_fn and target in _PASS_FUNCTIONS) or (not is_fn and target in _PASS_METHODS):
        x = first(node)
        return plain(node, tag_of(x), "elementwise op") if _meta(x).shape != meta.shape or len(meta.shape) > 2 \
            else tag_of(x)
    if (is_fn and target in _RESHAPES) or (not is_fn and target in _RESHAPE_METHODS):
        x = first(node)
        return _reshape(node, x, tag_of(x), walk, where, meta)
    if (is_fn and target in _BINARY_FUNCTIONS) or (not is_fn and target in _BINARY_METHODS):
        return _elementwise(node, in_tensors, walk, tag_of, where, meta)
    if is_fn and target is torch.cat or (not is_fn and target == "cat"):
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        ndim = len(meta.shape)
        if dim % ndim == 0:
            return _elementwise(node, in_tensors, walk, tag_of, where, meta)
        raise UnsupportedModel(f"{where}: concatenation along axis {dim} is not supported")
    if (is_fn and target in (torch.mean, torch.sum, torch.amax)) or (not is_fn and target in ("mean", "sum", "amax")):
        x = first(node)
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        ndim = len(_meta(x).shape)
        dims = [dims] if isinstance(dims, int) else dims
        if dims is None or any(d % ndim in (0, 1) for d in dims) or len(meta.shape) < 2:
            raise UnsupportedModel(f"{where}: reduction over the batch or channel axis is not supported")
        return plain(node, tag_of(x), "reduction")
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    raise UnsupportedModel(f"{where}: unsupported operation {name}")


def _elementwise(node, in_tensors, walk, tag_of, where, meta) -> _Tag:
    """A sum/product of tensors (residual connection): every operand with the output's channel
    count shares one group; an operand broadcast along the channels (one channel, or a scalar)
    leaves it alone."""
    out_shape = tuple(meta.shape)
    merged: _Tag | None = None
    for a in in_tensors:
        shape = tuple(_meta(a).shape)
        t = tag_of(a)
        if math.prod(shape) == 1:
            continue
        if len(shape) != len(out_shape):
            raise UnsupportedModel(f"{where}: broadcasts a {list(shape)} tensor against {list(out_shape)}")
        if len(shape) >= 2 and shape[1] == 1 and out_shape[1] != 1:
            continue
        if not isinstance(t, _Tag):
            raise UnsupportedModel(f"{where}: operand without a channel layout")
        if merged is None:
            merged = t
        else:
            if merged.spatial != t.spatial:
                raise UnsupportedModel(f"{where}: combines flattened and unflattened features")
            merged = _Tag(walk.union(merged.group, t.group, where), t.spatial)
    return merged if merged is not None else _Tag(FIXED)


def _build(model: nn.Module, walk: _Walk, layers: dict[str, _Layer], calls: dict[str, int],
           observed: list[tuple[str, str, _Tag]], raw_keys: list[str]) -> PermutationSpec:
    state = model.state_dict()
    buffers = {n for n, _ in model.named_buffers()}
    names: dict[int, str] = {}

    def group(g: int | None) -> str | None:
        if g is None:
            return None
        r = walk.find(g)
        if r == FIXED:
            return None
        return names.setdefault(r, walk.creator[r])

    axes: dict[str, tuple[str | None, ...]] = {}
    views: dict[str, tuple[int, ...]] = {}
    for key, tensor in state.items():
        mod_name, _, param = key.rpartition(".")
        layer = layers.get(mod_name)
        if layer is None:
            if key in raw_keys or any(key.startswith(r + ".") for r in raw_keys):
                axes[key] = (None,) * tensor.ndim  # read outside a layer, only on never-permuted tensors
                continue
            raise UnsupportedModel(f"state entry {key!r} belongs to no layer the traced forward pass uses "
                                   f"(an unused or unsupported module)")
        out_g = group(layer.out)
        if layer.kind != "norm" and param not in ("weight", "bias"):
            raise UnsupportedModel(f"state entry {key!r}: a {layer.kind} layer with an entry other than weight "
                                   f"and bias (weight norm or another parametrisation?)")
        if layer.kind == "norm":
            axes[key] = () if tensor.ndim == 0 else (out_g,)
            continue
        if layer.kind == "depthwise":  # weight [C, 1, *kernel], bias [C]: only the channel axis permutes
            axes[key] = (out_g,) + (None,) * (tensor.ndim - 1)
            continue
        if param != "weight":
            axes[key] = (out_g,)
            continue
        in_g = group(layer.inp)
        if layer.kind == "linear" and layer.spatial > 1 and in_g is not None:
            views[key] = (tensor.shape[0], tensor.shape[1] // layer.spatial, layer.spatial)
            axes[key] = (out_g, in_g, None)
        else:
            axes[key] = (out_g, in_g) + (None,) * (tensor.ndim - 2)
    sizes = {n: walk.size[r] for r, n in names.items()}
    if not sizes:
        raise UnsupportedModel("it has no hidden units to permute")

    acts: dict[str, dict[str, list[str]]] = {}
    seen: set[tuple[str, str]] = set()
    for mod_name, category, t in observed:
        g = group(t.group)
        if g is None or t.spatial != 1 or calls.get(mod_name, 0) != 1 or (mod_name, g) in seen:
            continue
        seen.add((mod_name, g))
        acts.setdefault(g, {}).setdefault(category, []).append(mod_name)
    activations = {}
    for g in sizes:
        by_cat = acts.get(g, {})
        for category in ("act", "norm", "layer"):
            if by_cat.get(category):
                activations[g] = tuple(by_cat[category])
                break
    return PermutationSpec(axes=axes, sizes=sizes, activations=activations, buffers=frozenset(buffers),
                           views=views)
