"""The functions and methods a traced graph may apply to permuted features, and how each moves their
layout (:mod:`lmc_utils.permutation.layouts`): elementwise maps keep it, a sum merges its operands'
groups, a concatenation along the features keeps each part's group, reshapes, permutes and indexing
keep it where the feature axis survives whole. Used by :func:`lmc_utils.permutation.traced_spec`;
anything else raises :class:`UnsupportedModel` naming the graph node.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx
from torch.fx.passes.shape_prop import TensorMetadata

from .layouts import FIXED, Cat, Context, Param, Tag, UnsupportedModel

# functions / methods that act on each element separately (keep the layout)
_PASS_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.gelu, F.silu, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh,
                   F.leaky_relu, F.elu, F.hardswish, F.hardsigmoid, F.hardtanh, F.mish, F.softplus,
                   F.dropout, F.dropout2d, torch.abs, torch.exp, torch.square, torch.sqrt, operator.neg,
                   torch.neg, torch.clamp}
# ... and pooling, which acts on each channel of an [N, C, ...] map separately
POOL_FUNCTIONS = {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
                  F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
                  F.adaptive_max_pool2d, F.adaptive_max_pool3d}
_PASS_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous", "clone", "abs", "exp",
                 "square", "sqrt", "neg", "clamp", "clamp_", "clamp_min", "clamp_min_", "float", "to"}
_BINARY_FUNCTIONS = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub,
                     operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div}
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_RESHAPES = {torch.flatten, torch.reshape}
_RESHAPE_METHODS = {"flatten", "view", "reshape"}
_PERMUTES = {torch.permute, torch.transpose}
_PERMUTE_METHODS = {"permute", "transpose"}
ATTENTION_FUNCTIONS = {F.scaled_dot_product_attention, F.multi_head_attention_forward}
_PARAM_METHODS = {"expand", "to", "type", "contiguous", "clone", "float"}  # a parameter's view, not its use


def meta_of(node: Any) -> TensorMetadata | None:
    """The shape and dtype ``ShapeProp`` recorded for a node that returns one tensor (else ``None``)."""
    if isinstance(node, fx.Node):
        m = node.meta.get("tensor_meta")
        return m if isinstance(m, TensorMetadata) else None
    return None


def describe(node: fx.Node) -> str:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"node {node.name!r} ({node.op} {target})"


def is_query(node: fx.Node) -> bool:
    """Shape queries and assertions, which return no tensor."""
    if node.op == "call_function":
        return node.target in (getattr, torch._assert, len)
    return node.op == "call_method" and node.target in ("size", "dim", "numel")


def is_binary(node: fx.Node) -> bool:
    """An elementwise sum, difference, product or quotient (function or method)."""
    if node.op == "call_function":
        return node.target in _BINARY_FUNCTIONS
    return node.op == "call_method" and node.target in _BINARY_METHODS


def is_cat(node: fx.Node) -> bool:
    """``torch.cat`` (function or method)."""
    return (node.op == "call_function" and node.target is torch.cat) or (node.op == "call_method" and node.target == "cat")


def is_layer_norm(node: fx.Node) -> bool:
    """``F.layer_norm`` called as a function (its weight and bias read as parameters)."""
    return node.op == "call_function" and node.target is F.layer_norm


def picks_an_output(node: fx.Node, tags: dict) -> bool:
    """Indexing into the outputs of a layer that returns several (``nn.MultiheadAttention``)."""
    return node.op == "call_function" and node.target is operator.getitem and isinstance(tags.get(node.args[0]), tuple)


def is_param_view(node: fx.Node) -> bool:
    return node.op == "call_method" and node.target in _PARAM_METHODS


def layout(node: fx.Node, t: Any, what: str, concatenated: bool = False, channels_first: bool = False) -> Tag | Cat:
    """``t`` as the feature layout of a tensor: a group (``channels_first``: on axis 1), or
    (``concatenated``) concatenated groups; anything else raises naming ``what``."""
    if isinstance(t, Cat):
        if concatenated:
            return t
        raise UnsupportedModel(f"{describe(node)}: {what} of concatenated features")
    if not isinstance(t, Tag):
        raise UnsupportedModel(f"{describe(node)}: {what} of a parameter read outside a layer")
    if t.spatial != 1:
        raise UnsupportedModel(f"{describe(node)}: {what} of flattened [N, C*h*w] features")
    if channels_first and t.last:
        raise UnsupportedModel(f"{describe(node)}: {what} of features on the last axis ([N, tokens, D] or "
                               f"channels-last)")
    return t


def _tag(group: int, ndim: int, last: bool, spatial: int = 1) -> Tag:
    """A tag in its one spelling: the features of a 2-D tensor are on axis 1."""
    return Tag(group, spatial, last and ndim > 2)


def _first(node: fx.Node) -> fx.Node:
    a = node.args[0] if node.args else None
    if not isinstance(a, fx.Node) or meta_of(a) is None:
        raise UnsupportedModel(f"{describe(node)}: expected a tensor as first argument")
    return a


def function(node: fx.Node, ctx: Context, tags: dict, in_tensors: list[fx.Node], where: str,
             meta: TensorMetadata) -> Any:
    """The layout of a ``call_function`` / ``call_method`` node's output."""
    op, target = node.op, node.target
    is_fn = op == "call_function"
    tag_of = tags.get
    if (is_fn and target in ATTENTION_FUNCTIONS) or (not is_fn and target == "softmax"):
        raise UnsupportedModel(f"{where}: attention outside nn.MultiheadAttention is not supported")
    if is_fn and target in POOL_FUNCTIONS:
        return layout(node, tag_of(_first(node)), "pooling", True, channels_first=True)
    if (is_fn and (target in _PASS_FUNCTIONS or _is_stochastic_depth(target))) or (not is_fn and target in _PASS_METHODS):
        x = _first(node)
        return layout(node, tag_of(x), "elementwise op", True) if meta_of(x).shape != meta.shape or len(meta.shape) > 2 \
            else tag_of(x)
    if (is_fn and target in _RESHAPES) or (not is_fn and target in _RESHAPE_METHODS):
        x = _first(node)
        return reshape(x, tag_of(x), where, meta)
    if (is_fn and target in _PERMUTES) or (not is_fn and target in _PERMUTE_METHODS):
        x = _first(node)
        ndim = len(meta_of(x).shape)
        dims = _permutation_dims(node, target, ndim)
        return permute(x, tag_of(x), dims, where)
    if is_fn and target is operator.getitem:
        return getitem(node, tags, where, meta)
    if (is_fn and target in _BINARY_FUNCTIONS) or (not is_fn and target in _BINARY_METHODS):
        return elementwise(node, ctx, in_tensors, tags, where, meta)
    if is_cat(node):
        dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
        ndim = len(meta.shape)
        features = [tag_of(a) for a in in_tensors if isinstance(tag_of(a), (Tag, Cat))]
        axis = features[0].axis(ndim) if features and isinstance(features[0], Tag) else 1
        if dim % ndim != axis:  # along the batch or the tokens: every part holds the same features
            return elementwise(node, ctx, in_tensors, tags, where, meta)
        if axis != 1:
            raise UnsupportedModel(f"{where}: concatenation along the last (feature) axis is not supported")
        return concatenation(node, in_tensors, tags)
    if is_layer_norm(node):
        return layer_norm(node, ctx, tags, where)
    if (is_fn and target in (torch.mean, torch.sum, torch.amax)) or (not is_fn and target in ("mean", "sum", "amax")):
        x = _first(node)
        t = layout(node, tag_of(x), "reduction", True)
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        ndim = len(meta_of(x).shape)
        dims = [dims] if isinstance(dims, int) else dims
        last = isinstance(t, Tag) and t.last
        kept = (ndim - 1,) if last else (0, 1)  # features last: any other axis may go (tokens, batch)
        if dims is None or any(d % ndim in kept for d in dims) or len(meta.shape) < 2:
            raise UnsupportedModel(f"{where}: reduction over the batch or feature axis is not supported")
        return t if not isinstance(t, Tag) else _tag(t.group, len(meta.shape), t.last)
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    raise UnsupportedModel(f"{where}: unsupported operation {name}")


