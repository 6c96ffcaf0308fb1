"""Profiles and the Papermill runner: bad requests fail loudly; notebooks stay consistent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
import yaml

from lmc_utils import profiles
from lmc_utils.run import runner as run
from lmc_utils.paths import figures_dir, notebooks_dir, params_dir

REPO = Path(__file__).resolve().parent.parent

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


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_profile_sections_are_notebooks_and_labels(profile):
    assert set(profiles.load(profile)) == {s.stem for s in NOTEBOOKS} | set(profiles.SPECIAL_SECTIONS)
    assert set(profiles.notebook_sections(profile)) == {s.stem for s in NOTEBOOKS}
    assert profiles.labels(profile) and all(isinstance(v, str) for v in profiles.labels(profile).values())
    with pytest.raises(profiles.ProfileError, match="no section 'labels'"):
        profiles.resolve("labels", profile)


def test_malformed_labels_are_an_error(monkeypatch, tmp_path):
    (tmp_path / "smoke.yaml").write_text("00_rebasin_basics: {}\nlabels: [mlp_mnist]\n")
    monkeypatch.setattr("lmc_utils.core.params.params_dir", lambda: tmp_path)
    with pytest.raises(profiles.ProfileError, match="'labels' must map"):
        profiles.labels("smoke")


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


def _fake_execute(calls):
    """A stand-in for run.execute that writes what a notebook would, where the kernel would
    (LMC_FIGURES_DIR / profile + LMC_FIGURES_SUFFIX), and records the kernel environment."""
    def execute(source, profile, params, out):
        calls.append({"params": params, **{k: os.environ.get(k) for k in KERNEL_VARS}})
        folder = figures_dir(profile)
        folder.mkdir(parents=True, exist_ok=True)
        number = source.stem.split("_", 1)[0]
        (folder / f"{number}_verdicts.csv").write_text("notebook,claim,subject\n")
        (folder / f"{number}_table.csv").write_text("a\n1\n")
        return 0.5
    return execute


KERNEL_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LMC_THREADS", "LMC_FIGURES_DIR", "LMC_FIGURES_SUFFIX")


def test_resume_skips_notebooks_done_with_the_same_inputs(monkeypatch, tmp_path):
    """A second --resume run skips; a changed parameter, thread count, code digest or a deleted
    output runs it again."""
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    calls = []
    monkeypatch.setattr(run, "execute", _fake_execute(calls))

    def status(**kw):
        return run.run("smoke", ["00"], kw.pop("params", {}), resume=True, **kw)[0]["status"]

    assert [status(), status()] == ["ok", "skipped (done)"]
    assert status(params={"seed": 4}) == "ok"
    assert status(threads=3) == "ok" and status(threads=3) == "skipped (done)"
    (figures_dir("smoke") / "00_table.csv").unlink()  # an output of the recorded run is gone
    assert status(threads=3) == "ok" and status(threads=3) == "skipped (done)"
    (figures_dir("smoke") / "00_verdicts.csv").unlink()
    assert status(threads=3) == "ok"
    monkeypatch.setattr(run, "code_digest", lambda package=None: "edited lmc_utils")
    assert status(threads=1) == "ok" and status(threads=1) == "skipped (done)"
    assert [c["params"] for c in calls] == [{}, {"seed": 4}, {}, {}, {}, {}]


def test_resume_fingerprint_follows_the_library_code_and_criteria(tmp_path, monkeypatch):
    source = NOTEBOOKS[0]
    base = run.fingerprint(source, "smoke", {}, 2)
    assert run.fingerprint(source, "smoke", {}, 2) == base
    assert run.fingerprint(source, "smoke", {}, 1) != base
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    digest = run.code_digest(package)
    (package / "a.py").write_text("x = 2\n")
    assert run.code_digest(package) != digest
    monkeypatch.setattr(run, "code_digest", lambda package=None: "other")
    assert run.fingerprint(source, "smoke", {}, 2) != base
    monkeypatch.undo()
    fake_params = tmp_path / "params"
    fake_params.mkdir()
    for f in params_dir().glob("*.yaml"):
        (fake_params / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(run, "params_dir", lambda: fake_params)
    assert run.fingerprint(source, "smoke", {}, 2) == base
    with open(fake_params / "criteria.yaml", "a") as f:
        f.write("\n# a criterion edited\n")
    assert run.fingerprint(source, "smoke", {}, 2) != base


def test_kernels_get_the_thread_count_and_figures_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    calls = []
    monkeypatch.setattr(run, "execute", _fake_execute(calls))
    assert run.main(["--profile", "smoke", "--threads", "3", "00"]) == 0
    assert calls[0]["OMP_NUM_THREADS"] == calls[0]["MKL_NUM_THREADS"] == calls[0]["LMC_THREADS"] == "3"
    # kernels write into a staging folder; the runner moves the outputs into figures/ when done
    assert Path(calls[0]["LMC_FIGURES_DIR"]).parent == tmp_path / "build" / "staging"
    assert calls[0]["LMC_FIGURES_SUFFIX"] == ""
    assert "OMP_NUM_THREADS" not in os.environ  # restored after the run
    with pytest.raises(SystemExit) as exit_:
        run.main(["--profile", "smoke", "--threads", "0", "00"])
    assert exit_.value.code == 2


def test_lmc_threads_is_applied_by_resolve_and_get_device(monkeypatch):
    import torch

    from lmc_utils import device

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LMC_THREADS", "1")
        torch.set_num_threads(2)
        profiles.resolve("00_rebasin_basics", "smoke")
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        device.get_device("cpu")
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("LMC_THREADS", "two")
        with pytest.raises(ValueError, match="LMC_THREADS='two'"):
            device.apply_threads()
        monkeypatch.delenv("LMC_THREADS")
        assert device.apply_threads() is None
    finally:
        torch.set_num_threads(before)


def test_overrides_write_beside_the_profile_never_over_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    calls = []
    monkeypatch.setattr(run, "execute", _fake_execute(calls))
    label = run.output_label("smoke", {"seed": 1, "n_points": 5})
    assert label == run.output_label("smoke", {"n_points": 5, "seed": 1})  # order does not matter
    assert label.startswith("smoke+") and len(label) == len("smoke+") + 8 and label != run.output_label("smoke", {"seed": 2})
    assert run.output_label("smoke", {}) == "smoke"
    assert run.main(["--profile", "smoke", "-p", "seed", "1", "-p", "n_points", "5", "00"]) == 0
    out = capsys.readouterr().out
    folder = figures_dir() / label
    assert f"outputs go to {folder}/" in out and f"figures and tables in {folder}/" in out
    assert calls[0]["LMC_FIGURES_SUFFIX"] == label[len("smoke"):]
    assert sorted(p.name for p in folder.iterdir()) == ["00_table.csv", "00_verdicts.csv", "overrides.json",
                                                         "provenance.json"]
    assert json.loads((folder / "overrides.json").read_text()) == {"profile": "smoke",
                                                                   "parameters": {"n_points": 5, "seed": 1}}
    assert not (figures_dir("smoke")).exists()  # the profile's own folder is untouched
    assert (tmp_path / "build" / "executed" / label / "status.json").exists()


def test_provenance_records_environment_and_merges_per_notebook(monkeypatch, tmp_path):
    import numpy
    import torch

    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    monkeypatch.setattr(run, "execute", _fake_execute([]))
    run.run("smoke", ["00"], {}, threads=1)

    def failing(source, profile, params, out):
        raise RuntimeError("boom")

    monkeypatch.setattr(run, "execute", failing)
    run.run("smoke", ["01"], {}, threads=2)
    prov = json.loads((figures_dir("smoke") / "provenance.json").read_text())
    nbs = prov["notebooks"]
    assert nbs["00_rebasin_basics"]["status"] == "ok" and nbs["00_rebasin_basics"]["seconds"] == 0.5
    assert nbs["01_distance_taylor"]["status"] == "failed" and nbs["01_distance_taylor"]["seconds"] is None
    env0 = prov["environments"][nbs["00_rebasin_basics"]["environment"]]
    env1 = prov["environments"][nbs["01_distance_taylor"]["environment"]]
    assert env0["threads"] == 1 and env1["threads"] == 2
    assert env0["torch"] == torch.__version__ and env0["numpy"] == numpy.__version__
    assert env0["device"] == "cpu" or env0["device"].startswith("cuda")
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    assert env0["commit"] == head and isinstance(env0["dirty"], bool) and env0["cpu"]
    assert prov["profile"] == "smoke" and "time" not in json.dumps(prov).lower()
    monkeypatch.setattr(run, "execute", _fake_execute([]))
    run.run("smoke", ["01"], {}, threads=1)  # same environment again: one record left
    prov = json.loads((figures_dir("smoke") / "provenance.json").read_text())
    assert len(prov["environments"]) == 1 and prov["notebooks"]["01_distance_taylor"]["status"] == "ok"


def _set_status_in_process(args):
    path, stem = args
    for _ in range(5):
        run._set_status(Path(path), stem, {"fingerprint": stem})


def test_concurrent_status_updates_are_not_lost(tmp_path):
    import multiprocessing

    path = tmp_path / "status.json"
    stems = [f"{i:02d}_nb" for i in range(12)]
    with multiprocessing.get_context("fork").Pool(6) as pool:
        pool.map(_set_status_in_process, [(str(path), s) for s in stems])
    assert sorted(json.loads(path.read_text())) == stems
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]  # no lock or temporary files left


def test_each_execution_gets_its_own_partial_notebook(monkeypatch, tmp_path):
    import papermill

    seen = []

    def fake(notebook, output, **kw):
        seen.append(output)
        Path(output).write_text("{}")
        if len(seen) == 2:
            raise RuntimeError("cell failed")

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    run.execute(NOTEBOOKS[0], "smoke", {}, tmp_path)
    with pytest.raises(RuntimeError):
        run.execute(NOTEBOOKS[0], "smoke", {}, tmp_path)
    assert len(set(seen)) == 2 and all(s.endswith(".partial.ipynb") for s in seen)
    assert not Path(seen[0]).exists() and (tmp_path / "00_rebasin_basics.ipynb").exists()
    assert Path(seen[1]).exists()  # the failed run's partial notebook is kept


def test_check_takes_no_overrides_or_resume(capsys):
    assert run.main(["--profile", "smoke", "--check", "-p", "seed", "1", "00"]) == 2
    assert "--check" in capsys.readouterr().err
    assert run.main(["--profile", "smoke", "--check", "--resume", "00"]) == 2


def test_a_failing_notebook_is_reported_and_the_batch_goes_on(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")

    def execute(source, profile, params, out):
        if source.stem.startswith("00"):
            raise RuntimeError("boom in cell 3")
        return 1.0

    monkeypatch.setattr(run, "execute", execute)
    assert run.main(["--profile", "smoke", "00", "01"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: boom in cell 3" in out and "01_distance_taylor" in out


@pytest.mark.parametrize("name,value,allowed", [
    ("n_points", "ten", "Optional[int]"),  # was: TypeError: '<' not supported between 'str' and 'int'
    ("seed", "ten", "int"),                # was: TypeError: can only concatenate str ...
    ("seed", True, "int"),
    ("experiments", [1, 2], "Optional[dict]"),
])
def test_runner_names_a_parameter_of_the_wrong_type(capsys, name, value, allowed):
    assert run.main(["--profile", "smoke", "-p", name, yaml.safe_dump(value).strip().removesuffix("..."), "00"]) == 2
    err = capsys.readouterr().err
    assert f"parameter {name!r} must be {allowed}, got {value!r}" in err


def test_parameter_annotations_are_read_as_types():
    from lmc_utils.parameter_types import fits

    assert fits("Optional[int]", None) and fits("Optional[int]", 3) and not fits("Optional[int]", 3.5)
    assert fits("float", 3) and not fits("float", "3") and not fits("int", False)
    assert fits("Optional[list[int]]", [1, 2]) and not fits("Optional[list[int]]", [1, "x"])
    assert fits("Union[int, dict]", {"a": 1}) and fits("int | None", None) and not fits("int | None", "x")
    assert fits("SomeUnknownType", object())  # not judged


def test_profile_file_values_of_the_wrong_type_are_named(monkeypatch, tmp_path, capsys):
    profile = yaml.safe_load((run.params_dir() / "smoke.yaml").read_text())
    profile["00_rebasin_basics"]["n_points"] = "ten"
    params = tmp_path / "params"
    params.mkdir()
    (params / "smoke.yaml").write_text(yaml.safe_dump(profile))
    monkeypatch.setattr("lmc_utils.core.params.params_dir", lambda: params)
    assert run.main(["--profile", "smoke", "00"]) == 2
    assert "00_rebasin_basics (params file): parameter 'n_points' must be Optional[int], got 'ten'" in capsys.readouterr().err


def _writing_execute(interrupt_at=None, warn=None):
    """An ``execute`` that writes a figure and a verdict table where the kernel would (and the
    executed notebook), or raises KeyboardInterrupt at notebook ``interrupt_at``."""
    import nbformat

    def execute(source, profile, params, out):
        number = source.stem[:2]
        if number == interrupt_at:
            raise KeyboardInterrupt
        folder = Path(os.environ["LMC_FIGURES_DIR"]) / (profile + os.environ.get("LMC_FIGURES_SUFFIX", ""))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number}_figure.png").write_text("new")
        (folder / f"{number}_verdicts.csv").write_text("new")
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("x")
        cell.id = "x"  # papermill keeps the source notebook's (stable) cell ids; nbformat's are random
        if warn:
            cell.outputs = [nbformat.v4.new_output("stream", name="stderr",
                                                   text=f"/tmp/ipykernel_1/2.py:3: RuntimeWarning: {warn}\n  x\n")]
        nb.cells = [cell]
        nbformat.write(nb, out / source.with_suffix(".ipynb").name)
        return 1.0

    return execute


def test_interrupted_run_prints_the_summary_and_keeps_old_outputs(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    figs = figures_dir("smoke")
    figs.mkdir(parents=True)
    (figs / "01_table.csv").write_text("old")
    monkeypatch.setattr(run, "execute", _writing_execute(interrupt_at="01"))
    assert run.main(["--profile", "smoke", "00", "01", "02"]) == 130
    out = capsys.readouterr().out
    assert "INTERRUPTED" in out and "not run (interrupted)" in out and "--resume" in out
    assert (figs / "00_figure.png").read_text() == "new"  # the finished notebook's outputs are in place
    assert (figs / "01_table.csv").read_text() == "old" and not (figs / "01_figure.png").exists()
    assert not (tmp_path / "build" / "staging").exists() or not any((tmp_path / "build" / "staging").iterdir())


def test_a_finished_notebook_replaces_its_outputs_as_a_set(monkeypatch, tmp_path):
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    figs = figures_dir("smoke")
    figs.mkdir(parents=True)
    (figs / "00_figure.png").write_text("old")
    (figs / "00_dropped_table.csv").write_text("old")  # no longer written by the notebook
    (figs / "01_table.csv").write_text("other notebook")
    monkeypatch.setattr(run, "execute", _writing_execute())
    assert run.main(["--profile", "smoke", "00"]) == 0
    assert (figs / "00_figure.png").read_text() == "new"
    assert not (figs / "00_dropped_table.csv").exists() and (figs / "01_table.csv").exists()


def test_cache_warnings_reach_the_terminal(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    msg = "model cache entry /c/models/x.pt is corrupt (digest mismatch); retraining it"
    monkeypatch.setattr(run, "execute", _writing_execute(warn=msg))
    assert run.main(["--profile", "smoke", "00"]) == 0
    assert f"warning (00_rebasin_basics): {msg}" in capsys.readouterr().out


def test_sync_takes_the_newer_file_of_a_pair_and_leaves_a_synced_pair_alone(tmp_path, capsys):
    """`run --prepare` used to regenerate the .ipynb from the .py and silently drop an edit made in
    JupyterLab to the newer .ipynb."""
    import shutil
    import time as time_mod

    src = NOTEBOOKS[0]
    py, nb = tmp_path / src.name, tmp_path / src.with_suffix(".ipynb").name
    shutil.copy(src, py)
    shutil.copy(src.with_suffix(".ipynb"), nb)
    before = (py.read_bytes(), nb.read_bytes())
    run.sync_notebook(py)
    assert (py.read_bytes(), nb.read_bytes()) == before  # in sync: nothing written
    notebook = jupytext.read(nb)
    notebook.cells[0].source += "\n\nAn edit made in JupyterLab."
    time_mod.sleep(0.05)
    jupytext.write(notebook, nb, fmt="ipynb")
    run.sync_notebook(py)
    assert "An edit made in JupyterLab." in py.read_text()
    assert f"{nb.name} is newer than {py.name}" in capsys.readouterr().out


def test_cpu_profile_has_the_minimum_number_of_units():
    """Issue "verdicts that survive a rerun": at the cpu profile at least 8 independent pairs/triples
    for every MLP setting and at least 4 for CNN settings (per-model units: 16 and 8 models)."""
    p = profiles.load("cpu")

    def per(value, name):
        return value.get(name) if isinstance(value, dict) else value

    def is_cnn(cfg):
        return cfg["arch"] != "mlp"

    nb = p["00_rebasin_basics"]
    for name, cfg in nb["experiments"].items():
        assert per(nb["n_pairs"], name) >= (4 if is_cnn(cfg) else 8), name
    assert p["01_distance_taylor"]["n_pairs"] >= 8
    assert p["02_singular_vectors"]["n_pairs"] >= 8
    assert p["03_ste_three_models"]["n_triples"] >= 8
    nb = p["04_renormalisation"]
    for name, cfg in nb["experiments"].items():
        assert (nb.get("pairs_by_experiment") or {}).get(name, nb["n_pairs"]) >= (4 if is_cnn(cfg) else 8), name
    assert nb["bias_pairs"] >= 8 and nb["retrain_pairs"] >= 8
    nb = p["05_pruning"]
    for name, cfg in nb["experiments"].items():
        assert per(nb["n_models"], name) >= (8 if is_cnn(cfg) else 16), name
    assert nb["redundancy_models"]["moons"] >= 16
    assert per(nb["redundancy_models"]["mnist"], nb["judge_width"]) >= 8
    assert p["06_swa_alignment"]["n_runs"] >= 16  # runs (2p, 2p + 1): 8 independent pairs per width
    nb = p["07_same_basin"]
    for name, cfg in nb["experiments"].items():
        assert per(nb["n_pairs"], name) >= (4 if is_cnn(cfg) else 8), name
    for name, cfg in (nb.get("lr_experiments") or {}).items():  # pairs per learning rate
        assert per(nb["n_pairs"], name) >= (4 if is_cnn(cfg) else 8), name
    for cfg in [*nb["wd_experiments"].values(), *nb["init_experiments"].values()]:  # pairs per weight decay / init
        assert nb["bias_pairs"] >= (4 if is_cnn(cfg) else 8)
    nb = p["08_merge_many"]  # a unit is a group of up to 8 models: 4 groups (32 MLPs) for MLPs too
    for name, cfg in nb["experiments"].items():  # the same-basin control: 4 groups on CNNs, optional on MLPs
        assert nb["n_groups"][name] >= 4, name
        assert nb["spawned_groups"][name] >= 4 or (not is_cnn(cfg) and nb["spawned_groups"][name] == 0), name


def test_a_run_into_another_figures_folder_keeps_its_executed_notebooks_beside_it(monkeypatch, tmp_path):
    """--check regenerates into its own folder: its executed notebooks and status.json must not
    replace the profile's own in build/executed/<profile>/ (nor what --resume reads)."""
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    outs = []

    def execute(source, profile, params, out):
        outs.append(out)
        return _fake_execute([])(source, profile, params, out)

    monkeypatch.setattr(run, "execute", execute)
    run.run("smoke", ["00"], {}, threads=1, figures_base=tmp_path / "check")
    assert outs == [tmp_path / "check" / "executed" / "smoke"]
    assert not (tmp_path / "build" / "executed").exists()


