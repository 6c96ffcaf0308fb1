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
  a parameter added to, multiplying or concatenated with permuted features along another axis
  (a bias, ViT's class token and position embedding, ConvNeXt's layer scale) is permuted with them;
* features may sit on the last axis (``[N, tokens, D]``, channels-last maps): a permute that moves
  them there and back, Linear and LayerNorm over the last axis and indexing of the tokens keep
  their group; ``nn.MultiheadAttention`` (``batch_first`` or not, one input dimension) is one group
  of ``2 * D`` units for its projections, ``H`` heads permuted as wholes, each holding its query/key
  units and its value units in their places (``heads``, ``blocks``): the query and key rows of
  ``in_proj_weight`` permute alike, the value rows with ``out_proj``'s columns;
* flattening ``[N, C, h, w]`` into ``[N, C*h*w]`` (after a pool larger than 1x1, as in
  torchvision's VGG) keeps the group on ``C``: the next Linear's weight is *viewed* as
  ``[out, C, h*w]`` (the spec's ``views``), so a permutation moves whole blocks of ``h*w`` inputs.

Anything else -- attention other than ``nn.MultiheadAttention`` (or with separate key/value
dimensions, or key/value biases), a sum of concatenated features, a parameter used outside a layer in
any other way, a reshape or permute that moves the feature axis, an unknown layer or function --
raises one :class:`UnsupportedModel` error naming the graph node, never a wrong spec. Groups are
named after the first layer that produces them.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..core.models import ChannelLayerNorm
from . import traced_ops as ops
from .layouts import FIXED, Cat, Context, Layer, Param, Tag, UnsupportedModel
from .spec import PermutationSpec

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.ELU,
                       nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Softplus)
_PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                 nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_OTHER_ATTENTION = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder,
                    nn.TransformerDecoder, nn.Transformer)