def _is_stochastic_depth(target) -> bool:
    """torchvision's ``stochastic_depth`` (EfficientNet, ConvNeXt): each sample's features scaled alike."""
    return getattr(target, "__name__", "") == "stochastic_depth" and \
        getattr(target, "__module__", "").startswith("torchvision.ops")


def _permutation_dims(node: fx.Node, target, ndim: int) -> list[int]:
    """The axis order a permute / transpose node produces."""
    args = list(node.args[1:])
    if target in ("transpose", torch.transpose):
        a, b = (int(d) % ndim for d in args[:2])
        dims = list(range(ndim))
        dims[a], dims[b] = dims[b], dims[a]
        return dims
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = list(args[0])
    if "dims" in node.kwargs:
        args = list(node.kwargs["dims"])
    return [int(d) % ndim for d in args]


def permute(x: fx.Node, t: Any, dims: list[int], where: str) -> Any:
    """A re-ordering of the axes that brings the feature axis to axis 1 or to the last axis (ViT's
    ``[N, D, tokens] -> [N, tokens, D]``, ConvNeXt's channels-last blocks)."""
    ndim = len(dims)
    t = layout(x, t, "permute")
    if dims[0] != 0:
        raise UnsupportedModel(f"{where}: a permute that moves the batch axis is not supported")
    to = dims.index(t.axis(ndim))
    if to == 1:
        return Tag(t.group)
    if to == ndim - 1:
        return _tag(t.group, ndim, True)
    raise UnsupportedModel(f"{where}: permute {dims} moves the feature axis to the middle")


