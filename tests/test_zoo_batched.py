"""Batched training (zoo.train_many) equals one-by-one training; batched configs are cached one
entry each; a cache entry made under another environment (threads, code) is never reused."""

import logging

import pytest
import torch

from conftest import needs_mnist
from lmc_utils import cache, zoo

BATCHED = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2}, optimizer="adam",
                          lr=0.01, batch_size=64, epochs=3, seed=0, trainer="batched")


def _equal(s1, s2):
    return set(s1) == set(s2) and all(torch.equal(s1[k], s2[k]) for k in s1)


def _close(s1, s2):
    assert set(s1) == set(s2)
    for k in s1:
        torch.testing.assert_close(s1[k], s2[k], rtol=1e-4, atol=1e-5)


def _single(config):
    return zoo.train(config.replace(trainer="single"), device="cpu", progress=False)


def test_every_model_starts_from_its_one_off_initialisation():
    configs = [BATCHED.replace(seed=s, epochs=0) for s in (0, 1, 5)]
    trained = zoo.train_many(configs, device="cpu", progress=False)
    for c, t in zip(configs, trained):
        assert _equal(t.model.state_dict(), zoo.build_model(c).state_dict())
    assert not _equal(trained[0].model.state_dict(), trained[1].model.state_dict())


def test_final_weights_equal_one_by_one_training():
    configs = [BATCHED.replace(seed=0), BATCHED.replace(seed=1), BATCHED.replace(seed=1, data_seed=7)]
    trained = zoo.train_many(configs, device="cpu", progress=False)
    for c, t in zip(configs, trained):
        ref = _single(c)
        _close(t.model.state_dict(), ref.model.state_dict())
        assert [h["train_loss"] for h in t.history] == pytest.approx([h["train_loss"] for h in ref.history], rel=1e-4)
        assert [h["lr"] for h in t.history] == [h["lr"] for h in ref.history]
        # the distance from the start per epoch, as the one-by-one trainer records it (and it moves)
        assert [h["l2_from_start"] for h in t.history] == pytest.approx([h["l2_from_start"] for h in ref.history],
                                                                        rel=1e-4)
        assert t.history[-1]["l2_from_start"] > 0
        assert t.key == c.key
    # the data seed alone changes the result, as in train()
    assert not _equal(trained[1].model.state_dict(), trained[2].model.state_dict())
    assert trained[0].history[-1]["train_accuracy"] > 0.8


def test_layernorm_no_bias_sgd_schedule_and_swa_equal_one_by_one_training():
    base = BATCHED.replace(model={"width": 16, "depth": 2, "norm": "layernorm", "bias": False}, optimizer="sgd",
                           lr=0.05, epochs=2, schedule="cosine", warmup_epochs=0.5, swa_epochs=2, swa_lr=0.02)
    configs = [base.replace(seed=s) for s in (3, 4)]
    for t, c in zip(zoo.train_many(configs, device="cpu", progress=False), configs):
        ref = _single(c)
        assert len(t.samples) == 2 and len(t.history) == 4
        _close(t.model.state_dict(), ref.model.state_dict())
        for a, b in zip(t.samples, ref.samples):
            _close(a, b)
        _close(t.swa_state, ref.swa_state)
        assert not _equal(t.swa_state, t.model.state_dict())
        assert [h["lr"] for h in t.history] == pytest.approx([h["lr"] for h in ref.history])


def test_a_model_does_not_depend_on_the_others_in_its_batch():
    configs = [BATCHED.replace(seed=s) for s in range(4)]
    together = zoo.train_many(configs, device="cpu", progress=False)
    alone = zoo.train_many([configs[2]], device="cpu", progress=False)[0]
    reordered = zoo.train_many([configs[3], configs[0]], device="cpu", progress=False)
    assert _equal(together[2].model.state_dict(), alone.model.state_dict())
    assert _equal(together[0].model.state_dict(), reordered[1].model.state_dict())
    assert _equal(together[3].model.state_dict(), reordered[0].model.state_dict())


