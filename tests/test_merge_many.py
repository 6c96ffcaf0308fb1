"""merge_many: n permuted copies of one model are merged back into that model by every regime;
sequential matching of two models is pairwise matching; the iterative regime's trace and flag."""

import pytest
import torch

from lmc_utils import matching, models
from lmc_utils import permutation as P
from lmc_utils.data import TensorData
from lmc_utils.interpolation import reset_batchnorm

ARCHS = {
    "mlp": (lambda: models.mlp(in_features=20, num_classes=10, width=32, depth=3, init="kaiming_normal"), (20,)),
    "vgg11-batchnorm": (lambda: models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125), (1, 28, 28)),
    "resnet20-layernorm": (lambda: models.resnet20(in_channels=3, norm="layernorm", width_multiplier=0.5), (3, 16, 16)),
}


def _copies(name, n, seed=0):
    """A model and ``n`` copies of it, copy ``i >= 1`` under a planted random permutation."""
    torch.manual_seed(seed)
    model = ARCHS[name][0]()
    x = torch.randn(256, *ARCHS[name][1])
    reset_batchnorm(model, TensorData(x, torch.zeros(256, dtype=torch.long), 10, "random", "train"))
    spec = P.spec_for(model)
    state = model.state_dict()
    planted = [P.identity(spec)] + [P.random_permutation(spec, seed=seed + 10 + i) for i in range(1, n)]
    return model, spec, state, planted, [P.apply_permutation(spec, p, state) for p in planted]


def _equal_states(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", sorted(ARCHS))
@pytest.mark.parametrize("regime", ["reference", "sequential"])
def test_reference_and_sequential_recover_planted_permutations(name, regime):
    _, spec, state, planted, states = _copies(name, 4)
    res = matching.merge_many(states, spec, regime=regime)
    for p_found, p_planted in zip(res.perms, planted):
        inv = P.inverse(p_planted)
        assert all(torch.equal(p_found[g], inv[g]) for g in spec.sizes)
    assert all(_equal_states(a, state) for a in res.aligned)
    assert all(torch.allclose(res.merged[k].float(), state[k].float(), atol=1e-6) for k in state)
    assert res.converged is None and res.iterations == 0


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_iterative_merges_permuted_copies_back_into_the_model(name):
    _, spec, state, planted, states = _copies(name, 4)
    res = matching.merge_many(states, spec, regime="iterative", max_iterations=10)
    assert res.converged and res.iterations <= 10
    # every copy is brought into one common basis (the model up to one global permutation)
    first = res.aligned[0]
    assert all(_equal_states(a, first) for a in res.aligned)
    assert all(_equal_states(P.apply_permutation(spec, p, s), a) for p, s, a in zip(res.perms, states, res.aligned))
    # the merge is the model up to that permutation: its objective is the largest possible
    best = matching.pairwise_objective(spec, [state] * 4)
    assert res.objective[-1] == pytest.approx(best, rel=1e-9)
    assert res.objective[-1] / res.scale == pytest.approx(1.0)  # identical models: cosine 1
    assert all(torch.allclose(res.merged[k].float(), first[k].float(), atol=1e-6) for k in state)
    # relative to copy 0 the permutations found undo the planted ones
    for i in range(1, 4):
        rel = P.apply_permutation(spec, P.inverse(res.perms[0]), res.aligned[i])
        assert _equal_states(rel, state)


def test_iterative_trace_never_decreases_and_stops_at_a_fixed_point():
    torch.manual_seed(0)
    states = [models.mlp(in_features=20, num_classes=10, width=16, depth=2, init="kaiming_normal").state_dict()
              for _ in range(5)]  # independent random models: matching them is not trivial
    spec = P.spec_for(models.mlp(in_features=20, num_classes=10, width=16, depth=2))
    res = matching.merge_many(states, spec, regime="iterative", max_iterations=50, seed=3)
    assert len(res.objective) == res.iterations + 1
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(res.objective, res.objective[1:]))
    assert res.objective[-1] > res.objective[0]  # matching found better alignments than none
    assert res.converged and res.objective[-1] == pytest.approx(res.objective[-2])
    # restarting from the fixed point changes nothing
    again = matching.merge_many(res.aligned, spec, regime="iterative", max_iterations=5, seed=7)
    assert again.converged and again.iterations == 1
    assert all(torch.equal(p[g], torch.arange(spec.sizes[g])) for p in again.perms for g in spec.sizes)


def test_iterative_cap_reports_not_converged():
    torch.manual_seed(1)
    states = [models.mlp(in_features=20, num_classes=10, width=16, depth=2, init="kaiming_normal").state_dict()
              for _ in range(5)]
    spec = P.spec_for(models.mlp(in_features=20, num_classes=10, width=16, depth=2))
    res = matching.merge_many(states, spec, regime="iterative", max_iterations=1, seed=0)
    assert res.iterations == 1 and res.converged is False  # the first pass always moves independent models
    assert len(res.objective) == 2


def test_sequential_of_two_is_pairwise_matching():
    torch.manual_seed(2)
    a, b = (models.mlp(in_features=20, num_classes=10, width=32, depth=3, init="kaiming_normal").state_dict()
            for _ in range(2))
    spec = P.spec_for(models.mlp(in_features=20, num_classes=10, width=32, depth=3))
    pair = matching.weight_matching(spec, a, b, seed=5).perm
    for regime in ("sequential", "reference"):
        res = matching.merge_many([a, b], spec, regime=regime, seed=5)
        assert all(torch.equal(res.perms[1][g], pair[g]) for g in spec.sizes)
        expected = matching.average_states([a, P.apply_permutation(spec, pair, b)])
        assert _equal_states(res.merged, expected)


def test_sequential_matches_to_the_previous_model_not_the_first():
    calls = []

    def matcher(target, source, init):
        calls.append((target, source))
        return P.identity(spec)

    torch.manual_seed(3)
    spec = P.spec_for(models.mlp(in_features=20, num_classes=10, width=8, depth=2))
    states = [models.mlp(in_features=20, num_classes=10, width=8, depth=2).state_dict() for _ in range(3)]
    matching.merge_many(states, spec, regime="sequential", matcher=matcher)
    assert calls[1][0] is not states[0] and _equal_states(calls[1][0], states[1])
    calls.clear()
    matching.merge_many(states, spec, regime="reference", matcher=matcher)
    assert _equal_states(calls[1][0], states[0])


def test_activation_matcher_merges_permuted_copies():
    model, spec, state, planted, states = _copies("mlp", 3)
    x = torch.randn(512, 20)
    res = matching.merge_many(states, spec, regime="reference", matcher=matching.activation_matcher(model, x, spec))
    assert all(_equal_states(a, state) for a in res.aligned)


def test_merge_many_rejects_bad_input():
    _, spec, state, _, states = _copies("mlp", 2)
    with pytest.raises(ValueError, match="regime"):
        matching.merge_many(states, spec, regime="star")
    with pytest.raises(ValueError, match="at least one"):
        matching.merge_many([], spec)
    with pytest.raises(ValueError, match="max_iterations"):
        matching.merge_many(states, spec, regime="iterative", max_iterations=0)
    single = matching.merge_many(states[:1], spec, regime="iterative")
    assert single.converged and _equal_states(single.merged, state)


def test_average_states_and_pairwise_objective():
    s1 = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    s2 = {"w": torch.tensor([3.0, 0.0]), "n": torch.tensor(5)}
    avg = matching.average_states([s1, s2])
    assert torch.equal(avg["w"], torch.tensor([2.0, 1.0])) and int(avg["n"]) == 3