def test_summary_suggests_resume_only_where_the_command_takes_it(capsys, tmp_path):
    rows = [{"notebook": "00_rebasin_basics", "seconds": 1.0, "status": "ok", "figures": tmp_path},
            {"notebook": "01_distance_taylor", "seconds": 2.0, "status": "FAILED (ValueError)", "figures": tmp_path,
             "executed": tmp_path}]
    run.print_summary(rows, 2)
    assert "--resume" in capsys.readouterr().out
    run.print_summary(rows, 2, resumable=False)
    out = capsys.readouterr().out
    assert "--resume" not in out and "01_distance_taylor" in out and "FAILED" in out


def test_a_rerun_that_reproduces_every_output_leaves_the_folder_byte_identical(monkeypatch, tmp_path, capsys):
    """What makes a second ``make figures`` leave ``git status`` clean: same outputs, same
    environment -> provenance.json keeps the first run's entry (its seconds too); a changed
    output records the new run."""
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    seconds = iter([7.0, 9.0, 11.0])
    writer = _writing_execute()

    def execute(source, profile, params, out):
        writer(source, profile, params, out)
        return next(seconds)

    monkeypatch.setattr(run, "execute", execute)
    figs = figures_dir("smoke")

    def snapshot():
        return {str(p.relative_to(figs)): p.read_bytes() for p in sorted(figs.rglob("*")) if p.is_file()}

    assert run.main(["--profile", "smoke", "00"]) == 0
    first = snapshot()
    assert json.loads(first["provenance.json"])["notebooks"]["00_rebasin_basics"]["seconds"] == 7.0
    assert "notebooks/00_rebasin_basics.ipynb" in first
    capsys.readouterr()
    assert run.main(["--profile", "smoke", "00"]) == 0
    assert snapshot() == first  # the 9 s of the rerun are not recorded: nothing it made differs
    assert "ok (outputs unchanged)" in capsys.readouterr().out

    def changed(source, profile, params, out):
        writer(source, profile, params, out)
        (Path(os.environ["LMC_FIGURES_DIR"]) / profile / "00_figure.png").write_text("different")
        return next(seconds)

    monkeypatch.setattr(run, "execute", changed)
    assert run.main(["--profile", "smoke", "00"]) == 0
    assert json.loads((figs / "provenance.json").read_text())["notebooks"]["00_rebasin_basics"]["seconds"] == 11.0
