"""lmc_utils installs on its own (#41, item 4): a wheel builds, installs (not editable) into a fresh
virtual environment whose dependencies pip resolves against pyproject's ranges, and the README's two
``lmc_utils`` snippets run there from a folder outside the checkout.

What is checked, and how:

- The wheel is built from a copy of the checkout's ``pyproject.toml``, ``README.md``, ``LICENSE`` and
  ``lmc_utils/`` (so the build's ``build/`` and ``*.egg-info`` never touch the checkout), with
  ``pip wheel --no-deps --no-build-isolation --no-index``: the build backend is this environment's
  setuptools (pyproject asks ``setuptools>=64``), not one fetched for the build. It must hold every
  ``.py`` file of ``lmc_utils/`` (a folder that setuptools' package discovery missed would be absent)
  and every other file there (``studies/*.csv``, read at import time by ``studies.width_clusters``).
- The fresh environment is ``python -m venv --without-pip`` in a temporary folder. Reinstalling torch,
  torchvision and the rest would copy gigabytes, so it sees the running environment's *installed*
  distributions instead, through a ``.pth`` file that adds an overlay folder as a site directory. The
  overlay holds links to the files (per each distribution's RECORD) of exactly the distributions in
  the closure of the wheel's ``Requires-Dist`` (no extras; markers evaluated; each dependency's own
  requirements followed) and nothing else: not pytest, not the checkout's editable lmc-rebasin. So an
  import of something the package does not declare fails there, as it would in a real fresh install.
- pip installs the wheel into it with ``--no-index`` and no configuration files (``PIP_CONFIG_FILE``
  is the null device: no find-links, no extra index, no constraints), running under the fresh
  interpreter (``pip --python``). It resolves the wheel's requirements against what the fresh
  interpreter sees, so every installed version must satisfy pyproject's ranges (torch, torchvision,
  numpy, ...): one outside them, or one missing, is an error, as nothing can be fetched.
- What this does not check: that pip would *pick* these versions from an index (it checks that the
  installed ones satisfy the ranges, not what a new download would bring), and other platforms or
  Python versions. The supported torch range is checked apart (docs/package.md, "Installing
  lmc_utils on its own").
- In the fresh environment, from a temporary folder (not the checkout; ``LMC_ROOT`` and ``PYTHONPATH``
  unset): ``lmc_utils.__file__`` lies in the fresh environment and no loaded module comes from the
  checkout (but for the dependencies' files, which may be the checkout's ``.venv``); both python blocks of README's "Using `lmc_utils`" section run, with the substitutions
  of ``tests/test_public_api.py`` (a 16-wide 1-layer MLP for one epoch, ResNet18 for ResNet50: the same
  code paths; as written they take about a minute on one thread), reading MNIST from ``LMC_DATA_DIR``
  and writing their cache to the test's ``LMC_CACHE_DIR`` (nothing lands in the folder they run in);
  the package data loads (``studies.width_clusters.TALK_ZOO``); the installed package's training-code digest
  equals the checkout's (a model cache is shared between the two); and ``python -m lmc_utils.run
  --list`` fails with a clear error outside a checkout but lists the checkout's notebooks with
  ``LMC_ROOT`` set to it. The library calls of the snippets (data, models, zoo, permutation, matching,
  measure) read nothing outside the package; what reads ``params/`` (the runner, the claims, figure
  labels after ``figures.setup(profile)``) serves the checkout's notebooks, and so belongs to a checkout.

The snippets read MNIST from ``LMC_DATA_DIR`` (in CI ``/work/shared/data``); without it that test is
skipped like the suite's other MNIST tests (``needs_mnist``), and says so.
"""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO, needs_mnist

README = REPO / "README.md"
SECTION = "## Using `lmc_utils`"
# README's snippets at test size (as tests/test_public_api.py): (old, new) per python block, in order.
SUBSTITUTIONS = [
    [('{"width": 512, "depth": 3}', '{"width": 16, "depth": 1}'), ("epochs=5", "epochs=1")],
    [("resnet50", "resnet18")],
]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "lmc_utils")


def readme_snippets() -> list[str]:
    """The python blocks of README's "Using `lmc_utils`" section (its ### subsections included), at
    test size; fails when their number changed or a substitution no longer applies."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) + len(SECTION):]
    end = re.search(r"^## ", section, re.M)
    blocks = re.findall(r"^```python\n(.*?)^```", section[:end.start() if end else None], re.S | re.M)
    assert len(blocks) == len(SUBSTITUTIONS), \
        f"README's {SECTION!r} has {len(blocks)} python blocks, this test knows {len(SUBSTITUTIONS)}: update it"
    snippets = []
    for code, substitutions in zip(blocks, SUBSTITUTIONS):
        for old, new in substitutions:
            assert old in code, f"README snippet changed ({old!r} is gone): update this test's substitutions"
            code = code.replace(old, new)
        snippets.append(code)
    return snippets


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def _pip_env() -> dict[str, str]:
    """pip with no configuration at all: no find-links, extra index or constraints from pip.conf/env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp / "dist", src], env=_pip_env())
    (wheel,) = (tmp / "dist").glob("lmc_rebasin-*.whl")
    return wheel


def requirement_closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that ``requirements`` (no extras) need, their own requirements
    followed (with the extras asked for, markers evaluated here). A requirement not installed is left
    out: pip reports it when it resolves the wheel."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) not in seen:
                seen.add((name, wanted))
                todo += [(Requirement(r), wanted) for r in dist.requires or ()]
    return found


