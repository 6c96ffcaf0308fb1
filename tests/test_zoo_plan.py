"""The zoo plan (lmc_utils.run.plan): a plan run records exactly the cache entries a real run makes
(parents included, each config once), trains nothing, keeps the real parameters, and the compute
estimate counts the multiply-adds of the architecture."""

import json

import pytest
import torch

from lmc_utils import dry_run, profiles, zoo, zoo_cli, zoo_plan
from lmc_utils.run import runner as run
from lmc_utils.paths import cache_dir
from lmc_utils.claims import quality

from conftest import needs_mnist

MOONS = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2}, optimizer="adam",
                        lr=0.01, batch_size=64, epochs=3, seed=0)


def _cached_keys() -> set[str]:
    """Config keys of the model cache entries (``models/<key>-<environment key>.pt``)."""
    return {p.name.rsplit("-", 1)[0] for p in (cache_dir() / "models").glob("*.pt")}


@pytest.fixture
def recorder(tmp_path):
    """This process's store recording for a notebook 'nb' (loading and training again afterwards)."""
    requests = tmp_path / "requests.jsonl"
    zoo.record_requests("nb", requests)
    yield requests
    zoo.stop_recording()


def test_recorder_lists_what_the_real_zoo_caches(recorder, monkeypatch):
    spawned = zoo.spawned_pairs(MOONS.replace(epochs=4), 2, parent_epochs=2, seed=0, device="cpu")
    pairs = zoo.independent_pairs(MOONS, 2, seed=0, device="cpu")
    zoo.train(MOONS.replace(seed=9), device="cpu")  # trained inside a notebook: not a cache entry
    assert not (cache_dir() / "models").exists()  # nothing trained, nothing cached
    a, b = pairs[0]  # placeholders: the config's untrained model and a history of its length
    fresh = zoo.build_model(a.config).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in a.model.state_dict().items())
    assert len(spawned[0][0].history) == 2 and b.config.seed == 1
    plan = zoo_plan.collect("smoke", ["nb"], zoo_plan.read_requests(recorder))
    assert [e.kind for e in plan.entries].count("uncached") == 1
    cache = str(cache_dir())
    zoo.stop_recording()  # the real zoo
    assert str(cache_dir()) == cache
    zoo.spawned_pairs(MOONS.replace(epochs=4), 2, parent_epochs=2, seed=0, device="cpu")
    zoo.independent_pairs(MOONS, 2, seed=0, device="cpu")
    assert plan.keys() == _cached_keys() and len(plan.keys()) == 2 + 4 + 4  # 2 parents, 4 children, 4 seeds
    parent = next(e for e in plan.cached() if e.config["epochs"] == 2)
    assert parent.requests == 2  # asked for by both children, listed once


def test_swa_placeholders_have_the_samples_of_the_config(recorder):
    t = zoo.get(MOONS.replace(swa_epochs=3), device="cpu")
    assert len(t.samples) == 3 and t.swa_state is not None and len(t.history) == 6


def test_stand_ins_have_every_history_field_training_writes(recorder):
    """A notebook reads what training returns (07 reads ``l2_from_start``): a stand-in has each field."""
    tiny = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 4, "depth": 1}, epochs=1, seed=0)
    zoo.stop_recording()
    real = zoo.train(tiny, device="cpu", progress=False)
    zoo.record_requests("nb", recorder)
    stand_in = zoo.train(tiny, device="cpu")
    assert stand_in.history[0].keys() == real.history[0].keys()
    assert zoo_plan.read_requests(recorder)[-1]["kind"] == "uncached"





def test_plan_budget_keeps_every_config_of_the_paper_profile():
    for notebook, section in profiles.notebook_sections("paper").items():
        kept = dry_run.plan_budget(notebook, section)
        changed = dry_run.changed(section, kept)
        assert set(changed) <= set(dry_run.PLAN_CAPS), (notebook, changed)
        assert kept.get("experiments") == section.get("experiments")


def test_in_cache_is_per_device_type_and_thread_count():
    trained = zoo.get(MOONS, device="cpu", progress=False)
    threads = torch.get_num_threads()
    assert zoo_plan.in_cache(trained.config, "cpu", threads)
    assert not zoo_plan.in_cache(trained.config, "cpu", threads + 1)
    assert not zoo_plan.in_cache(trained.config, "cuda", threads)  # no CUDA needed to ask
    assert not zoo_plan.in_cache(MOONS.replace(seed=5), "cpu", threads)


