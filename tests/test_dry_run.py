"""Dry runs (lmc_utils.dry_run, ``run --dry-run``): tiny budgets that keep every config valid,
CIFAR-shaped FakeData only in a dry run, a broken paper config fails with its name, and a real dry
run writes nothing where the user's figures and models live."""

import shutil
import warnings

import pytest
import torch
import yaml

from lmc_utils import data, dry_run, matching, profiles, zoo
from lmc_utils.run import runner as run
from lmc_utils import permutation as P
from lmc_utils.claims import quality
from lmc_utils.paths import params_dir

from conftest import needs_mnist

PAPER = {nb: quality.strip(section) for nb, section in profiles.notebook_sections("paper").items()}  # floors out


def test_budget_cuts_the_paper_profile_and_keeps_its_models():
    section = PAPER["00_rebasin_basics"]
    small = dry_run.budget("00_rebasin_basics", section)
    assert small["n_pairs"] == {name: 1 for name in section["n_pairs"]} and small["n_orders"] == 1
    assert small["n_points"] == 3 and small["match_samples"] == section["match_samples"]
    for name, cfg in section["experiments"].items():  # the architecture is the paper's; only the epochs change
        assert small["experiments"][name] == {**cfg, "epochs": 2}
    assert section["experiments"]["vgg16_bn_cifar10"]["epochs"] == 160  # pure: the input is not changed
    assert dry_run.budget("04_renormalisation", PAPER["04_renormalisation"])["n_pairs"] == 2  # its floor
    assert dry_run.budget("04_renormalisation", PAPER["04_renormalisation"])["retrain"]["epochs"] == 2
    assert dry_run.budget("02_singular_vectors", PAPER["02_singular_vectors"])["sinkhorn"] == \
        {**PAPER["02_singular_vectors"]["sinkhorn"], "steps": 2, "sinkhorn_iters": 2}
    singular = dry_run.budget("02_singular_vectors", PAPER["02_singular_vectors"])
    assert singular["widths"] == {name: [1] for name in PAPER["02_singular_vectors"]["widths"]}  # no wide VGG11
    assert dry_run._cap([0.5, 8, 16], 4) == [0.5] and dry_run._cap([8, 16], 4) == [8]  # a list keeps entries <= cap
    smoke = profiles.notebook_sections("smoke")["00_rebasin_basics"]
    small_smoke = dry_run.budget("00_rebasin_basics", smoke)  # values below their caps are kept
    assert small_smoke["experiments"] == smoke["experiments"] and small_smoke["n_points"] == smoke["n_points"] == 3


@pytest.mark.parametrize("notebook", sorted(PAPER))
def test_budget_keeps_every_paper_config_valid(notebook):
    """At dry-run budgets every training config still builds, SWA keeps a pair of samples and a
    spawned parent is shorter than its child's config."""
    small = dry_run.budget(notebook, PAPER[notebook])
    configs = [zoo.TrainConfig(**cfg) for _, cfg in quality.train_configs(small)]
    assert configs and all(c.epochs <= dry_run.TRAINING_CAPS["epochs"] for c in configs)
    if "parent_epochs" in small:
        assert all(0 < small["parent_epochs"] < c.epochs for c in configs)
    for c in configs:
        if c.swa_epochs:
            assert len(range(0, c.swa_epochs, small["sample_stride"])) >= 2


def test_resolve_applies_the_budget_only_in_a_dry_run(monkeypatch, capsys):
    monkeypatch.delenv(dry_run.VARIABLE, raising=False)
    assert profiles.resolve("06_swa_alignment", "paper").n_runs == 8
    monkeypatch.setenv(dry_run.VARIABLE, "1")
    capsys.readouterr()
    resolved = profiles.resolve("06_swa_alignment", "paper")
    assert resolved.n_runs == 2 and resolved.model["epochs"] == 2 and resolved.model["swa_epochs"] == 2
    assert resolved.model["arch"] == "resnet20" and resolved.widths == [1, 2, 4]
    line = capsys.readouterr().out
    assert line.startswith("dry run") and "model, n_runs, n_orders, sample_stride, n_points" in line


def test_weight_matching_stops_early_in_a_dry_run_only(monkeypatch):
    config = zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 64, "depth": 3})
    a, b = (zoo.build_model(config.replace(seed=s)).state_dict() for s in (0, 1))
    spec = P.spec_for(zoo.build_model(config))
    monkeypatch.delenv(dry_run.VARIABLE, raising=False)
    assert matching.weight_matching(spec, a, b).sweeps > dry_run.WEIGHT_MATCHING_SWEEPS
    monkeypatch.setenv(dry_run.VARIABLE, "1")
    assert matching.weight_matching(spec, a, b).sweeps == dry_run.WEIGHT_MATCHING_SWEEPS