def reshape(x: fx.Node, t: Any, where: str, meta: TensorMetadata) -> Any:
    """flatten / view / reshape that keeps the feature axis whole: the identity, merging the spatial axes
    of ``[N, C, *spatial]`` (into one, or with the channels: ``[N, C * prod(spatial)]``), or any
    reshape of the axes before the last when the features are last."""
    src = tuple(meta_of(x).shape)
    dst = tuple(meta.shape)
    if src == dst:
        return t
    if isinstance(t, Param) or not isinstance(t, (Tag, Cat)):
        raise UnsupportedModel(f"{where}: reshape of a parameter read outside a layer")
    if isinstance(t, Cat):  # only [N, C, 1, ...] -> [N, C]
        if len(src) >= 3 and dst == src[:2] and math.prod(src[2:]) == 1:
            return t
        raise UnsupportedModel(f"{where}: reshape {list(src)} -> {list(dst)} of concatenated features")
    if t.last:
        if dst[-1] == src[-1] and len(dst) >= 2:
            return _tag(t.group, len(dst), True)
        raise UnsupportedModel(f"{where}: reshape {list(src)} -> {list(dst)} splits or merges the features")
    if len(src) >= 3 and len(dst) == 2 and dst[0] == src[0] and dst[1] == math.prod(src[1:]):
        return Tag(t.group, t.spatial * math.prod(src[2:]))
    if t.spatial == 1 and len(src) >= 3 and len(dst) >= 3 and dst[:2] == src[:2]:
        return t  # [N, C, h, w] -> [N, C, h * w]: the spatial axes only
    raise UnsupportedModel(f"{where}: reshape {list(src)} -> {list(dst)} moves the channel axis")


def getitem(node: fx.Node, tags: dict, where: str, meta: TensorMetadata) -> Any:
    """One output of a layer returning several (nn.MultiheadAttention's ``(output, weights)``), or
    indexing a tensor along axes other than its features (ViT's class token ``x[:, 0]``)."""
    source, index = node.args[0], node.args[1]
    t = tags.get(source)
    if isinstance(t, tuple):
        return t[index]
    src = meta_of(source)
    if src is None or not isinstance(t, Tag):
        raise UnsupportedModel(f"{where}: indexing of {'a parameter' if isinstance(t, Param) else 'this value'} "
                               f"is not supported")
    t = layout(node, t, "indexing")
    index = index if isinstance(index, tuple) else (index,)
    ndim = len(src.shape)
    keeps_batch = index[0] == slice(None)
    simple = all(isinstance(i, (int, slice)) for i in index)
    if t.last and simple and keeps_batch and len(index) < ndim:
        return _tag(t.group, len(meta.shape), True)
    if not t.last and simple and keeps_batch and len(index) >= 2 and index[1] == slice(None) \
            and all(isinstance(i, slice) for i in index):
        return t  # [N, C, crop]
    raise UnsupportedModel(f"{where}: indexing {index} that may cut the feature axis is not supported")