@pytest.mark.parametrize("per_pass", [2, zoo.trainers.MAX_SLOTS])
def test_an_odd_width_model_does_not_depend_on_its_batch_in_passes_of_any_size(per_pass, monkeypatch):
    # width 13: parameter rows that are not a multiple of the vector width (padding), and a batch of
    # one model, which a batched product may multiply with another kernel than a batch of several
    configs = [BATCHED.replace(seed=s, model={"width": 13, "depth": 2}) for s in range(5)]
    template = zoo.build_model(configs[0])
    per_model = 4 * max(sum(w.numel() for w in template.parameters()), BATCHED.batch_size * 13)
    monkeypatch.setattr(zoo.trainers, "PASS_BYTES", per_pass * per_model)
    assert zoo.models_per_pass(template, batch_size=BATCHED.batch_size) == per_pass
    together = zoo.train_many(configs, device="cpu", progress=False)
    for j in (1, 4):
        alone = zoo.train_many([configs[j]], device="cpu", progress=False)[0]
        assert _equal(together[j].model.state_dict(), alone.model.state_dict())
        assert together[j].history == [{**h, "seconds": a["seconds"]} for h, a in zip(alone.history, together[j].history)]
    assert not _equal(together[0].model.state_dict(), together[1].model.state_dict())


def test_rmsprop_without_a_fused_kernel_still_equals_one_by_one_training():
    configs = [BATCHED.replace(seed=s, optimizer="rmsprop", lr=0.002) for s in (0, 1)]
    for t, c in zip(zoo.train_many(configs, device="cpu", progress=False), configs):
        _close(t.model.state_dict(), _single(c).model.state_dict())


@needs_mnist
def test_mnist_mlp_equals_one_by_one_training():
    cfg = zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 64, "depth": 2}, optimizer="adam", lr=1e-3,
                          batch_size=256, epochs=1, train_subset=2048, trainer="batched")
    configs = [cfg.replace(seed=s) for s in (0, 1)]
    for t, c in zip(zoo.train_many(configs, device="cpu", progress=False), configs):
        _close(t.model.state_dict(), _single(c).model.state_dict())


def test_get_many_caches_each_batched_entry_and_reloads_it(monkeypatch):
    configs = [BATCHED.replace(seed=s) for s in range(4)]
    calls = []
    real = zoo.trainers.train_many  # what the store trains with
    monkeypatch.setattr(zoo.trainers, "train_many", lambda cs, **k: calls.append([c.seed for c in cs]) or real(cs, **k))
    monkeypatch.setattr(zoo.trainers, "train", lambda *a, **k: pytest.fail("batched configs never go through train()"))
    first = zoo.get_many(configs[:1] + configs[2:3], device="cpu", progress=False)
    full = zoo.get_many(configs, device="cpu", progress=False)
    assert calls == [[0, 2], [1, 3]]  # only the missing ones, in one batch
    assert all(zoo.checkpoint_path(c, "cpu").exists() for c in configs)
    assert _equal(first[1].model.state_dict(), full[2].model.state_dict())
    # weights are a function of the config: the same as training all four at once
    together = real(configs, device="cpu", progress=False)
    assert all(_equal(a.model.state_dict(), b.model.state_dict()) for a, b in zip(full, together))
    monkeypatch.setattr(zoo.trainers, "train_many", lambda *a, **k: pytest.fail("should load from the cache"))
    again = zoo.get_many(configs, device="cpu", progress=False)
    one = zoo.get(configs[3], device="cpu", progress=False)
    assert all(_equal(a.model.state_dict(), b.model.state_dict()) for a, b in zip(full, again))
    assert _equal(one.model.state_dict(), full[3].model.state_dict()) and one.history == full[3].history


def test_get_of_one_batched_config_trains_it_through_train_many(monkeypatch):
    calls = []
    real = zoo.trainers.train_many  # what the store trains with
    monkeypatch.setattr(zoo.trainers, "train_many", lambda cs, **k: calls.append(len(cs)) or real(cs, **k))
    trained = zoo.get(BATCHED.replace(seed=9), device="cpu", progress=False)
    assert calls == [1]
    assert _equal(trained.model.state_dict(), real([BATCHED.replace(seed=9)], device="cpu",
                                                   progress=False)[0].model.state_dict())


