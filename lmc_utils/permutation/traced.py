"""Permutation specs derived from a model's dataflow graph (``torch.fx``), for models without a hand-written one.

:func:`traced_spec` traces the model with :func:`torch.fx.symbolic_trace`, runs it once on an
example input to learn every intermediate shape, and walks the graph tracking, for every tensor,
which permutation group acts on its channel axis (axis 1; the feature axis of a 2-D tensor):

* a Conv/Linear layer starts a new group on its output and is permuted on its input axis by the
  group of its input (the input image and the model's outputs are never permuted);
* BatchNorm, LayerNorm over the features, GroupNorm, elementwise activations, dropout and pooling
  keep their input's group (their parameters and running statistics are permuted with it), and so
  does a depthwise convolution (one filter per channel, as in MobileNet: its weight ``[C, 1, *kernel]``
  is permuted on its channel axis);
* a grouped convolution (ResNeXt; ``groups=G``) starts a new group too, but both its input's and its
  output's groups then permute only within each of the ``G`` convolution groups of channels (the
  spec's ``blocks``; its weight is seen as the block-diagonal ``[out, in, *kernel]``, ``grouped``),
  and so do GroupNorm's channels within its groups;
* concatenating along the channel axis (DenseNet's ``torch.cat``) keeps every part's group at its
  offset: a layer reading the concatenation is permuted on its input axis part by part (``concats``);
* an elementwise sum or product of two tensors (a residual connection) merges their groups;
* a scalar parameter (one element, e.g. Fixup's scalar biases and multipliers) added to or
  multiplying permuted features acts on every channel alike: it keeps their group and is not permuted;
* flattening ``[N, C, h, w]`` into ``[N, C*h*w]`` (after a pool larger than 1x1, as in
  torchvision's VGG) keeps the group on ``C``: the next Linear's weight is *viewed* as
  ``[out, C, h*w]`` (the spec's ``views``), so a permutation moves whole blocks of ``h*w`` inputs.

Anything else -- attention, a sum of concatenated features,
a parameter of more than one element used outside a layer (class token, position embedding), a reshape that moves the channel
axis, an unknown layer or function -- raises one :class:`UnsupportedModel` error naming the graph node,
never a wrong spec. Groups are named after the first layer that produces them.
"""

from __future__ import annotations

