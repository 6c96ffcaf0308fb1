"""The public face of lmc_utils: the README's snippets run as written (on smaller models), the short
module names are the very modules of their tiers, and the house's new pieces (parameters collected from
the notebook's cell and checked, the cache re-keyed instead of retrained) do what they say."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch

import lmc_utils
from lmc_utils import profiles, zoo
from lmc_utils.core.checkpoint import load_checkpoint, save_checkpoint
from lmc_utils.paths import cache_dir

from conftest import needs_mnist

README = Path(__file__).resolve().parent.parent / "README.md"


def _snippet(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@needs_mnist
def test_the_readme_snippet_runs(capsys):
    code = _snippet("## Using `lmc_utils`")
    small = code.replace('{"width": 512, "depth": 3}', '{"width": 16, "depth": 1}').replace("epochs=5", "epochs=1")
    assert small != code, "the README snippet changed: update this test's substitutions"
    exec(compile(small, "README.md", "exec"), {})
    assert re.search(r"\d", capsys.readouterr().out)  # it printed the barrier


def test_the_readme_torchvision_snippet_runs():
    code = _snippet("### Matching a torchvision model (or your own)")
    small = code.replace("resnet50", "resnet18")
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(small, "README.md", "exec"), namespace)
    a, b = namespace["a"].eval(), namespace["b"].eval()
    x = torch.randn(2, 3, 64, 64)
    assert a(x).shape == b(x).shape == (2, 1000)


@pytest.mark.parametrize("short", sorted(lmc_utils.PUBLIC))
def test_short_names_are_the_modules_of_their_tiers(short):
    module = importlib.import_module(f"lmc_utils.{short}")
    home = importlib.import_module(f"lmc_utils.{lmc_utils.PUBLIC[short]}")
    assert module is home and getattr(lmc_utils, short) is home
    assert module.__spec__.name == home.__name__  # the module keeps its own spec


def test_resolve_reads_the_parameters_cell_and_checks_counts():
    cell = {"profile": "smoke", "n_points": 7, "eval_subset": None, "data": object()}  # imports are ignored
    p = profiles.resolve("00_rebasin_basics", "smoke", cell)
    assert p.n_points == 7 and p.profile == "smoke"
    with pytest.raises(AttributeError, match="read-only"):
        p.n_points = 3
    for bad in ({"mlp_mnist": 0, "vgg11_bn_fashion": 1}, -1):
        with pytest.raises(profiles.ProfileError, match="'n_pairs' must be a whole number >= 1"):
            profiles.resolve("00_rebasin_basics", "smoke", {"n_pairs": bad})
    with pytest.raises(profiles.ProfileError, match="'n_points' must be a whole number >= 2"):
        profiles.resolve("00_rebasin_basics", "smoke", n_points=1)


def test_rekey_renames_entries_of_equivalent_code_and_leaves_others(monkeypatch):
    tiny = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 4, "depth": 1}, epochs=1, seed=0)
    trained = zoo.get(tiny, device="cpu", progress=False)
    path = zoo.checkpoint_path(tiny, "cpu")
    state, meta, extras = load_checkpoint(path)
    old_env = {**meta["env"], "code": "0123456789abcdef"}  # as if an earlier release had trained it
    old = path.with_name(f"{meta['key']}-old.pt")
    save_checkpoint(old, state, {**meta, "env": old_env}, extras)
    other = path.with_name(f"{meta['key']}-other.pt")
    save_checkpoint(other, state, {**meta, "env": {**old_env, "code": "not equivalent"}}, extras)
    path.unlink()
    monkeypatch.setitem(zoo.store.EQUIVALENT_CODE, "0123456789abcdef", "a test's earlier release")
    assert zoo.rekey(apply=False) == [(old, path)] and old.exists()
    assert zoo.rekey() == [(old, path)] and not old.exists() and other.exists()
    again = zoo.get(tiny, device="cpu", progress=False)  # a hit: the renamed entry, not a retraining
    assert all(torch.equal(v, trained.model.state_dict()[k]) for k, v in again.model.state_dict().items())
    assert sorted(p.name for p in (cache_dir() / "models").glob("*.pt")) == sorted([path.name, other.name])


def test_the_code_digest_ignores_docstrings_and_comments(tmp_path):
    plain = tmp_path / "a.py"
    plain.write_text("def f(x):\n    return x + 1\n")
    documented = tmp_path / "b.py"
    documented.write_text('"""A module."""\n\n\ndef f(x):  # one more\n    """Add one."""\n    return x + 1\n')
    changed = tmp_path / "c.py"
    changed.write_text("def f(x):\n    return x + 2\n")
    norm = zoo.store.normalised_source
    assert norm(plain) == norm(documented) != norm(changed)