def test_forward_macs_count_the_architecture():
    mlp = zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 512, "depth": 3})
    assert zoo_plan.forward_macs(mlp) == 784 * 512 + 2 * 512 * 512 + 512 * 10  # depth 3: three hidden layers
    r20 = zoo.TrainConfig(dataset="cifar10", arch="resnet20", model={"width_multiplier": 1})
    macs = zoo_plan.forward_macs(r20)
    assert 39e6 < macs < 43e6  # ResNet20 on CIFAR: about 41 M multiply-adds (He et al. 2016)
    wide = zoo_plan.forward_macs(r20.replace(model={"width_multiplier": 4}))
    assert 15 < wide / macs < 16.1  # convolutions scale with the square of the width
    assert zoo_plan.training_flops(r20.replace(epochs=2)) == 2 * 50_000 * 6 * macs


def test_cli_renders_a_plan_file(tmp_path, capsys):
    requests = [{"notebook": "00_x", "kind": "cached", "key": MOONS.key, "config": MOONS.to_dict()},
                {"notebook": "01_y", "kind": "cached", "key": MOONS.key, "config": MOONS.to_dict()}]
    path = tmp_path / "plan.json"
    path.write_text(zoo_plan.to_json(zoo_plan.collect("smoke", ["00_x", "01_y"], requests)))
    assert zoo_cli.main(["plan", "--plan", str(path), "--device", "cpu", "--throughput", "1e9"]) == 0
    out = capsys.readouterr().out
    assert MOONS.key[:16] in out and "00, 01" in out and "1 cache entries (1 missing)" in out
    assert json.loads(path.read_text())["entries"][0]["requests"] == 2
    assert zoo_cli.main(["plan", "--profile", "nope"]) == 2


def test_resolve_in_a_plan_run_keeps_the_configs_and_records(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(zoo.store, "_recorder", None)  # resolve switches this process to recording; undone after
    monkeypatch.setenv(dry_run.PLAN_VARIABLE, str(tmp_path / "requests.jsonl"))
    real = quality.strip(profiles.notebook_sections("paper")["00_rebasin_basics"])  # the floors are declared apart
    p = profiles.resolve("00_rebasin_basics", "paper")
    assert p.experiments == real["experiments"] and p.n_pairs == real["n_pairs"] and p.n_orders == real["n_orders"]
    assert p.n_points == min(real["n_points"], dry_run.CAPS["n_points"]) and dry_run.active()
    assert "plan run" in capsys.readouterr().out
    zoo.get(MOONS, device="cpu")
    assert [r["key"] for r in zoo_plan.read_requests(tmp_path / "requests.jsonl")] == [MOONS.key]
    assert not (cache_dir() / "models").exists()


@pytest.fixture(scope="module")
def smoke_plan(tmp_path_factory):
    """The plan of every notebook at the smoke profile (one plan run, shared by the tests below)."""
    return zoo_plan.record("smoke", [], threads=1, device="cpu", root=tmp_path_factory.mktemp("plan"))


@needs_mnist
def test_the_smoke_plan_of_every_notebook_runs(smoke_plan):
    """Every notebook runs as a plan run at the smoke profile (no KeyError on a stand-in's history, no
    STE held-out split larger than a plan run's data), and every model it asks for is listed."""
    assert len(smoke_plan.notebooks) == 11 and smoke_plan.cached()
    assert {n for e in smoke_plan.entries for n in e.notebooks} >= {"07_same_basin", "10_regime_ladder"}


@needs_mnist
def test_plan_lists_exactly_the_entries_a_smoke_run_makes(smoke_plan, tmp_path):
    """Notebooks 01 (spawned parents) and 06 (SWA) at the smoke profile: the plan's cache keys are
    the cache entries a real run then creates, and after it the plan has nothing missing."""
    notebooks = {"01_distance_taylor", "06_swa_alignment"}
    requests = [{"notebook": n, "kind": e.kind, "key": e.key, "config": e.config}
                for e in smoke_plan.entries for n in e.notebooks if n in notebooks]
    plan = zoo_plan.collect("smoke", sorted(notebooks), requests, device="cpu", threads=1)  # this test's cache
    assert plan.missing() == plan.cached() and not (cache_dir() / "models").exists()
    rows = run.run("smoke", ["01", "06"], threads=1, figures_base=tmp_path / "figures")
    assert all(r["status"] == "ok" for r in rows), rows
    assert plan.keys() == _cached_keys()
    again = zoo_plan.from_json(zoo_plan.to_json(plan), device="cpu", threads=1)
    assert again.keys() == plan.keys() and again.missing() == []
    assert {n for e in plan.entries for n in e.notebooks} == notebooks


def test_a_plan_run_renders_no_figure_files(monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmc_utils import figures

    monkeypatch.setenv("LMC_FIGURES_DIR", str(tmp_path))
    fig = plt.figure()
    monkeypatch.setenv(dry_run.PLAN_VARIABLE, str(tmp_path / "requests.jsonl"))
    assert figures.save_figure(fig, "00_x", "smoke") == [] and not list(tmp_path.rglob("*.png"))
    monkeypatch.delenv(dry_run.PLAN_VARIABLE)
    assert len(figures.save_figure(fig, "00_x", "smoke")) == 2
    plt.close(fig)
