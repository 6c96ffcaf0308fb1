"""Training is deterministic, the cache is content-addressed, and corrupt entries are retrained."""

import argparse
import math
import warnings

import pytest
import torch

from lmc_utils import cache, zoo

MOONS = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2}, optimizer="adam",
                        lr=0.01, batch_size=64, epochs=3, seed=0)


def _equal(s1, s2):
    return set(s1) == set(s2) and all(torch.equal(s1[k], s2[k]) for k in s1)


def test_training_is_deterministic_and_learns():
    a = zoo.train(MOONS, device="cpu", progress=False)
    b = zoo.train(MOONS, device="cpu", progress=False)
    assert _equal(a.model.state_dict(), b.model.state_dict())
    c = zoo.train(MOONS.replace(seed=1), device="cpu", progress=False)
    assert not _equal(a.model.state_dict(), c.model.state_dict())
    assert a.history[-1]["train_accuracy"] > 0.8
    assert a.history[-1]["train_loss"] < a.history[0]["train_loss"]


def test_data_seed_changes_only_the_order():
    a = zoo.train(MOONS.replace(data_seed=5), device="cpu", progress=False)
    b = zoo.train(MOONS, device="cpu", progress=False)
    init_a, init_b = zoo.build_model(MOONS.replace(data_seed=5)), zoo.build_model(MOONS)
    assert _equal(init_a.state_dict(), init_b.state_dict())
    assert not _equal(a.model.state_dict(), b.model.state_dict())


def test_config_hash_covers_every_field():
    keys = {MOONS.key}
    for change in [dict(lr=0.02), dict(seed=1), dict(epochs=4), dict(model={"width": 16, "depth": 3}),
                   dict(weight_decay=1e-4), dict(schedule="cosine"), dict(parent=MOONS)]:
        keys.add(MOONS.replace(**change).key)
    assert len(keys) == 8
    assert zoo.TrainConfig.from_dict(MOONS.to_dict()).key == MOONS.key


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="unknown dataset"):
        zoo.TrainConfig(dataset="imagenet", arch="mlp")
    with pytest.raises(ValueError, match="unknown optimizer"):
        zoo.TrainConfig(dataset="moons", arch="mlp", optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        zoo.TrainConfig.from_dict({"dataset": "moons", "arch": "mlp", "learning_rate": 0.1})


def test_get_caches_and_reloads_without_training(monkeypatch):
    first = zoo.get(MOONS, device="cpu", progress=False)
    assert zoo.checkpoint_path(MOONS).exists()
    monkeypatch.setattr(zoo, "train", lambda *a, **k: pytest.fail("should load from the cache"))
    again = zoo.get(MOONS, device="cpu", progress=False)
    assert _equal(first.model.state_dict(), again.model.state_dict())
    assert again.history == first.history


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "pickle"])
def test_corrupt_cache_entry_is_detected_and_retrained(damage):
    good = zoo.get(MOONS, device="cpu", progress=False)
    path = zoo.checkpoint_path(MOONS)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":  # one byte of tensor data: the zip is still readable, the digest is not
        state, _, _ = cache.load_checkpoint(path)
        key = "hidden.0.weight"
        needle = state[key].numpy().tobytes()[:16]
        at = raw.index(needle)
        path.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    else:  # a pickled object weights_only=True refuses to load
        torch.save({"format": 1, "state": {}, "digest": "x", "meta_json": "{}", "obj": argparse.Namespace(a=1)},
                   path)
    with pytest.raises(cache.CorruptCheckpoint) as refused:
        cache.load_checkpoint(path)
    if damage == "pickle":  # the reason is at the end of torch's message: it used to be cut off
        assert "Unsupported global" in str(refused.value) and "argparse.Namespace" in str(refused.value)
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = zoo.get(MOONS, device="cpu", progress=False)
    assert _equal(good.model.state_dict(), again.model.state_dict())
    cache.load_checkpoint(path)  # rewritten and valid


def test_cache_entry_for_another_config_is_not_used():
    zoo.get(MOONS, device="cpu", progress=False)
    other = MOONS.replace(seed=7)
    zoo.checkpoint_path(other).write_bytes(zoo.checkpoint_path(MOONS).read_bytes())
    with pytest.warns(RuntimeWarning, match="corrupt"):
        trained = zoo.get(other, device="cpu", progress=False)
    assert trained.key == other.key