def test_batched_spawned_children_start_from_their_batched_parents():
    base = BATCHED.replace(epochs=2)
    pairs = zoo.spawned_pairs(base, n_pairs=2, parent_epochs=1, seed=0, device="cpu")
    for i, (a, b) in enumerate(pairs):
        parent = base.replace(seed=1000 + i, epochs=1)
        assert a.config.parent == parent and zoo.checkpoint_path(parent, "cpu").exists()
        init = zoo.get(parent, device="cpu", progress=False).model.state_dict()
        ref = zoo.train(a.config.replace(trainer="single", parent=parent.replace(trainer="single")),
                        device="cpu", init_state=init, progress=False)
        _close(a.model.state_dict(), ref.model.state_dict())
        assert not _equal(a.model.state_dict(), b.model.state_dict())


def test_cache_entry_records_its_environment():
    zoo.get(BATCHED, device="cpu", progress=False)
    _, meta, _ = cache.load_checkpoint(zoo.checkpoint_path(BATCHED, "cpu"))
    assert meta["env"] == {"torch": torch.__version__, "device": "cpu", "threads": torch.get_num_threads(),
                           "code": zoo.code_digest()}
    assert zoo.checkpoint_path(BATCHED, "cpu").name.startswith(BATCHED.key + "-")


@pytest.mark.parametrize("change", ["threads", "code"])
def test_a_changed_environment_is_a_cache_miss_not_a_reuse(change, monkeypatch, caplog):
    cfg = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 8, "depth": 1}, epochs=1)
    zoo.get(cfg, device="cpu", progress=False)
    old_path = zoo.checkpoint_path(cfg, "cpu")
    if change == "threads":
        monkeypatch.setattr(torch, "get_num_threads", lambda: 17)
    else:
        monkeypatch.setattr(zoo.store, "code_digest", lambda: "0" * 16)
    trained = []
    real = zoo.trainers.train
    monkeypatch.setattr(zoo.trainers, "train", lambda *a, **k: trained.append(1) or real(*a, **k))
    with caplog.at_level(logging.INFO, logger="lmc_utils.zoo"):
        zoo.get(cfg, device="cpu", progress=False)
    assert trained == [1]
    new_path = zoo.checkpoint_path(cfg, "cpu")
    assert new_path != old_path and new_path.exists() and old_path.exists()  # both environments kept
    assert "another environment" in caplog.text and ("threads" if change == "threads" else "code") in caplog.text
    zoo.get(cfg, device="cpu", progress=False)  # now a hit in this environment
    assert trained == [1]


def test_an_entry_from_another_environment_copied_into_place_is_not_used(monkeypatch):
    cfg = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 8, "depth": 1}, epochs=1)
    here = zoo.checkpoint_path(cfg, "cpu")
    with monkeypatch.context() as patched:
        patched.setattr(zoo.store, "code_digest", lambda: "0" * 16)
        zoo.get(cfg, device="cpu", progress=False)
        elsewhere = zoo.checkpoint_path(cfg, "cpu")
    here.write_bytes(elsewhere.read_bytes())  # its metadata records the other code digest
    with pytest.warns(RuntimeWarning, match="corrupt.*'env'"):
        zoo.get(cfg, device="cpu", progress=False)
    assert cache.load_checkpoint(here)[1]["env"]["code"] == zoo.code_digest()  # rewritten for this one


VGG_LN = zoo.TrainConfig(dataset="fashion_mnist", arch="vgg",
                         model={"config": "vgg11", "norm": "layernorm", "width_multiplier": 0.0625},
                         optimizer="adam", lr=1e-3, batch_size=64, epochs=1, train_subset=384, trainer="batched")