def test_missing_cifar_is_fake_data_in_a_dry_run_only(monkeypatch, tmp_path):
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path / "no-data"))
    data._torchvision_tensors.cache_clear()
    monkeypatch.delenv(dry_run.VARIABLE, raising=False)
    with pytest.raises(data.DataNotFoundError, match="CIFAR10 was not found"):
        data.load("cifar10", "train")
    monkeypatch.setenv(dry_run.VARIABLE, "1")
    with pytest.warns(RuntimeWarning, match="FakeData"):
        train = data.load("cifar100", "train")
    assert train.x.shape == (dry_run.SPLIT_EXAMPLES["train"], 3, 32, 32) and train.x.dtype == torch.float32
    assert train.num_classes == 100 and 0 <= int(train.y.min()) and int(train.y.max()) < 100
    assert train.y.dtype == torch.int64 and train.x.abs().max() < 3  # normalised like CIFAR-100
    data._torchvision_tensors.cache_clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        again, test = data.load("cifar100", "train"), data.load("cifar100", "test")
    assert torch.equal(again.x, train.x) and torch.equal(again.y, train.y)  # deterministic
    assert not torch.equal(test.x[:4], train.x[:4])  # the splits differ
    data._torchvision_tensors.cache_clear()


@needs_mnist
def test_a_dry_run_cuts_every_split(monkeypatch):
    monkeypatch.setenv(dry_run.VARIABLE, "1")
    assert len(data.load("mnist", "train")) == dry_run.SPLIT_EXAMPLES["train"]
    assert len(data.load("moons", "test", subset=3)) == 3  # a smaller subset than the cut stays as asked
    assert len(data.load("moons", "test", subset=5)) == dry_run.SPLIT_EXAMPLES["test"] == 4
    monkeypatch.delenv(dry_run.VARIABLE)
    assert len(data.load("mnist", "test")) == 10_000


def test_runner_rejects_dry_run_with_resume_or_check(capsys):
    assert run.main(["--profile", "paper", "--dry-run", "--resume"]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_a_broken_paper_config_fails_the_dry_run_naming_it(monkeypatch, tmp_path, capsys):
    """An unknown architecture key in a copy of params/paper.yaml fails the dry run, in the kernel,
    with a message naming the bad value."""
    broken = tmp_path / "params"
    shutil.copytree(params_dir(), broken)
    paper = yaml.safe_load((broken / "paper.yaml").read_text())
    paper["00_rebasin_basics"]["experiments"]["vgg16_bn_cifar10"]["arch"] = "vggg"
    (broken / "paper.yaml").write_text(yaml.safe_dump(paper, sort_keys=False))
    monkeypatch.setenv("LMC_PARAMS_DIR", str(broken))  # the runner and its kernels read the copy
    monkeypatch.setattr(run, "build_dir", lambda: tmp_path / "build")
    assert run.main(["--profile", "paper", "--dry-run", "--threads", "1", "00"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "unknown arch 'vggg'" in out


# The real dry run of every notebook, which also checks that it keeps out of the user's figures
# and model cache, is tests/test_paper_dry_run.py (one test per notebook).


def test_a_sweep_cap_keeps_the_smallest_point_none_and_the_judged_ones():
    from lmc_utils.dry_run import Sweep

    values = {"sparsities": [0.1, 0.5, 0.8, 0.9], "judge_sparsity": 0.8, "sizes": [256, 64, None],
              "widths": {"moons": [2, 128, 512], "mnist": [4, 8]}, "judge_width": 128}
    assert Sweep(("judge_sparsity",)).apply(values["sparsities"], values) == [0.1, 0.8]
    assert Sweep().apply(values["sizes"], values) == [64, None]  # order kept
    assert Sweep(("judge_width",)).apply(values["widths"], values) == {"moons": [2, 128], "mnist": [4]}
    assert Sweep(("judge_sparsity",)).apply([0.8], values) == [0.8] and Sweep().apply([], values) == []
    capped = dry_run.budget("05_pruning", {"sparsities": [0.1, 0.5, 0.8, 0.9], "judge_sparsity": 0.8})
    assert capped["sparsities"] == [0.1, 0.8]
    assert Sweep(largest=True).apply({"vgg": [0.01, 0.03, 0.1]}, {}) == {"vgg": [0.01, 0.1]}


def test_budget_keeps_the_judged_points_of_notebook_07s_sweeps():
    small = dry_run.budget("07_same_basin", PAPER["07_same_basin"])
    full = PAPER["07_same_basin"]["weight_decays"]
    assert small["weight_decays"] == [min(full), small["judge_weight_decay"], max(full)]
    assert small["judge_weight_decay"] == PAPER["07_same_basin"]["judge_weight_decay"]
    assert small["prune_sparsities"] == [0.1, 0.9] and small["bias_pairs"] == 1