def elementwise(node: fx.Node, ctx: Context, in_tensors: list[fx.Node], tags: dict, where: str,
                meta: TensorMetadata) -> Tag:
    """A sum/product of tensors (residual connection), or a concatenation along the batch or the tokens:
    every operand with the output's features shares one group; an operand broadcast along the features
    (one channel, or a scalar) leaves it alone; a parameter read outside a layer (a bias, a position
    embedding, a class token) is permuted along its axis that meets the features."""
    out_shape = tuple(meta.shape)
    features = [tags.get(a) for a in in_tensors if isinstance(tags.get(a), Tag)]
    last = bool(features) and features[0].last
    axis = len(out_shape) - 1 if last else 1
    merged: Tag | None = None
    params: list[tuple[str, int]] = []
    for a in in_tensors:
        shape = tuple(meta_of(a).shape)
        t = tags.get(a)
        if math.prod(shape) == 1:
            continue
        if isinstance(t, Param):
            at = axis - (len(out_shape) - len(shape))  # right-aligned broadcasting
            if at >= 0 and shape[at] == out_shape[axis] and out_shape[axis] != 1:
                params.append((t.key, at))
            continue
        if len(shape) != len(out_shape):
            raise UnsupportedModel(f"{where}: broadcasts a {list(shape)} tensor against {list(out_shape)}")
        if len(shape) >= 2 and shape[axis] == 1 and out_shape[axis] != 1:
            continue
        if isinstance(t, Cat):
            raise UnsupportedModel(f"{where}: a sum or product of concatenated features is not supported")
        if not isinstance(t, Tag):
            raise UnsupportedModel(f"{where}: operand without a channel layout")
        if t.last != last and len(shape) > 2:
            raise UnsupportedModel(f"{where}: combines channels-first and channels-last features")
        if merged is None:
            merged = t
        else:
            if merged.spatial != t.spatial:
                raise UnsupportedModel(f"{where}: combines flattened and unflattened features")
            merged = Tag(ctx.walk.union(merged.group, t.group, where), t.spatial, t.last)
    if merged is None:
        merged = Tag(FIXED)
    for key, at in params:
        ctx.permute_param(key, at, merged.group, where)
    return merged


def concatenation(node: fx.Node, in_tensors: list[fx.Node], tags: dict) -> Cat:
    """``torch.cat`` along the channel axis: the parts in order, each keeping its group (a part that is
    itself a concatenation contributes its parts)."""
    parts: list[tuple[int, int]] = []
    for a in in_tensors:
        t = layout(node, tags.get(a), "concatenation", True, channels_first=True)
        parts.extend(t.parts if isinstance(t, Cat) else [(t.group, meta_of(a).shape[1])])
    return Cat(tuple(parts))


def layer_norm(node: fx.Node, ctx: Context, tags: dict, where: str) -> Tag:
    """``F.layer_norm`` over the features (last axis), its weight and bias read as parameters (as
    torchvision's LayerNorm2d calls it inside a channels-last permute)."""
    x = _first(node)
    t = layout(node, tags.get(x), "layer norm")
    shape = node.args[1] if len(node.args) > 1 else node.kwargs.get("normalized_shape")
    ndim = len(meta_of(x).shape)
    if len(tuple(shape)) != 1 or t.axis(ndim) != ndim - 1:
        raise UnsupportedModel(f"{where}: layer norm over {tuple(shape)} of features not on the last axis")
    for i, name in ((2, "weight"), (3, "bias")):
        a = node.args[i] if len(node.args) > i else node.kwargs.get(name)
        p = tags.get(a) if isinstance(a, fx.Node) else None
        if isinstance(p, Param):
            ctx.permute_param(p.key, 0, t.group, where)
        elif a is not None:
            raise UnsupportedModel(f"{where}: layer norm whose {name} is computed")
    return t