def test_stacked_vgg_is_one_grouped_network_computing_each_model():
    nets = [zoo.build_model(VGG_LN.replace(seed=s)) for s in range(3)]
    x = torch.randn(3, 5, 1, 28, 28)
    params = {k: torch.stack([dict(n.named_parameters())[k] for n in nets]) for k, _ in nets[0].named_parameters()}
    want = torch.stack([n(xi) for n, xi in zip(nets, x)])
    torch.testing.assert_close(nets[0].forward_stacked(params, x), want, rtol=1e-5, atol=1e-5)
    bn = zoo.build_model(VGG_LN.replace(model={**VGG_LN.model, "norm": "batchnorm"}, trainer="single"))
    with pytest.raises(ValueError, match="BatchNorm"):
        bn.forward_stacked({k: v.unsqueeze(0) for k, v in bn.named_parameters()}, x[:1])


@needs_mnist
def test_a_batched_vgg_does_not_depend_on_the_others_in_its_batch_and_learns():
    configs = [VGG_LN.replace(seed=s) for s in range(4)]
    together = zoo.train_many(configs, device="cpu", progress=False)
    alone = zoo.train_many([configs[2]], device="cpu", progress=False)[0]
    assert _equal(together[2].model.state_dict(), alone.model.state_dict())
    assert not _equal(together[1].model.state_dict(), together[2].model.state_dict())
    for c, t in zip(configs, together):  # each model moved from its own start, with its own history
        assert not _equal(t.model.state_dict(), zoo.build_model(c).state_dict())
        assert t.history[-1]["l2_from_start"] > 0 and 0 <= t.history[-1]["train_accuracy"] <= 1


def test_bad_trainer_and_unbatchable_configs_are_rejected():
    with pytest.raises(ValueError, match="unknown trainer 'vmap'"):
        BATCHED.replace(trainer="vmap")
    with pytest.raises(ValueError, match="'model.norm' is 'batchnorm'"):
        zoo.TrainConfig(dataset="mnist", arch="vgg", trainer="batched")
    with pytest.raises(ValueError, match="'arch' is 'resnet20'"):
        zoo.TrainConfig(dataset="mnist", arch="resnet20", model={"norm": "layernorm"}, trainer="batched")
    with pytest.raises(ValueError, match="'augment'"):
        BATCHED.replace(augment=True)
    with pytest.raises(ValueError, match="field 'lr' differs"):
        zoo.train_many([BATCHED, BATCHED.replace(seed=1, lr=0.02)], device="cpu", progress=False)
    with pytest.raises(ValueError, match="field 'trainer' is 'single'"):
        zoo.train_many([BATCHED.replace(trainer="single")], device="cpu", progress=False)
    with pytest.raises(ValueError, match="field 'parent'"):
        zoo.train_many([BATCHED, BATCHED.replace(seed=1, parent=BATCHED)], device="cpu", progress=False)


def test_trainer_field_keeps_existing_keys():
    single = BATCHED.replace(trainer="single")
    assert single.key == zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2},
                                         optimizer="adam", lr=0.01, batch_size=64, epochs=3).key
    assert BATCHED.key != single.key
    assert zoo.group_key(BATCHED) == zoo.group_key(BATCHED.replace(seed=4, data_seed=2)) != zoo.group_key(single)


def test_spawned_pairs_train_their_parents_together_then_their_children(monkeypatch):
    calls = []
    real = zoo.trainers.train_many  # what the store trains with
    monkeypatch.setattr(zoo.trainers, "train_many", lambda cs, **k: calls.append(len(cs)) or real(cs, **k))
    zoo.spawned_pairs(BATCHED.replace(epochs=2, seed=40), n_pairs=3, parent_epochs=1, seed=40, device="cpu")
    assert calls == [3, 6]  # 3 parents in one batch, then their 6 children in one batch


def test_training_flushes_subnormals_and_restores_them():
    """Training runs with subnormal floats flushed to zero (weights decaying towards zero otherwise
    slow every multiply 3-5x), and leaves the process as it found it."""
    from lmc_utils.zoo.trainers import _no_subnormals

    tiny = torch.tensor([1e-39])  # subnormal in float32
    assert (tiny * 1.0).item() != 0.0
    inside = _no_subnormals(lambda: (tiny * 1.0).item())()
    assert inside == 0.0
    assert (tiny * 1.0).item() != 0.0