class _Tracer(fx.Tracer):
    """``torch.fx`` tracer that keeps this package's :class:`ChannelLayerNorm` as one layer."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, ChannelLayerNorm) or super().is_leaf_module(m, qualname)


def default_example_input(model: nn.Module) -> torch.Tensor:
    """Two random inputs for the model's first layer: ``[2, C, 64, 64]`` for a Conv2d (64 for each
    spatial axis of a Conv1d/3d; the model's ``image_size`` if it has one, as torchvision's ViT),
    ``[2, in_features]`` for a Linear."""
    p = next(model.parameters(), None)
    for m in model.modules():
        if isinstance(m, _CONVS):
            dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(m)]
            side = getattr(model, "image_size", 64)  # torchvision's ViT checks its image size
            return torch.randn(2, m.in_channels, *([side if isinstance(side, int) else 64] * dims),
                               device=p.device, dtype=p.dtype)
        if isinstance(m, nn.Linear):
            return torch.randn(2, m.in_features, device=p.device, dtype=p.dtype)
    raise UnsupportedModel(f"no permutation spec for {type(model).__name__}: it has no Conv or Linear layer "
                           f"(pass example_input to trace it anyway)")


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
    ctx = Context()
    walk = ctx.walk
    tags: dict[fx.Node, Any] = {}
    calls: dict[str, int] = {}

    for node in gm.graph.nodes:
        meta = ops.meta_of(node)
        where = ops.describe(node)
        if node.op == "placeholder":
            tags[node] = Tag(FIXED)
            continue
        if node.op == "output":
            def fix(a):
                t = tags.get(a)
                for g in ([t.group] if isinstance(t, Tag) else [g for g, _ in t.parts] if isinstance(t, Cat)
                          else []):
                    walk.union(g, FIXED, where)
            fx.node.map_arg(node.args, fix)
            continue
        if node.op == "get_attr":
            tags[node] = Param(node.target) if meta is not None else None
            if meta is not None:
                ctx.read.append(node.target)
            continue
        if meta is None and node.op != "call_module" and not ops.picks_an_output(node, tags):
            if node.op == "call_function" and node.target in ops.ATTENTION_FUNCTIONS:
                raise UnsupportedModel(f"{where}: attention outside nn.MultiheadAttention is not supported")
            if not ops.is_query(node) and any(isinstance(tags.get(a), Cat) or (
                    isinstance(tags.get(a), Tag) and walk.find(tags[a].group) != FIXED) for a in _tensor_args(node)):
                raise UnsupportedModel(f"{where}: an operation on permuted features that returns several "
                                       f"tensors (split, chunk, ...) is not supported")
            continue  # shapes, sizes, asserts: no tensor flows on
        in_tensors = _tensor_args(node)
        in_tags = [tags.get(a) for a in in_tensors]
        params = [t for t in in_tags if isinstance(t, Param)]
        # Anything computed only from never-permuted tensors is never permuted, whatever it is (and the
        # parameters it reads may not be permuted).
        if node.op != "call_module" and in_tags and len(params) < len(in_tags) and all(
                isinstance(t, Param) or (isinstance(t, Tag) and walk.find(t.group) == FIXED) for t in in_tags):
            ctx.fixed_params.update(p.key for p in params)
            tags[node] = Tag(FIXED)
            continue
        if params:
            if ops.is_param_view(node) and len(in_tags) == 1:
                tags[node] = params[0]  # expand / to / contiguous: still the parameter
                continue
            if not (ops.is_binary(node) or ops.is_cat(node) or ops.is_layer_norm(node)):
                raise UnsupportedModel(f"{where}: parameter {params[0].key!r} is used outside a layer in a way "
                                       f"no permutation spec can follow")
        if node.op == "call_module":
            mod = modules[node.target]
            calls[node.target] = calls.get(node.target, 0) + 1
            tags[node] = _module(node, mod, ctx, tags, where, meta)
        elif node.op in ("call_function", "call_method"):
            tags[node] = ops.function(node, ctx, tags, in_tensors, where, meta)
        else:  # pragma: no cover - fx has no other ops
            raise UnsupportedModel(f"{where}: unsupported graph op")
    return _build(model, ctx, calls)


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda a: out.append(a) if ops.meta_of(a) is not None else None)
    return out


def _module(node: fx.Node, mod: nn.Module, ctx: Context, tags: dict, where: str, meta: TensorMetadata | None) -> Any:
    target = node.target
    walk = ctx.walk
    if isinstance(mod, _OTHER_ATTENTION):
        raise UnsupportedModel(f"{where}: attention ({type(mod).__name__}) is not supported "
                               f"(nn.MultiheadAttention is)")
    x = node.args[0] if node.args else None
    if not isinstance(x, fx.Node) or ops.meta_of(x) is None:
        raise UnsupportedModel(f"{where}: expected a tensor as first argument")
    t = tags.get(x)
    if isinstance(t, Tag) and walk.find(t.group) == FIXED and not any(True for _ in mod.parameters()) \
            and not any(True for _ in mod.buffers()):
        return Tag(FIXED)  # a parameter-free module of never-permuted inputs
    if isinstance(mod, nn.MultiheadAttention):
        return _attention(node, mod, ctx, tags, where)
    ndim = len(ops.meta_of(x).shape)
    if isinstance(mod, _CONVS):
        if mod.groups != 1 and mod.groups == mod.in_channels == mod.out_channels:
            # one filter per channel: output channel c is computed from input channel c alone
            return _channelwise(target, "depthwise", ops.layout(node, t, "depthwise convolution", True, True),
                                ctx, where)
        if mod.groups != 1:
            # output channels of convolution group b read only its input channels: both groups of units
            # permute within the G groups of channels (a depthwise one with a multiplier m included)
            t = ops.layout(node, t, "grouped convolution", channels_first=True)
            walk.within_blocks(t.group, mod.groups, where)
            return Tag(_layer(target, "conv", mod.out_channels, t, ctx, where, mod.groups))
        t = ops.layout(node, t, "convolution", True, True)
        return Tag(_layer(target, "conv", mod.out_channels, t, ctx, where))
    if isinstance(mod, nn.Linear):
        if ndim == 2:
            if not isinstance(t, (Tag, Cat)):
                raise UnsupportedModel(f"{where}: Linear of a parameter read outside a layer")
            return Tag(_layer(target, "linear", mod.out_features, t, ctx, where))
        t = ops.layout(node, t, "Linear")
        if not t.last and walk.find(t.group) != FIXED:  # (an input's layout is free: it is never permuted)
            raise UnsupportedModel(f"{where}: Linear on a {ndim}-D input whose features are not on its last axis")
        return Tag(_layer(target, "linear", mod.out_features, t, ctx, where), last=True)
    norm = _is_channel_norm(mod, ndim, t)
    if norm is not None:
        if norm:
            raise UnsupportedModel(f"{where}: {norm}")
        t = ops.layout(node, t, type(mod).__name__, True)
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
            walk.within_blocks(ops.layout(node, t, "GroupNorm").group, mod.num_groups, where)
        return _channelwise(target, "norm", t, ctx, where)
    if isinstance(mod, _ACTIVATION_MODULES):
        ctx.observed.append((target, "act", ops.layout(node, t, type(mod).__name__, True)))
        return t
    if isinstance(mod, _PASS_MODULES):
        return t
    if isinstance(mod, _POOL_MODULES):
        return ops.layout(node, t, type(mod).__name__, True, channels_first=True)
    if isinstance(mod, nn.Flatten):
        return ops.reshape(x, t, where, meta)
    if type(mod).__name__ == "Permute" and hasattr(mod, "dims"):  # torchvision.ops.misc.Permute
        return ops.permute(x, t, [int(d) % ndim for d in mod.dims], where)
    raise UnsupportedModel(f"{where}: unsupported layer {type(mod).__name__}")


def _attention(node: fx.Node, mod: nn.MultiheadAttention, ctx: Context, tags: dict, where: str) -> tuple:
    """``nn.MultiheadAttention`` (called as one module): the queries, keys and values read one group
    (their inputs are merged), the output starts a new one, and the ``2 * D`` units in between (each
    head's query/key and value units) form one group permuted by whole heads."""
    if not mod._qkv_same_embed_dim or mod.bias_k is not None or mod.add_zero_attn:
        raise UnsupportedModel(f"{where}: multi-head attention with separate key/value dimensions, key/value "
                               f"biases or zero attention is not supported")
    if node.kwargs.get("need_weights", True) and not node.kwargs.get("average_attn_weights", True):
        raise UnsupportedModel(f"{where}: per-head attention weights returned (need_weights with "
                               f"average_attn_weights=False) would follow the heads' order")
    inputs = [a for a in list(node.args[:3]) + [node.kwargs.get(k) for k in ("query", "key", "value")]
              if isinstance(a, fx.Node)]
    merged = None
    for a in inputs:
        t = ops.layout(node, tags.get(a), "attention input")
        ndim = len(ops.meta_of(a).shape)
        if t.axis(ndim) != ndim - 1:
            raise UnsupportedModel(f"{where}: attention input whose features are not on its last axis")
        merged = t.group if merged is None else ctx.walk.union(merged, t.group, where)
    d, h = mod.embed_dim, mod.num_heads
    target = node.target
    prev = ctx.layers.get(target)
    if prev is None:
        units = ctx.walk.new(2 * d, f"{target} heads", blocks=2 * h)
        ctx.walk.heads[units] = h
        ctx.layers[target] = Layer("attention", ctx.walk.new(d, f"{target}.out_proj"), merged, attention=units,
                                   heads=h)
    else:
        ctx.walk.union(prev.inp, merged, where)
    layer = ctx.layers[target]
    layer.calls += 1
    return (Tag(layer.out, last=True), Tag(FIXED))


def _num_channels(mod: nn.Module) -> int:
    if hasattr(mod, "num_features"):  # BatchNorm, InstanceNorm
        return mod.num_features
    if isinstance(mod, nn.LayerNorm):
        return mod.normalized_shape[0]
    if isinstance(mod, nn.GroupNorm):
        return mod.num_channels
    return mod.weight.shape[0]  # ChannelLayerNorm


def _is_channel_norm(mod: nn.Module, ndim: int, t: Any) -> str | None:
    """``""`` for a norm layer that commutes with permutations of its input's features, a reason for one
    that does not, ``None`` for anything else."""
    last = isinstance(t, Tag) and t.last
    if isinstance(mod, nn.LayerNorm):
        if len(mod.normalized_shape) != 1 or not (ndim == 2 or last):
            return (f"LayerNorm over {tuple(mod.normalized_shape)} of a {ndim}-D input whose features are not "
                    f"on its last axis")
        return ""
    if isinstance(mod, (*_BATCHNORMS, ChannelLayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
                        nn.InstanceNorm3d)):
        return f"{type(mod).__name__} of channels-last features" if last else ""
    return None


def _channelwise(target, kind: str, t: "Tag | Cat", ctx: Context, where) -> "Tag | Cat":
    """A layer acting on each channel alone (a norm layer, a depthwise convolution) keeps its input's
    group (or concatenated groups), and its parameters are permuted with it (a layer called again
    merges the groups it sees)."""
    layout = t.group if isinstance(t, Tag) else t
    prev = ctx.layers.get(target)
    if prev is None:
        ctx.layers[target] = Layer(kind, layout)
    else:
        ctx.walk.union_tags(prev.out, layout, where)
    ctx.layers[target].calls += 1
    ctx.observed.append((target, "norm" if kind == "norm" else "layer", t))
    return t


def _layer(target, kind, size, t: "Tag | Cat", ctx: Context, where, groups: int = 1) -> int:
    """The output group of a Conv/Linear call (a layer called again keeps its groups, merged); a grouped
    convolution's output permutes within its ``groups``."""
    layout, spatial = (t.group, t.spatial) if isinstance(t, Tag) else (t, 1)
    last = isinstance(t, Tag) and t.last
    prev = ctx.layers.get(target)
    if prev is None:
        ctx.layers[target] = Layer(kind, ctx.walk.new(size, target, groups), layout, spatial, groups=groups)
    else:
        if prev.spatial != spatial:
            raise UnsupportedModel(f"{where}: layer called on inputs of different layouts")
        ctx.walk.union_tags(prev.inp, layout, where)
    ctx.layers[target].calls += 1
    out = ctx.layers[target].out
    ctx.observed.append((target, "layer", Tag(out, last=last)))
    return out


def _build(model: nn.Module, ctx: Context, calls: dict[str, int]) -> PermutationSpec:
    walk, layers = ctx.walk, ctx.layers
    for key in ctx.fixed_params & set(ctx.params):  # read on never-permuted tensors too: not permuted
        walk.union(ctx.params[key][1], FIXED, f"parameter {key!r}")
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

    concats: dict[tuple[tuple, ...], str] = {}

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
    attention: dict[str, Layer] = {n: layer for n, layer in layers.items() if layer.kind == "attention"}
    for key, tensor in state.items():
        mod_name, _, param = key.rpartition(".")
        layer = layers.get(mod_name)
        owner = mod_name.rpartition(".")[0] if mod_name.endswith(".out_proj") else mod_name
        if owner in attention:
            axes[key] = _attention_axes(key, attention[owner], walk.size[attention[owner].out], group, concats)
            continue
        if layer is None:
            if key in ctx.params:  # read outside a layer and permuted with the features it meets
                at, g = ctx.params[key]
                axes[key] = tuple(group(g) if i == at else None for i in range(tensor.ndim))
                continue
            if key in ctx.read or any(key.startswith(r + ".") for r in ctx.read):
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
    heads = {n: walk.heads[r] for r, n in names.items() if r in walk.heads}

    acts: dict[str, dict[str, list[str]]] = {}
    seen: set[tuple[str, str]] = set()
    for mod_name, category, t in ctx.observed:
        g = group(t.group) if isinstance(t, Tag) and not t.last else None  # activations: features on axis 1
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
                           concats={name: parts for parts, name in concats.items()}, heads=heads)


