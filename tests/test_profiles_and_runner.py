"""Profiles and the Papermill runner: bad requests fail loudly; notebooks stay consistent."""

import json
import subprocess
import sys

import jupytext
import pytest
import yaml

from lmc_utils import profiles, run
from lmc_utils.paths import notebooks_dir, params_dir

NOTEBOOKS = run.discover()
GENERIC = {"profile", "device", "seed"}  # parameters every notebook declares, not in params/*.yaml


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].stem == "00_rebasin_basics"


def test_unknown_profile_is_an_error():
    with pytest.raises(profiles.ProfileError, match="unknown profile 'fast'"):
        profiles.resolve("00_rebasin_basics", "fast")


def test_resolve_merges_overrides_and_rejects_unknown_names():
    p = profiles.resolve("00_rebasin_basics", "smoke", n_points=7, eval_subset=None)
    assert p.profile == "smoke" and p.n_points == 7
    assert p.eval_subset == yaml.safe_load((params_dir() / "smoke.yaml").read_text())["00_rebasin_basics"]["eval_subset"]
    with pytest.raises(profiles.ProfileError, match="n_pionts"):
        profiles.resolve("00_rebasin_basics", "smoke", n_pionts=7)
    with pytest.raises(profiles.ProfileError, match="no section"):
        profiles.resolve("99_nothing", "smoke")


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_profile_sections_match_the_parameters_cell(source, profile):
    declared = set(run.declared_parameters(run.sync_notebook(source)))
    assert GENERIC <= declared
    section = profiles.load(profile)[source.stem]
    assert set(section) == declared - GENERIC


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_notebook_is_in_sync(source):
    py, ipynb = jupytext.read(source), jupytext.read(source.with_suffix(".ipynb"))
    assert run._cells(py) == run._cells(ipynb), "run `python -m lmc_utils.run --list` or jupytext --sync"
    tags = [c.metadata.get("tags", []) for c in ipynb.cells]
    assert sum("parameters" in t for t in tags) == 1


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_help_notebook(source):
    out = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(source.with_suffix(".ipynb"))],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in GENERIC:
        assert name in out.stdout


def test_runner_rejects_unknown_profile(capsys):
    assert run.main(["--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


def test_runner_rejects_undeclared_parameter(capsys):
    assert run.main(["--profile", "smoke", "-p", "epochs_typo", "3", "00"]) == 2
    err = capsys.readouterr().err
    assert "epochs_typo" in err and "not declared" in err


def test_runner_rejects_unknown_notebook(capsys):
    assert run.main(["--profile", "smoke", "42"]) == 2
    assert "no notebook '42'" in capsys.readouterr().err


def test_prepare_injects_parameters(tmp_path):
    [out] = run.prepare("smoke", tmp_path, ["00"], {"seed": 3})
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "profile = \"smoke\"" in "".join(injected[0]["source"])
    assert "seed = 3" in "".join(injected[0]["source"])
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_notebooks_follow_the_house_rules():
    for source in NOTEBOOKS:
        text = source.read_text()
        assert "sys.path" not in text and "%pip" not in text and "../data" not in text, source.name
        assert text.count('tags=["parameters"]') == 1
    assert (notebooks_dir() / "00_rebasin_basics.ipynb").exists()


def test_resume_skips_notebooks_done_with_the_same_inputs(monkeypatch, tmp_path):
    """Fingerprints: a second --resume run skips; a changed parameter runs again."""
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path)
    calls = []
    monkeypatch.setattr(run, "execute", lambda source, profile, params, out: calls.append(params) or 0.5)
    first = run.run("smoke", ["00"], {}, resume=True)
    again = run.run("smoke", ["00"], {}, resume=True)
    changed = run.run("smoke", ["00"], {"seed": 4}, resume=True)
    assert [r["status"] for r in (first[0], again[0], changed[0])] == ["ok", "skipped (done)", "ok"]
    assert calls == [{}, {"seed": 4}]


def test_a_failing_notebook_is_reported_and_the_batch_goes_on(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path)

    def execute(source, profile, params, out):
        if source.stem.startswith("00"):
            raise RuntimeError("boom in cell 3")
        return 1.0

    monkeypatch.setattr(run, "execute", execute)
    assert run.main(["--profile", "smoke", "00", "01"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: boom in cell 3" in out and "01_distance_taylor" in out
