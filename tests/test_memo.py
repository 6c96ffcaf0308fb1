"""The analysis cache (lmc_utils.core.memo): a reused result equals a fresh one, and any change to what it
is a function of (weights, data, parameters, code, threads) computes it again."""

import logging

import pandas as pd
import pytest
import torch

from lmc_utils.core import memo
from lmc_utils.core.data import TensorData
from lmc_utils.core.models import build
from lmc_utils.matching.weight import weight_matching
from lmc_utils.measure.interpolation import batched_curves, interpolation_curve
from lmc_utils.permutation import spec_for


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), 10, "syn", "test")


def _pair(**kw):
    torch.manual_seed(0)
    a = build("mlp", in_features=784, num_classes=10, width=16, depth=2, **kw)
    b = build("mlp", in_features=784, num_classes=10, width=16, depth=2, **kw)
    return a.eval(), b.eval()


def _entries():
    root = memo.entry_path("x", "0").parent.parent
    return sorted(root.rglob("*.pt")) if root.exists() else []


def _delta():
    before = memo.stats()
    return lambda: {k: memo.stats()[k] - before[k] for k in before}


def test_a_reused_curve_is_the_fresh_curve_bit_for_bit():
    a, b = _pair()
    data = {"train": _data(), "test": _data(seed=1)}
    fresh = interpolation_curve.uncached(a, a.state_dict(), b.state_dict(), data, n_points=5)
    d = _delta()
    first = interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=5)
    again = interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=5)
    assert d() == {"hit": 1, "miss": 1}
    for got in (first, again):
        pd.testing.assert_frame_equal(got, fresh, check_exact=True)
        assert list(got.dtypes) == list(fresh.dtypes)
    assert len(_entries()) == 1


def test_a_changed_input_is_computed_again():
    a, b = _pair()
    data = _data()
    state_b = {k: v.clone() for k, v in b.state_dict().items()}
    base = interpolation_curve(a, a.state_dict(), state_b, data, n_points=3)
    d = _delta()
    state_b[next(iter(state_b))].view(-1)[0] += 1.0  # in place: the tensor's digest must not be reused
    moved = interpolation_curve(a, a.state_dict(), state_b, data, n_points=3)
    assert d() == {"hit": 0, "miss": 1}
    assert not moved.equals(base)
    other_data = TensorData(data.x.clone(), data.y.clone(), 10, "syn", "test")
    other_data.x[0, 0, 0, 0] += 1.0
    interpolation_curve(a, a.state_dict(), state_b, other_data, n_points=3)  # other inputs
    interpolation_curve(a, a.state_dict(), state_b, data, n_points=4)  # another parameter
    assert d() == {"hit": 0, "miss": 3}


def test_other_code_or_threads_is_a_miss(monkeypatch):
    a, b = _pair()
    data = _data()
    interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=3)
    d = _delta()
    monkeypatch.setattr(memo, "analysis_code_digest", lambda: "edited")
    interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=3)
    finally:
        torch.set_num_threads(threads)
    assert d() == {"hit": 0, "miss": 2}


def test_the_code_digest_covers_the_analysis_tiers_only():
    package = memo.Path(memo.__file__).resolve().parent.parent
    assert memo.ANALYSIS_TIERS == ("core", "permutation", "measure", "matching")
    assert all((package / tier).is_dir() for tier in memo.ANALYSIS_TIERS)
    assert len(memo.analysis_code_digest()) == 16


def test_a_corrupt_entry_is_reported_and_recomputed(caplog):
    a, b = _pair()
    data = _data()
    fresh = interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=3)
    (entry,) = _entries()
    entry.write_bytes(entry.read_bytes()[:100])
    d = _delta()
    with caplog.at_level(logging.WARNING, logger="lmc_utils.core.memo"):
        again = interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=3)
    assert d() == {"hit": 0, "miss": 1}
    assert "unusable" in caplog.text
    pd.testing.assert_frame_equal(again, fresh, check_exact=True)
    again = interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=3)
    assert d() == {"hit": 1, "miss": 1}


@pytest.mark.parametrize("value", ["off", "0", "no", "FALSE"])
def test_the_cache_can_be_turned_off(monkeypatch, value):
    monkeypatch.setenv("LMC_ANALYSIS_CACHE", value)
    a, b = _pair()
    d = _delta()
    interpolation_curve(a, a.state_dict(), b.state_dict(), _data(), n_points=3)
    assert d() == {"hit": 0, "miss": 0} and _entries() == []


def test_a_bad_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LMC_ANALYSIS_CACHE", "sometimes")
    a, b = _pair()
    with pytest.raises(ValueError, match="LMC_ANALYSIS_CACHE"):
        interpolation_curve(a, a.state_dict(), b.state_dict(), _data(), n_points=3)


def test_a_plan_run_never_uses_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LMC_ZOO_PLAN", str(tmp_path / "requests.jsonl"))
    a, b = _pair()
    interpolation_curve(a, a.state_dict(), b.state_dict(), _data(), n_points=3)
    assert _entries() == []