import contextlib
import io
import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..core.models import ChannelLayerNorm
from .layouts import FIXED, RAW, Cat, Layer, Tag, UnsupportedModel, Walk
from .spec import PermutationSpec

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
    walk = Walk()
    tags: dict[fx.Node, Any] = {}
    layers: dict[str, Layer] = {}
    calls: dict[str, int] = {}
    observed: list[tuple[str, str, Tag]] = []  # (module, category, tag of its output)
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

    def plain(node: fx.Node, t: Any, what: str, concatenated: bool = False) -> "Tag | Cat":
        """``t`` as the channel layout of an ``[N, C, ...]`` tensor: a group, or (``concatenated``)
        concatenated groups."""
        if isinstance(t, Cat):
            if concatenated:
                return t
            raise UnsupportedModel(f"{_describe(node)}: {what} of concatenated features")
        if t == RAW or not isinstance(t, Tag):
            raise UnsupportedModel(f"{_describe(node)}: {what} of a parameter read outside a layer")
        if t.spatial != 1:
            raise UnsupportedModel(f"{_describe(node)}: {what} of flattened [N, C*h*w] features")
        return t

    for node in gm.graph.nodes:
        meta = _meta(node)
        where = _describe(node)
        if node.op == "placeholder":
            tags[node] = Tag(FIXED)
            continue
        if node.op == "output":
            def fix(a):
                t = tag_of(a)
                for g in ([t.group] if isinstance(t, Tag) else [g for g, _ in t.parts] if isinstance(t, Cat)
                          else []):
                    walk.union(g, FIXED, where)
            fx.node.map_arg(node.args, fix)
            continue
        if node.op == "get_attr":
            tags[node] = RAW if meta is not None else None
            if meta is not None:
                raw_keys.append(node.target)
            continue
        if meta is None and node.op != "call_module":
            if node.op == "call_function" and node.target in _ATTENTION_FUNCTIONS:
                raise UnsupportedModel(f"{where}: attention is not supported")
            if not _is_query(node) and any(isinstance(tags.get(a), Cat) or (
                    isinstance(tags.get(a), Tag) and walk.find(tags[a].group) != FIXED) for a in tensor_args(node)):
                raise UnsupportedModel(f"{where}: an operation on permuted features that returns several "
                                       f"tensors (split, chunk, ...) is not supported")
            continue  # shapes, sizes, asserts: no tensor flows on
        in_tensors = tensor_args(node)
        in_tags = [tags.get(a) for a in in_tensors]
        # Anything computed only from never-permuted tensors is never permuted, whatever it is.
        if node.op != "call_module" and in_tags and all(
                t == RAW or (isinstance(t, Tag) and walk.find(t.group) == FIXED) for t in in_tags) \
                and any(t != RAW for t in in_tags):
            tags[node] = Tag(FIXED)
            continue
        if RAW in in_tags and not (_is_binary(node) and all(
                math.prod(_meta(a).shape) == 1 for a, t in zip(in_tensors, in_tags) if t == RAW)):
            raw = [a.target for a, t in zip(in_tensors, in_tags) if t == RAW]
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
    if isinstance(t, Tag) and walk.find(t.group) == FIXED and not any(True for _ in mod.parameters()) \
            and not any(True for _ in mod.buffers()):
        return Tag(FIXED)  # a parameter-free module of never-permuted inputs
    if isinstance(mod, _CONVS):
        if mod.groups != 1 and mod.groups == mod.in_channels == mod.out_channels:
            # one filter per channel: output channel c is computed from input channel c alone
            return _channelwise(target, "depthwise", plain(node, t, "depthwise convolution", True), walk, layers,
                                observed, where)
        if mod.groups != 1:
            # output channels of convolution group b read only its input channels: both groups of units
            # permute within the G groups of channels (a depthwise one with a multiplier m included)
            t = plain(node, t, "grouped convolution")
            walk.within_blocks(t.group, mod.groups, where)
            return Tag(_layer(target, "conv", mod.out_channels, t, walk, layers, observed, where, mod.groups))
        t = plain(node, t, "convolution", True)
        return Tag(_layer(target, "conv", mod.out_channels, t, walk, layers, observed, where))
    if isinstance(mod, nn.Linear):
        xm = _meta(x)
        if len(xm.shape) != 2:
            raise UnsupportedModel(f"{where}: Linear on a {len(xm.shape)}-D input (only [N, features] is supported)")
        if t == RAW or not isinstance(t, (Tag, Cat)):
            raise UnsupportedModel(f"{where}: Linear of a parameter read outside a layer")
        return Tag(_layer(target, "linear", mod.out_features, t, walk, layers, observed, where))
    norm = _is_channel_norm(mod, _meta(x))
    if norm is not None:
        if norm:
            raise UnsupportedModel(f"{where}: {norm}")
        t = plain(node, t, type(mod).__name__, True)
        size = _num_channels(mod)
        if isinstance(t, Cat):
            have = sum(n for _, n in t.parts)
        else:
            g = walk.find(t.group)
            have = size if g == FIXED else walk.size[g]
        if have != size:
            raise UnsupportedModel(f"{where}: {type(mod).__name__} of {size} channels on {have}")
        if isinstance(mod, nn.GroupNorm) and 1 < mod.num_groups < size:
            # statistics per group of channels: a permutation keeping every channel in its group
            walk.within_blocks(plain(node, t, "GroupNorm").group, mod.num_groups, where)
        return _channelwise(target, "norm", t, walk, layers, observed, where)
    if isinstance(mod, _ACTIVATION_MODULES):
        observed.append((target, "act", plain(node, t, type(mod).__name__, True)))
        return t
    if isinstance(mod, _PASS_MODULES):
        return plain(node, t, type(mod).__name__, True) if not isinstance(mod, (nn.Identity, nn.Dropout)) else t
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
        return ""
    if isinstance(mod, (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)):
        return ""
    return None


