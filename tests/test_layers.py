"""The house rules of lmc_utils, checked on its source: tiers import only downward, no import cycles
(function-level imports included), and only lmc_utils.core.settings reads an LMC_* variable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lmc_utils"

# tier -> the tiers it may import (besides itself); the package's top level imports nothing of its own
ALLOWED = {
    "core": set(),
    "permutation": {"core"},
    "measure": {"core", "permutation"},
    "matching": {"core", "permutation", "measure"},
    "zoo": {"core"},
    "claims": {"core"},
    "figures": {"core", "claims"},
    "studies": {"core", "permutation", "measure", "matching", "zoo", "claims"},
    "run": {"core", "permutation", "measure", "matching", "zoo", "claims", "figures"},
}
# entry points (`python -m ...`) may call the command line of a higher tier
ENTRY_POINTS = {"lmc_utils.zoo.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its source (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # a name imported from a module counts as that module
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):  # a module's own package is not an import
                found.add(t)
    return found


def tier(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for name, targets in edges.items():
        here = tier(name)
        if name in ENTRY_POINTS:
            continue
        for t in sorted(targets):
            there = tier(t)
            if here is None:
                bad.append(f"{name} imports {t} (the package's top level imports nothing of its own)")
            elif there is None:
                bad.append(f"{name} imports the package's top level ({t})")
            elif there != here and there not in ALLOWED[here]:
                bad.append(f"{name} ({here}) imports {t} ({there}): not a tier below")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    return found


def test_every_module_is_in_a_tier():
    assert all(tier(n) in ALLOWED for n in modules() if n != "lmc_utils"), \
        sorted(n for n in modules() if n != "lmc_utils" and tier(n) not in ALLOWED)


def test_tiers_import_only_downward():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_a_planted_upward_import_fails(tmp_path):
    edges = graph()
    edges["lmc_utils.core.data"] = edges["lmc_utils.core.data"] | {"lmc_utils.zoo.store"}
    assert upward_imports(edges) == ["lmc_utils.core.data (core) imports lmc_utils.zoo.store (zoo): not a tier below"]
    edges["lmc_utils.core.paths"] = edges["lmc_utils.core.paths"] | {"lmc_utils.core.data"}
    assert cycles(edges), "a planted cycle core.data -> core.paths -> core.data is found"


def test_a_planted_function_level_import_is_seen(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from ..zoo import store\n")
    assert imports("lmc_utils.core.x", path, set(modules())) == {"lmc_utils.zoo.store"}


def test_only_settings_reads_lmc_variables():
    readers = []
    for name, path in modules().items():
        if name == "lmc_utils.core.settings":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and ast.unparse(node.func.value) in ("os.environ", "environ") and node.args \
                    and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("LMC_"):
                readers.append(f"{name}: {ast.unparse(node)}")
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ" and \
                    isinstance(node.ctx, ast.Load) and "LMC_" in ast.unparse(node.slice):
                readers.append(f"{name}: {ast.unparse(node)}")
    assert readers == []


@pytest.mark.parametrize("limit", [600])
def test_no_module_is_over_the_size_limit(limit):
    big = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in modules().items()}
    assert {n: k for n, k in big.items() if k > limit} == {}
