"""The straight-through estimator's starts and patience rule, and the fast paths of Sinkhorn
weight matching (issue 15, items 3 and 4)."""

import pandas as pd
import pytest
import torch

from lmc_utils import matching, models
from lmc_utils import permutation as P
from lmc_utils.data import TensorData


def _data(n=600, seed=0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 10, (n,), generator=g), 10,
                      "synthetic", "train")


def _mlp(seed, width=16, depth=2, in_features=36, num_classes=10):
    torch.manual_seed(seed)
    return models.mlp(in_features=in_features, num_classes=num_classes, width=width, depth=depth).eval()


def _fit(model, data, steps=30):
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    return model.eval()


# --- the patience rule ------------------------------------------------------------------------

def _stop_index(values, patience, min_delta=0.0):
    rule = matching.Patience(patience, min_delta)
    for i, v in enumerate(values):
        if rule.update(v):
            return i
    return None


def test_patience_stops_after_that_many_evaluations_without_a_new_best():
    losses = [1.0, 0.9, 0.8, 0.85, 0.81, 0.7, 0.72, 0.71, 0.70, 0.69]
    # best 0.7 at index 5; 0.72, 0.71, 0.70 (a tie is no improvement) -> stop at index 8
    assert _stop_index(losses, patience=3) == 8
    assert _stop_index(losses, patience=2) == 4  # 0.85, 0.81 after the best 0.8
    assert _stop_index(losses, patience=4) is None
    assert _stop_index(losses, patience=None) is None


def test_patience_min_delta_ignores_small_improvements():
    losses = [1.0, 0.995, 0.99, 0.985, 0.5]
    assert _stop_index(losses, patience=3, min_delta=0.0) is None
    assert _stop_index(losses, patience=3, min_delta=0.02) == 3


def test_patience_rejects_bad_settings():
    with pytest.raises(ValueError, match="patience"):
        matching.Patience(0)
    with pytest.raises(ValueError, match="min_delta"):
        matching.Patience(2, -1.0)


def test_ste_stops_on_patience_when_the_held_loss_never_falls():
    """With a vanishing learning rate the permutation never changes, so the held loss is constant:
    the run must stop exactly ``patience * eval_every`` steps in, before its cap."""
    data = _data()
    a, b = _fit(_mlp(0), data), _fit(_mlp(1), data)
    res = matching.ste_matching(a, a.state_dict(), b.state_dict(), data, steps=50, lr=1e-12, batch_size=100,
                                held_size=100, eval_every=2, patience=3, progress=False)
    assert res.stopped_step == 6 and not res.hit_cap
    assert [h["step"] for h in res.history] == [0, 2, 4, 6]
    assert res.best_step == 0


def test_ste_respects_the_step_cap():
    data = _data(seed=1)
    a, b = _fit(_mlp(0), data), _fit(_mlp(1), data)
    res = matching.ste_matching(a, a.state_dict(), b.state_dict(), data, steps=7, lr=0.05, batch_size=100,
                                held_size=100, eval_every=3, patience=100, progress=False)
    assert res.stopped_step == 7 and res.hit_cap
    assert [h["step"] for h in res.history] == [0, 3, 6, 7]
    fixed = matching.ste_matching(a, a.state_dict(), b.state_dict(), data, steps=7, lr=0.05, batch_size=100,
                                  held_size=100, eval_every=3, progress=False)
    assert fixed.hit_cap and fixed.stopped_step == 7
    # a patience rule that never fires changes nothing
    assert all(torch.equal(res.perm[g], fixed.perm[g]) for g in res.perm)
    assert pd.DataFrame(res.history)["held_loss"].tolist() == pd.DataFrame(fixed.history)["held_loss"].tolist()


# --- the starts ---------------------------------------------------------------------------------

def test_default_start_is_the_former_one():
    """``init="wm"`` (default) is what ``init="a"`` was: theta~ = theta_a, projection from WM."""
    data = _data(seed=2)
    a, b = _fit(_mlp(0), data), _fit(_mlp(1), data)
    kw = dict(steps=6, lr=0.05, batch_size=100, held_size=100, eval_every=2, progress=False)
    new = matching.ste_matching(a, a.state_dict(), b.state_dict(), data, **kw)
    old = matching.ste_matching(a, a.state_dict(), b.state_dict(), data, init="a", **kw)
    assert new.init == old.init == "wm"
    assert all(torch.equal(new.perm[g], old.perm[g]) for g in new.perm)
    spec = P.spec_for(a)
    perm, start = matching.ste_start(spec, a.state_dict(), b.state_dict(), "wm")
    wm = matching.weight_matching(spec, a.state_dict(), b.state_dict()).perm
    assert all(torch.equal(perm[g], wm[g]) for g in wm)
    assert all(torch.equal(start[k], a.state_dict()[k]) for k in start)