def _channelwise(target, kind: str, t: "Tag | Cat", walk: Walk, layers, observed, where) -> "Tag | Cat":
    """A layer acting on each channel alone (a norm layer, a depthwise convolution) keeps its input's
    group (or concatenated groups), and its parameters are permuted with it (a layer called again
    merges the groups it sees)."""
    layout = t.group if isinstance(t, Tag) else t
    prev = layers.get(target)
    if prev is None:
        layers[target] = Layer(kind, layout)
    else:
        walk.union_tags(prev.out, layout, where)
    layers[target].calls += 1
    observed.append((target, "norm" if kind == "norm" else "layer", t))
    return t


def _layer(target, kind, size, t: "Tag | Cat", walk: Walk, layers, observed, where, groups: int = 1) -> int:
    """The output group of a Conv/Linear call (a layer called again keeps its groups, merged); a grouped
    convolution's output permutes within its ``groups``."""
    layout, spatial = (t.group, t.spatial) if isinstance(t, Tag) else (t, 1)
    prev = layers.get(target)
    if prev is None:
        layers[target] = Layer(kind, walk.new(size, target, groups), layout, spatial, groups=groups)
    else:
        if prev.spatial != spatial:
            raise UnsupportedModel(f"{where}: layer called on inputs of different layouts")
        walk.union_tags(prev.inp, layout, where)
    layers[target].calls += 1
    out = layers[target].out
    observed.append((target, "layer", Tag(out)))
    return out


def _reshape(node, x, t, walk, where, meta) -> Any:
    """flatten / view / reshape: the identity, or ``[N, C, *spatial] -> [N, C * prod(spatial)]``."""
    src = tuple(_meta(x).shape)
    dst = tuple(meta.shape)
    if src == dst:
        return t
    if t == RAW or not isinstance(t, (Tag, Cat)):
        raise UnsupportedModel(f"{where}: reshape of a parameter read outside a layer")
    if isinstance(t, Cat):  # only [N, C, 1, ...] -> [N, C]
        if len(src) >= 3 and dst == src[:2] and math.prod(src[2:]) == 1:
            return t
        raise UnsupportedModel(f"{where}: reshape {list(src)} -> {list(dst)} of concatenated features")
    if len(src) >= 3 and len(dst) == 2 and dst[0] == src[0] and dst[1] == math.prod(src[1:]):
        return Tag(t.group, t.spatial * math.prod(src[2:]))
    raise UnsupportedModel(f"{where}: reshape {list(src)} -> {list(dst)} moves the channel axis")


def _is_binary(node: fx.Node) -> bool:
    """An elementwise sum, difference, product or quotient (function or method)."""
    if node.op == "call_function":
        return node.target in _BINARY_FUNCTIONS
    return node.op == "call_method" and node.target in _BINARY_METHODS


def _is_stochastic_depth(target) -> bool:
    """torchvision's ``stochastic_depth`` (EfficientNet, ConvNeXt): each sample's features scaled alike."""
    return getattr(target, "__name__", "") == "stochastic_depth" and \
        getattr(target, "__module__", "").startswith("torchvision.ops")


def _function(node, walk, first, plain, tag_of, in_tensors, where, meta) -> Any:
    op, target = node.op, node.target
    is_fn = op == "call_function"
    if (is_fn and target in _ATTENTION_FUNCTIONS) or (not is_fn and target == "softmax"):
        raise UnsupportedModel(f"{where}: attention is not supported")
    if (is_fn and (target in _PASS_FUNCTIONS or _is_stochastic_depth(target))) or (not is_fn and target in _PASS_METHODS):
        x = first(node)
        return plain(node, tag_of(x), "elementwise op", True) if _meta(x).shape != meta.shape or len(meta.shape) > 2 \
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
        if dim % ndim == 1:
            return _concatenation(node, in_tensors, tag_of, plain)
        raise UnsupportedModel(f"{where}: concatenation along axis {dim} is not supported")
    if (is_fn and target in (torch.mean, torch.sum, torch.amax)) or (not is_fn and target in ("mean", "sum", "amax")):
        x = first(node)
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        ndim = len(_meta(x).shape)
        dims = [dims] if isinstance(dims, int) else dims
        if dims is None or any(d % ndim in (0, 1) for d in dims) or len(meta.shape) < 2:
            raise UnsupportedModel(f"{where}: reduction over the batch or channel axis is not supported")
        return plain(node, tag_of(x), "reduction", True)
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    raise UnsupportedModel(f"{where}: unsupported operation {name}")