def test_a_reused_permutation_is_the_fresh_result():
    a, b = _pair()
    spec = spec_for(a)
    fresh = weight_matching.uncached(spec, a.state_dict(), b.state_dict(), seed=3)
    d = _delta()
    first = weight_matching(spec, a.state_dict(), b.state_dict(), seed=3)
    again = weight_matching(spec, a.state_dict(), b.state_dict(), seed=3)
    other_order = weight_matching(spec, a.state_dict(), b.state_dict(), seed=4)
    assert d() == {"hit": 1, "miss": 2}
    for got in (first, again):
        assert type(got) is type(fresh)
        assert got.objective == fresh.objective and got.sweeps == fresh.sweeps
        assert got.perm.keys() == fresh.perm.keys()
        assert all(torch.equal(got.perm[g], fresh.perm[g]) and got.perm[g].dtype == fresh.perm[g].dtype
                   for g in fresh.perm)
    assert other_order.perm.keys() == fresh.perm.keys()


def test_batched_curves_are_cached_as_arrays():
    a, b = _pair()
    data = _data()
    fresh = batched_curves.uncached(a, [a.state_dict()], [b.state_dict()], data, n_points=3)
    d = _delta()
    batched_curves(a, [a.state_dict()], [b.state_dict()], data, n_points=3)
    got = batched_curves(a, [a.state_dict()], [b.state_dict()], data, n_points=3)
    assert d() == {"hit": 1, "miss": 1}
    for k in fresh:
        assert got[k].dtype == fresh[k].dtype and (got[k] == fresh[k]).all()


def test_what_cannot_be_fingerprinted_is_computed_not_keyed_weakly():
    with pytest.raises(TypeError, match="fingerprint"):
        memo.fingerprint(object())
    calls = []

    @memo.memoized("test")
    def total(xs):
        calls.append(1)
        return float(sum(xs))

    assert total(iter([1.0, 2.0])) == 3.0 and total(iter([1.0, 2.0])) == 3.0  # an iterator: no key
    assert total([1.0, 2.0]) == 3.0 and total([1.0, 2.0]) == 3.0  # a list: keyed by value
    assert len(calls) == 3


def test_fingerprints_see_content_not_identity():
    t = torch.arange(6.0)
    assert memo.fingerprint({"w": t}) == memo.fingerprint({"w": t.clone()})
    assert memo.fingerprint({"w": t}) != memo.fingerprint({"w": t.double()})
    assert memo.fingerprint({"w": t}) != memo.fingerprint({"w": t.view(2, 3)})
    assert memo.fingerprint([1, 2]) != memo.fingerprint((1, 2)) != memo.fingerprint([2, 1])
    assert memo.fingerprint(1) != memo.fingerprint(1.0) != memo.fingerprint(True)


def test_a_modules_plain_attributes_are_part_of_its_fingerprint():
    a, _ = _pair(norm="layernorm")
    before = memo.fingerprint(a)
    norm = next(m for m in a.modules() if hasattr(m, "eps"))
    norm.eps = 1e-3  # not in the state dict, and changes every output
    assert memo.fingerprint(a) != before
    a.train()
    assert memo.fingerprint(a) != before


def test_a_module_with_hooks_is_computed_not_cached():
    a, b = _pair()
    handle = a.register_forward_hook(lambda m, i, o: None)
    with pytest.raises(TypeError, match="hooks"):
        memo.fingerprint(a)
    d = _delta()
    interpolation_curve(a, a.state_dict(), b.state_dict(), _data(), n_points=3)
    handle.remove()
    assert d() == {"hit": 0, "miss": 0} and _entries() == []


def test_a_tensor_is_hashed_once_until_it_changes(monkeypatch):
    calls = []
    real = memo.hashlib.sha256

    def counting(*a):
        calls.append(1)
        return real(*a)

    t = torch.randn(1000)
    first = memo.fingerprint(t)
    monkeypatch.setattr(memo.hashlib, "sha256", counting)
    assert memo.fingerprint(t) == first and memo.fingerprint(t) == first
    tensor_hashes = len(calls)  # the fingerprints' own hashes only
    t[0] += 1  # in place: the version counter moves
    assert memo.fingerprint(t) != first and len(calls) == tensor_hashes + 2
    p = torch.nn.Parameter(torch.zeros(3))
    before = memo.fingerprint(p)
    p.data = torch.ones(3)  # new storage, and .data does not move the version counter
    assert memo.fingerprint(p) != before


def test_a_model_trained_in_place_by_a_fused_optimiser_is_a_new_key():
    a, b = _pair()
    data = _data()
    first = interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=3)
    opt = torch.optim.Adam(b.parameters(), lr=0.1, fused=True)  # steps without moving version counters
    torch.nn.functional.cross_entropy(b(data.x), data.y).backward()
    opt.step()
    d = _delta()
    again = interpolation_curve(a, a.state_dict(), b.state_dict(), data, n_points=3)
    assert d() == {"hit": 0, "miss": 1} and not again.equals(first)
