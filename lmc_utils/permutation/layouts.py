"""What :func:`lmc_utils.permutation.traced_spec` tracks while it walks a model's graph: for every
tensor, the layout of its feature axis (a :class:`Tag`: one permutation group, or a :class:`Cat`:
concatenated groups; a :class:`Param` for a parameter read outside a layer), the layers it has seen
(:class:`Layer`), and the groups themselves, merged as the graph demands (:class:`Walk`, a union-find
whose element :data:`FIXED` is never permuted); :class:`Context` holds all of it for one walk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

FIXED = 0  # the union-find element of everything that is never permuted (inputs, outputs)


class UnsupportedModel(TypeError):
    """The model's graph has something a permutation spec cannot be derived for (named in the message)."""


@dataclass(frozen=True)
class Tag:
    """Which group permutes a tensor's feature axis: axis 1 (``[N, C, ...]``, and ``[N, features]``),
    or with ``last`` the last axis of a tensor of three or more (``[N, tokens, D]``, a channels-last map);
    ``spatial`` > 1 after flattening ``[N, C, h, w]`` (the features are ``C`` blocks of ``spatial``
    consecutive entries)."""

    group: int
    spatial: int = 1
    last: bool = False

    def axis(self, ndim: int) -> int:
        """The feature axis of a tensor of ``ndim`` axes laid out so."""
        return ndim - 1 if self.last else 1


@dataclass(frozen=True)
class Param:
    """A parameter (or buffer) read outside a layer (``get_attr``), or an expanded view of one."""

    key: str


@dataclass(frozen=True)
class Cat:
    """Features concatenated along the channel axis: each part as ``(group, channels)``, in order."""

    parts: tuple[tuple[int, int], ...]


@dataclass
class Layer:
    """A Conv/Linear/norm layer seen in the graph: its output and input groups and how it is seen."""

    kind: str  # "conv" | "linear" | "norm" | "depthwise"
    out: "int | Cat"  # a norm or depthwise layer of concatenated features keeps their parts
    inp: "int | Cat | None" = None
    spatial: int = 1  # spatial of the input (Linear after a flatten)
    calls: int = 0
    groups: int = 1  # a grouped convolution's groups
    attention: int | None = None  # multi-head attention: the group of its heads' query/key and value units
    heads: int = 1


@dataclass
class Walk:
    parent: list[int] = field(default_factory=lambda: [FIXED])
    size: list[int | None] = field(default_factory=lambda: [None])
    creator: list[str] = field(default_factory=lambda: ["(fixed)"])
    blocks: list[int] = field(default_factory=lambda: [1])  # of a root: its permutation stays within blocks
    heads: dict[int, int] = field(default_factory=dict)  # of a root: whole heads permuted (attention units)

    def new(self, size: int, creator: str, blocks: int = 1) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.creator.append(creator)
        self.blocks.append(blocks)
        return len(self.parent) - 1

    def within_blocks(self, g: int, blocks: int, where: str) -> None:
        """Group ``g`` must keep its units within ``blocks`` equal blocks (and any it had)."""
        r = self.find(g)
        if r == FIXED:
            return
        both = math.lcm(self.blocks[r], blocks)
        if self.size[r] % both:
            raise UnsupportedModel(f"{where}: {self.size[r]} channels cannot stay within both {self.blocks[r]} "
                                   f"and {blocks} equal groups")
        self.blocks[r] = both

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
        if (a in self.heads or b in self.heads) and self.heads.get(a) != self.heads.get(b):
            raise UnsupportedModel(f"{where}: attention heads' units meet other features")
        if b == FIXED or (a != FIXED and b < a):
            a, b = b, a
        self.parent[b] = a  # the root is FIXED, or else the group created first
        if a != FIXED:
            self.within_blocks(a, self.blocks[b], where)
        return a

    def union_tags(self, a: "int | Cat", b: "int | Cat", where: str) -> None:
        """Merge two layouts of one layer's input or output (a layer called twice): group with group,
        or a concatenation part by part."""
        if isinstance(a, Cat) or isinstance(b, Cat):
            if not (isinstance(a, Cat) and isinstance(b, Cat)) or [n for _, n in a.parts] != [n for _, n in b.parts]:
                raise UnsupportedModel(f"{where}: layer called on differently concatenated features")
            for (g, _), (h, _) in zip(a.parts, b.parts):
                self.union(g, h, where)
        else:
            self.union(a, b, where)


@dataclass
class Context:
    """The state of one walk over a graph: the groups, the layers seen, the layers whose outputs carry a
    group (for activation matching), and the parameters read outside a layer: those a group permutes
    (key -> (axis, group)) and those used on never-permuted tensors (which no group may permute)."""

    walk: Walk = field(default_factory=Walk)
    layers: dict[str, Layer] = field(default_factory=dict)
    observed: list[tuple[str, str, Tag]] = field(default_factory=list)  # (module, category, tag of its output)
    params: dict[str, tuple[int, int]] = field(default_factory=dict)
    fixed_params: set[str] = field(default_factory=set)
    read: list[str] = field(default_factory=list)  # every key read outside a layer

    def permute_param(self, key: str, axis: int, group: int, where: str) -> None:
        """Parameter ``key`` is permuted on ``axis`` by ``group`` (merged with any group it had)."""
        if key in self.params:
            prev_axis, prev = self.params[key]
            if prev_axis != axis:
                raise UnsupportedModel(f"{where}: parameter {key!r} meets permuted features on two different axes")
            self.walk.union(prev, group, where)
        else:
            self.params[key] = (axis, group)