def _attention_axes(key: str, layer: Layer, d: int, group, concats: dict) -> tuple[str | None, ...]:
    """The axes of an ``nn.MultiheadAttention`` entry (embedding dimension ``d``): its heads' units are
    one group of ``2 * d`` laid out head by head, ``[query/key units | value units]`` in each;
    ``in_proj`` rows are the query/key units twice, then the value units (three selections of that
    group), ``out_proj`` columns the value units."""
    units, stream, out = group(layer.attention), group(layer.inp), group(layer.out)
    if units is None:
        raise UnsupportedModel(f"state entry {key!r}: attention whose heads are never permuted")
    period = 2 * d // layer.heads
    qk, v = (units, d, period, 0), (units, d, period, period // 2)
    qkv, values = (qk, qk, v), (v,)
    concats.setdefault(qkv, f"{units}: queries, keys and values")
    concats.setdefault(values, f"{units}: values")
    name = key.rpartition(".")[2]
    if key.endswith("out_proj.weight"):
        return (out, concats[values])
    if key.endswith("out_proj.bias"):
        return (out,)
    if name == "in_proj_weight":
        return (concats[qkv], stream)
    if name == "in_proj_bias":
        return (concats[qkv],)
    raise UnsupportedModel(f"state entry {key!r}: an attention entry this spec does not know")
