"""Values checked against a notebook's declared parameter annotations, before any work starts.

The parameters cell declares each parameter with a type annotation (``n_points: Optional[int] =
None``); Papermill's inspector reports it as text (``"Optional[int]"``). :func:`mismatch` says
whether a value (a ``-p`` override parsed as YAML, or a profile file's entry) fits that text, so
``-p n_points ten`` is one message naming the parameter instead of a ``TypeError`` deep in a
notebook. Annotations it does not know are not judged.
"""

from __future__ import annotations

from typing import Any

_BASES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                       "dict": (dict,), "list": (list,), "tuple": (list, tuple)}


def _split_top(text: str) -> list[str]:
    """``"int, dict[str, int]"`` -> ``["int", "dict[str, int]"]`` (commas outside brackets)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def fits(annotation: str, value: Any) -> bool:
    """Whether ``value`` fits the annotation text (``Optional[...]``, ``Union[...]``, ``X | Y``,
    ``list[...]``, ``dict[...]`` and the builtin scalars; anything else is accepted)."""
    t = annotation.replace("typing.", "").strip()
    if not t or t in ("None", "Any", "object"):
        return t != "None" or value is None
    if "|" in t and "[" not in t:
        return any(fits(p, value) for p in t.split("|"))
    head, _, rest = t.partition("[")
    inner = _split_top(rest[:-1]) if rest.endswith("]") else []
    head = head.strip()
    if head == "Optional":
        return value is None or fits(inner[0], value)
    if head == "Union":
        return any(fits(p, value) for p in inner)
    if head.lower() in ("list", "sequence"):
        return isinstance(value, list) and (not inner or all(fits(inner[0], v) for v in value))
    if head.lower() in ("dict", "mapping"):
        return isinstance(value, dict)
    base = _BASES.get(head)
    if base is None:
        return True
    if isinstance(value, bool) and head != "bool":
        return False
    return isinstance(value, base)


def mismatch(name: str, annotation: str, value: Any, where: str) -> str | None:
    """An error message if ``value`` does not fit, else ``None``."""
    if fits(annotation, value):
        return None
    return f"{where}: parameter {name!r} must be {annotation}, got {value!r} ({type(value).__name__})"