def overlay(dists: dict[str, metadata.Distribution], folder: Path) -> None:
    """Links in ``folder`` to the top-level entries (packages, modules, ``.dist-info``, ``.libs``,
    ``.pth``) of ``dists``, taken from their RECORD."""
    folder.mkdir()
    for name, dist in dists.items():
        assert dist.files is not None, f"{name} has no RECORD: cannot tell its files"
        for top in {f.parts[0] for f in dist.files} - {"..", "__pycache__"}:
            target = Path(dist.locate_file(top))
            if target.exists() and not (folder / top).exists():
                (folder / top).symlink_to(target)


# Runs in the fresh environment: where lmc_utils comes from, the snippets, what they loaded.
CHECK = r"""
import json, sys
from pathlib import Path

import torch

repo, deps, venv = Path(sys.argv[1]).resolve(), Path(sys.argv[3]).resolve(), Path(sys.prefix).resolve()
import lmc_utils
assert Path(lmc_utils.__file__).resolve().is_relative_to(venv), f"lmc_utils from {lmc_utils.__file__}, not {venv}"
torch.manual_seed(0)
spaces = []
for i, code in enumerate(json.loads(Path(sys.argv[2]).read_text())):
    print(f"--- snippet {i + 1}", flush=True)
    spaces.append({})
    exec(compile(code, f"README.md snippet {i + 1}", "exec"), spaces[-1])
a, b = spaces[1]["a"].eval(), spaces[1]["b"].eval()
assert a(torch.randn(2, 3, 64, 64)).shape == b(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
from lmc_utils import zoo
from lmc_utils.studies import width_clusters
assert width_clusters.TALK_ZOO  # the package data (studies/talk_09.csv) is there
files = [Path(m.__file__).resolve() for m in list(sys.modules.values()) if getattr(m, "__file__", None)]
print("--- result", json.dumps({"lmc_utils": lmc_utils.__file__, "code_digest": zoo.code_digest(),
                               "from_checkout": [str(f) for f in files if f.is_relative_to(repo)
                                                 and not f.is_relative_to(deps)]}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, the fresh environment's python, a folder outside the checkout)."""
    tmp = tmp_path_factory.mktemp("installable")
    wheel = build_wheel(tmp)
    with zipfile.ZipFile(wheel) as zf:
        meta = email.message_from_bytes(zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    overlay(requirement_closure(meta.get_all("Requires-Dist") or []), tmp / "deps")
    (purelib / "_lmc_test_deps.pth").write_text(f"import site; site.addsitedir({str(tmp / 'deps')!r})\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-cache-dir", "-q", wheel],
         env=_pip_env())
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return wheel, python, elsewhere


def _fresh_env() -> dict[str, str]:
    """This test's environment (LMC_CACHE_DIR and LMC_OFFLINE from conftest) without anything that
    would point Python or lmc_utils at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LMC_ROOT", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "LMC_DATA_DIR": str(Path(os.environ.get("LMC_DATA_DIR", REPO / "data")).resolve())}


def test_the_wheel_holds_the_package_and_its_data(installed):
    wheel = installed[0]
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    package = [p.relative_to(REPO).as_posix() for p in (REPO / "lmc_utils").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    assert any(n.startswith("lmc_utils/studies/") and n.endswith(".csv") for n in package)
    assert sorted(set(package) - names) == [], f"files of lmc_utils/ missing from {wheel.name}"
    assert not [n for n in names if not n.startswith(("lmc_utils/", "lmc_rebasin-"))], "stray files in the wheel"


@needs_mnist
def test_the_readme_snippets_run_from_the_installed_package(installed):
    _, python, elsewhere = installed
    (elsewhere / "snippets.json").write_text(json.dumps(readme_snippets()))
    (elsewhere / "check.py").write_text(CHECK)
    # modules of the dependencies resolve to the running environment's files (which may be the checkout's .venv)
    done = _run([python, "check.py", REPO, "snippets.json", sys.prefix], cwd=elsewhere, env=_fresh_env(), timeout=600)
    out = done.stdout
    barrier_output = out[out.index("--- snippet 1"):out.index("--- snippet 2")]
    assert re.search(r"\d", barrier_output.replace("--- snippet 1", "")), f"snippet 1 printed no barrier:\n{out}"
    assert "permutation spec of ResNet: OK" in out, f"verify_spec did not pass on ResNet18:\n{out}"
    result = json.loads(out[out.index("--- result") + len("--- result"):])
    assert result["from_checkout"] == [], "modules loaded from the checkout"
    from lmc_utils import zoo
    assert result["code_digest"] == zoo.code_digest()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["check.py", "snippets.json"]  # all went to LMC_*_DIR


def test_the_runner_needs_a_checkout(installed):
    _, python, elsewhere = installed
    outside = subprocess.run([str(python), "-m", "lmc_utils.run", "--list"], cwd=elsewhere, env=_fresh_env(),
                             capture_output=True, text=True)
    assert outside.returncode == 2 and "LMC_ROOT" in outside.stderr, outside
    inside = _run([python, "-m", "lmc_utils.run", "--list"], cwd=elsewhere, env={**_fresh_env(), "LMC_ROOT": str(REPO)})
    from lmc_utils.run import runner
    assert inside.stdout.split() == [p.stem for p in runner.discover()]