def test_identity_start_on_a_model_against_itself_returns_the_identity():
    data = _data(seed=3)
    a = _fit(_mlp(0), data)
    spec = P.spec_for(a)
    s = a.state_dict()
    perm, start = matching.ste_start(spec, s, s, "identity")
    assert all(torch.equal(perm[g], torch.arange(n)) for g, n in spec.sizes.items())
    res = matching.ste_matching(a, s, s, data, steps=6, lr=0.01, batch_size=100, held_size=100, eval_every=2,
                                init="identity", progress=False)
    assert all(torch.equal(res.perm[g], torch.arange(n)) for g, n in spec.sizes.items())
    assert res.init == "identity"


def test_random_start_is_reproducible_from_the_seed_and_is_that_permutation():
    data = _data(seed=4)
    a, b = _fit(_mlp(0, width=24), data), _fit(_mlp(1, width=24), data)
    spec = P.spec_for(a)
    sa, sb = a.state_dict(), b.state_dict()
    p1, s1 = matching.ste_start(spec, sa, sb, "random", seed=5)
    p2, _ = matching.ste_start(spec, sa, sb, "random", seed=5)
    p3, _ = matching.ste_start(spec, sa, sb, "random", seed=6)
    assert all(torch.equal(p1[g], p2[g]) for g in p1)
    assert any(not torch.equal(p1[g], p3[g]) for g in p1)
    ref = P.random_permutation(spec, 5)
    assert all(torch.equal(p1[g], ref[g]) for g in ref)
    permuted = P.apply_permutation(spec, ref, sb)
    assert all(torch.equal(s1[k], permuted[k]) for k in s1)
    # the random start is the one evaluated at step 0, and whole runs repeat exactly
    kw = dict(steps=4, lr=0.05, batch_size=100, held_size=100, eval_every=2, init="random", seed=5, progress=False)
    r1 = matching.ste_matching(a, sa, sb, data, **kw)
    r2 = matching.ste_matching(a, sa, sb, data, **kw)
    assert [h["held_loss"] for h in r1.history] == [h["held_loss"] for h in r2.history]
    assert all(torch.equal(r1.perm[g], r2.perm[g]) for g in r1.perm)


def test_a_identity_start_begins_at_no_permutation_from_theta_a():
    data = _data(seed=5)
    a, b = _fit(_mlp(0), data), _fit(_mlp(1), data)
    spec = P.spec_for(a)
    perm, start = matching.ste_start(spec, a.state_dict(), b.state_dict(), "a_identity")
    assert all(torch.equal(perm[g], torch.arange(n)) for g, n in spec.sizes.items())
    assert all(torch.equal(start[k], a.state_dict()[k]) for k in start)
    wm_projected, start = matching.ste_start(spec, a.state_dict(), b.state_dict(), "wm_projected")
    shifted = P.apply_permutation(spec, wm_projected, b.state_dict())
    assert all(torch.equal(start[k], shifted[k]) for k in start)


def test_ste_start_rejects_bad_combinations():
    a = _mlp(0)
    spec, s = P.spec_for(a), a.state_dict()
    with pytest.raises(ValueError, match="init must be one of"):
        matching.ste_start(spec, s, s, "theta_b")
    with pytest.raises(ValueError, match="init_perm"):
        matching.ste_start(spec, s, s, "random", init_perm=P.identity(spec))
    with pytest.raises(ValueError, match="optimizer"):
        matching.ste_matching(a, s, s, _data(n=50), held_size=10, optimizer="rmsprop", progress=False)


def test_sgd_optimizer_moves_the_learned_copy():
    data = _data(seed=6)
    a, b = _fit(_mlp(0, width=24), data), _fit(_mlp(1, width=24), data)
    res = matching.ste_matching(a, a.state_dict(), b.state_dict(), data, steps=10, lr=5.0, batch_size=100,
                                held_size=100, eval_every=1, optimizer="sgd", weight_decay=1e-4, progress=False)
    held = [h["held_loss"] for h in res.history]
    assert len(set(held)) > 1  # the permutation changed along the run