def test_no_temporary_files_are_left_behind():
    zoo.get(MOONS, device="cpu", progress=False)
    leftovers = [p for p in zoo.checkpoint_path(MOONS).parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_spawned_children_start_from_the_cached_parent():
    parent = MOONS.replace(epochs=1)
    child_a = MOONS.replace(parent=parent, data_seed=1, epochs=1)
    child_b = MOONS.replace(parent=parent, data_seed=2, epochs=1)
    a, b = zoo.get(child_a, device="cpu", progress=False), zoo.get(child_b, device="cpu", progress=False)
    assert zoo.checkpoint_path(parent).exists()
    assert not _equal(a.model.state_dict(), b.model.state_dict())
    p = zoo.get(parent, device="cpu", progress=False).model.state_dict()
    dist = lambda s: math.sqrt(sum(float((s[k] - p[k]).pow(2).sum()) for k in p))  # noqa: E731
    fresh = zoo.train(MOONS.replace(epochs=1, seed=3), device="cpu", progress=False).model.state_dict()
    assert dist(a.model.state_dict()) < dist(fresh)


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine"])
def test_learning_rate_schedules(schedule):
    cfg = MOONS.replace(schedule=schedule, epochs=10, warmup_epochs=1, milestones=(5, 8), gamma=0.1)
    f = [zoo.lr_factor(cfg, s, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # linear warm-up over epoch 0
    if schedule == "step":
        assert f[49] == pytest.approx(1.0) and f[50] == pytest.approx(0.1) and f[80] == pytest.approx(0.01)
    elif schedule == "cosine":
        assert f[10] == pytest.approx(1.0) and f[99] < 0.01 and all(x >= y for x, y in zip(f[10:], f[11:]))
    else:
        assert f[10:] == [1.0] * 90


def test_augmentation_is_seeded_and_shape_preserving():
    x = torch.randn(6, 3, 32, 32)
    a = zoo.trainers._augment(x, torch.Generator().manual_seed(0))
    b = zoo.trainers._augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)


def test_unknown_device_is_an_error():
    from lmc_utils.device import get_device

    with pytest.raises(ValueError, match="unknown device"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            get_device("cuda")
    assert get_device("auto").type in ("cpu", "cuda")


def test_no_warnings_on_a_clean_cache_hit():
    zoo.get(MOONS, device="cpu", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zoo.get(MOONS, device="cpu", progress=False)


def test_cache_keys_are_stable_across_releases():
    """Changing how configs are hashed would silently orphan every cached model."""
    assert MOONS.key == "7484e14f45ead69793ba"
    assert MOONS.replace(swa_epochs=0, swa_lr=None).key == MOONS.key
    assert MOONS.replace(swa_epochs=2).key != MOONS.key


def test_swa_samples_and_average_are_trained_cached_and_reloaded(monkeypatch):
    cfg = MOONS.replace(optimizer="sgd", lr=0.05, epochs=2, swa_epochs=3, swa_lr=0.02)
    first = zoo.get(cfg, device="cpu", progress=False)
    assert len(first.samples) == 3 and len(first.history) == 5
    assert not _equal(first.samples[0], first.samples[2])
    assert _equal(first.samples[-1], first.model.state_dict())
    mean = {k: torch.stack([s[k] for s in first.samples]).mean(0) for k in first.samples[0]}
    for k in mean:  # AveragedModel's running average of the samples (no BN here)
        torch.testing.assert_close(first.swa_state[k], mean[k], rtol=1e-5, atol=1e-6)
    assert first.history[-1]["lr"] == pytest.approx(0.02)  # SWALR reached the constant SWA rate
    monkeypatch.setattr(zoo, "train", lambda *a, **k: pytest.fail("should load from the cache"))
    again = zoo.get(cfg, device="cpu", progress=False)
    assert all(_equal(a, b) for a, b in zip(first.samples, again.samples))
    assert _equal(first.swa_state, again.swa_state)


def _get_in_subprocess(cache: str, progress_file: str, trainer: str) -> None:
    import os

    os.environ["LMC_CACHE_DIR"] = cache
    os.environ["LMC_PROGRESS_FILE"] = progress_file
    from lmc_utils import zoo as z

    cfg = z.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 1}, epochs=30, batch_size=50,
                        optimizer="adam", lr=0.01, trainer=trainer)
    z.get_many([cfg, cfg.replace(seed=1)], device="cpu", progress=False)


@pytest.mark.parametrize("trainer", ["single", "batched"])
def test_concurrent_runs_on_one_cache_train_each_entry_once(tmp_path, trainer):
    """Two processes asking for the same models: the second waits on the entry's lock and then
    reads the first one's checkpoint (it used to train everything again)."""
    import multiprocessing as mp

    log = tmp_path / "progress.log"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_get_in_subprocess, args=(str(tmp_path / "cache"), str(log), trainer))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert all(p.exitcode == 0 for p in procs)
    lines = log.read_text().splitlines()
    trained = [line for line in lines if line.startswith("training")]
    if trainer == "single":
        assert len(trained) == 2 and {("seed 0" in t) for t in trained} == {True, False}
    else:
        assert len(trained) == 1 and "seeds 0, 1" in trained[0]


@pytest.mark.parametrize("field,value,message", [
    ("epochs", "ten", "epochs must be an integer, got 'ten'"),
    ("lr", "0.1", "lr must be a number, got '0.1'"),
    ("seed", True, "seed must be an integer, got True"),
    ("train_subset", 0, "train_subset must be a positive integer or None"),
    ("model", {"width": -4}, "width must be a positive integer, got -4"),
])
def test_bad_config_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        zoo.TrainConfig(dataset="moons", arch="mlp", **{field: value})


def test_progress_lines_are_followed(tmp_path):
    from lmc_utils import progress

    seen = []
    path = tmp_path / "p.log"
    with progress.follow(path, emit=seen.append, interval=0.01):
        import os

        os.environ[progress.VARIABLE] = str(path)
        try:
            progress.note("training mlp on moons, seed 0")
            progress.note("training mlp on moons, seed 1")
        finally:
            del os.environ[progress.VARIABLE]
    assert seen == ["training mlp on moons, seed 0", "training mlp on moons, seed 1"]
    progress.note("nowhere to go")  # without the variable: a no-op