def _concatenation(node, in_tensors, tag_of, plain) -> Cat:
    """``torch.cat`` along the channel axis: the parts in order, each keeping its group (a part that is
    itself a concatenation contributes its parts)."""
    parts: list[tuple[int, int]] = []
    for a in in_tensors:
        t = plain(node, tag_of(a), "concatenation", True)
        parts.extend(t.parts if isinstance(t, Cat) else [(t.group, _meta(a).shape[1])])
    return Cat(tuple(parts))


def _elementwise(node, in_tensors, walk, tag_of, where, meta) -> Tag:
    """A sum/product of tensors (residual connection): every operand with the output's channel
    count shares one group; an operand broadcast along the channels (one channel, or a scalar)
    leaves it alone."""
    out_shape = tuple(meta.shape)
    merged: Tag | None = None
    for a in in_tensors:
        shape = tuple(_meta(a).shape)
        t = tag_of(a)
        if math.prod(shape) == 1:
            continue
        if len(shape) != len(out_shape):
            raise UnsupportedModel(f"{where}: broadcasts a {list(shape)} tensor against {list(out_shape)}")
        if len(shape) >= 2 and shape[1] == 1 and out_shape[1] != 1:
            continue
        if isinstance(t, Cat):
            raise UnsupportedModel(f"{where}: a sum or product of concatenated features is not supported")
        if not isinstance(t, Tag):
            raise UnsupportedModel(f"{where}: operand without a channel layout")
        if merged is None:
            merged = t
        else:
            if merged.spatial != t.spatial:
                raise UnsupportedModel(f"{where}: combines flattened and unflattened features")
            merged = Tag(walk.union(merged.group, t.group, where), t.spatial)
    return merged if merged is not None else Tag(FIXED)


def _build(model: nn.Module, walk: Walk, layers: dict[str, Layer], calls: dict[str, int],
           observed: list[tuple[str, str, Tag]], raw_keys: list[str]) -> PermutationSpec:
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

    concats: dict[tuple[tuple[str | None, int], ...], str] = {}

    def axis(layout: "int | Cat | None") -> str | None:
        """The name of an axis laid out as one group, or as concatenated groups."""
        if not isinstance(layout, Cat):
            return group(layout)
        parts = tuple((group(g), n) for g, n in layout.parts)
        if all(g is None for g, _ in parts):
            return None
        if parts not in concats:
            named = [g for g, _ in parts if g is not None]
            name = f"concatenation of {len(parts)} ({named[0]} ... {named[-1]})"
            concats[parts] = name if name not in concats.values() else f"{name} #{len(concats) + 1}"
        return concats[parts]

    axes: dict[str, tuple[str | None, ...]] = {}
    views: dict[str, tuple[int, ...]] = {}
    grouped: dict[str, int] = {}
    for key, tensor in state.items():
        mod_name, _, param = key.rpartition(".")
        layer = layers.get(mod_name)
        if layer is None:
            if key in raw_keys or any(key.startswith(r + ".") for r in raw_keys):
                axes[key] = (None,) * tensor.ndim  # read outside a layer, only on never-permuted tensors
                continue
            raise UnsupportedModel(f"state entry {key!r} belongs to no layer the traced forward pass uses "
                                   f"(an unused or unsupported module)")
        out_g = axis(layer.out)
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
        in_g = axis(layer.inp)
        if layer.kind == "linear" and layer.spatial > 1 and in_g is not None:
            views[key] = (tensor.shape[0], tensor.shape[1] // layer.spatial, layer.spatial)
            axes[key] = (out_g, in_g, None)
        else:
            axes[key] = (out_g, in_g) + (None,) * (tensor.ndim - 2)
            if layer.groups > 1:
                grouped[key] = layer.groups
    sizes = {n: walk.size[r] for r, n in names.items()}
    if not sizes:
        raise UnsupportedModel("it has no hidden units to permute")
    blocks = {n: walk.blocks[r] for r, n in names.items() if walk.blocks[r] > 1}

    acts: dict[str, dict[str, list[str]]] = {}
    seen: set[tuple[str, str]] = set()
    for mod_name, category, t in observed:
        g = group(t.group) if isinstance(t, Tag) else None
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
                           views=views, blocks=blocks, grouped=grouped,
                           concats={name: parts for parts, name in concats.items()})
