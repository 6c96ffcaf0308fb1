"""Taylor barrier estimate, Hessian-vector products and weight distances."""

import math

import numpy as np
import pandas as pd

import pytest
import torch

from lmc_utils import distance, models, taylor, zoo
from lmc_utils import permutation as P
from lmc_utils.data import TensorData


def _data(n=128, d=12, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g), classes, "r", "train")


def test_estimate_is_exact_for_a_quadratic_loss():
    """A quadratic f(p) = 1/2 p^T A p + b^T p (A indefinite): -d^T A d / 8 is the exact midpoint barrier."""
    torch.manual_seed(0)
    model = models.mlp(in_features=3, num_classes=2, width=4, depth=1).double()
    names = [n for n, _ in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    n = sum(sizes)
    m = torch.randn(n, n, dtype=torch.float64)
    a_mat, b_vec = (m + m.T) / 2, torch.randn(n, dtype=torch.float64)

    def flat(params):
        return torch.cat([params[k].reshape(-1).double() for k in names])

    def f(params):
        p = flat(params)
        return 0.5 * p @ a_mat @ p + b_vec @ p

    s_a = model.state_dict()
    s_b = {k: v + torch.randn_like(v) for k, v in s_a.items()}
    out = taylor.taylor_barrier(model, s_a, s_b, [f])
    assert out["estimate"] == pytest.approx(out["actual"], rel=1e-9, abs=1e-9)
    d = flat(s_b) - flat(s_a)
    assert out["curvature"] == pytest.approx(float(d @ a_mat @ d), rel=1e-9)
    assert out["distance"] == pytest.approx(float(d.norm()), rel=1e-6)


def test_hvp_matches_finite_differences_of_the_gradient():
    torch.manual_seed(0)
    model = models.mlp(in_features=12, num_classes=5, width=16, depth=2).double()
    data = TensorData(_data().x.double(), _data().y, 5, "r", "train")
    params, buffers = taylor.split_state(model, model.state_dict())
    v = {k: torch.randn_like(p) for k, p in params.items()}
    fns = taylor.dataset_loss(model, data, buffers, batch_size=50)  # three unequal batches
    _, g0, hv = taylor.loss_grad_hvp(fns, params, v)
    eps = 1e-6
    plus = {k: p + eps * v[k] for k, p in params.items()}
    minus = {k: p - eps * v[k] for k, p in params.items()}
    _, g_plus, _ = taylor.loss_grad_hvp(fns, plus, v)
    _, g_minus, _ = taylor.loss_grad_hvp(fns, minus, v)
    for k in params:
        torch.testing.assert_close(hv[k], (g_plus[k] - g_minus[k]) / (2 * eps), rtol=1e-5, atol=1e-7)
    # batch weighting: the value is the mean loss over all examples
    full = taylor.loss_grad_hvp(taylor.dataset_loss(model, data, buffers, batch_size=1000), params, v)
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(model(data.x), data.y))
    assert full[0] == pytest.approx(expected, rel=1e-10)
    for k in params:
        torch.testing.assert_close(full[1][k], g0[k])


def test_estimate_is_close_for_nearby_models_and_zero_for_identical():
    torch.manual_seed(0)
    model = models.mlp(in_features=12, num_classes=5, width=16, depth=2)
    s = model.state_dict()
    same = taylor.taylor_barrier(model, s, s, _data())
    assert same["actual"] == 0 and same["estimate"] == 0 and same["distance"] == 0
    near = {k: v + 1e-3 * torch.randn_like(v) for k, v in s.items()}
    out = taylor.taylor_barrier(model, s, near, _data())
    assert abs(out["actual"] - out["estimate"]) < 0.05 * abs(out["estimate"]) + 1e-7
    curve = taylor.taylor_curve(out, [0.0, 0.5, 1.0])
    assert curve["loss"][1] == pytest.approx(out["loss_mid"])
    assert curve["loss"][0] == pytest.approx(out["loss_a"], abs=1e-4)


def test_distances_whole_and_per_layer():
    model = models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125)
    a = model.state_dict()
    b = {k: (v + 1.0 if v.is_floating_point() else v) for k, v in a.items()}
    spec = P.spec_for(model)
    per_layer = distance.layer_distances(a, b, spec.buffers)
    n_params = sum(p.numel() for p in model.parameters())
    assert distance.l2_distance(a, b, spec.buffers) == pytest.approx(math.sqrt(n_params))
    assert per_layer["features.0.conv"] == pytest.approx(math.sqrt(a["features.0.conv.weight"].numel()))
    assert "features.0.norm" in per_layer.index
    with_buffers = distance.l2_distance(a, b, spec.buffers, include_buffers=True)
    assert with_buffers > distance.l2_distance(a, b, spec.buffers)
    # a permutation moves weights but not the distance to the same permuted copy
    perm = P.random_permutation(spec, 0)
    pa, pb = P.apply_permutation(spec, perm, a), P.apply_permutation(spec, perm, b)
    assert distance.l2_distance(pa, pb, spec.buffers) == pytest.approx(distance.l2_distance(a, b, spec.buffers))


def test_spawn_configs():
    base = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 8, "depth": 1}, epochs=5)
    kids = zoo.spawn(base, parent_epochs=2)
    assert [k.epochs for k in kids] == [3, 3] and kids[0].parent == kids[1].parent == base.replace(epochs=2)
    assert kids[0].key != kids[1].key
    with pytest.raises(ValueError, match="parent_epochs"):
        zoo.spawn(base, parent_epochs=5)


def test_distance_and_taylor_study_on_moons():
    from lmc_utils import verdicts
    from lmc_utils.studies import distance_taylor

    base = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 32, "depth": 2}, optimizer="adam",
                           lr=0.01, batch_size=64, epochs=4)
    res = distance_taylor.run({"moons": base}, n_pairs=2, parent_epochs=2, loss_subset=None, match_samples=None,
                              n_orders=2, n_points=3, device="cpu", progress=False)
    d = res.distances.set_index(["kind", "pair", "method", "order"])["distance"]
    for pair in (0, 1):
        for order in (0, 1):
            # ||a - pi(b)||^2 = ||a||^2 + ||b||^2 - 2 <a, pi(b)>, and weight matching never lowers <a, pi(b)>
            assert d[("independent", pair, "weight", order)] <= d[("independent", pair, "naive", 0)] + 1e-6
    assert (res.distances.loc[res.distances["method"] == "naive", "relative_to_naive"] == 1).all()
    assert set(res.taylor["method"]) == {"naive", "weight", "activation"}
    # per independent pair: naive, two WM orders, AM; per spawned pair: naive
    assert set(res.taylor["kind"]) == {"independent", "spawned"} and len(res.taylor) == 2 * 4 + 2
    assert set(res.curves["source"]) == {"actual", "taylor"}
    assert set(res.layers["layer"]) == {"hidden.0", "hidden.1", "out"}
    # a spawned pair is much closer than an independent one
    assert d[("spawned", 0, "naive", 0)] < d[("independent", 0, "naive", 0)]
    assert res.taylor["rel_error"].between(0, 1).all()
    tables = distance_taylor.tables(res)
    assert set(tables) == {"01_distances", "01_layer_distances", "01_taylor_barriers", "01_distance_over_sweeps"}
    # the distance over weight matching's sweeps: from the naive distance to the weight row's, never rising
    for (pair, order), s in res.sweeps.groupby(["pair", "order"]):
        assert list(s["sweep"]) == list(range(len(s))) and len(s) >= 2
        assert s["distance"].iloc[0] == pytest.approx(d[("independent", pair, "naive", 0)], rel=1e-5)
        assert s["distance"].iloc[-1] == pytest.approx(d[("independent", pair, "weight", order)], rel=1e-5)
        assert (s["distance"].diff().dropna() <= 1e-5).all() and s["relative_to_naive"].iloc[0] == 1
    criteria = verdicts.load_criteria("01_distance_taylor")
    frame = distance_taylor.verdicts(res, criteria)
    verdicts.check_declared(frame, criteria)
    weight = frame[(frame["claim"] == "taylor_off_after_matching") & (frame["subject"] == "moons / weight")].iloc[0]
    assert weight["n"] == 2 and weight["repeats"] == 2


def test_symmetric_relative_error():
    from lmc_utils.studies import distance_taylor

    err = distance_taylor.relative_error([1.0, 1.0, 1.0, -1.0, 0.0], [1.0, 2.0, 0.5, 1.0, 0.0])
    assert err == pytest.approx([0.0, 1 / 3, 1 / 3, 1.0, 0.0])


def _synthetic(spawned_error: float, matched_error: float, dist_share: float, n: int = 8, sd: float = 0.02,
               matched_barrier: float = 0.05):
    """A synthetic study result: per pair a naive barrier of 1 that matching lowers to ``matched_barrier`` while
    shortening the distance to ``1 - dist_share``; Taylor estimates off by the given relative errors."""
    from lmc_utils.studies import distance_taylor

    rng = np.random.default_rng(1)
    dist, tay = [], []
    for pair in range(n):
        dist.append({"experiment": "e", "kind": "independent", "pair": pair, "method": "naive", "order": 0,
                     "distance": 10.0, "relative_to_naive": 1.0})
        for method, orders in (("weight", 3), ("activation", 1)):
            for order in range(orders):
                rel = 1 - dist_share + sd * rng.standard_normal()
                dist.append({"experiment": "e", "kind": "independent", "pair": pair, "method": method,
                             "order": order, "distance": 10 * rel, "relative_to_naive": rel})
        rows = [("independent", "naive", 0, 1.0, 1.0), ("spawned", "naive", 0, -0.01, spawned_error)]
        rows += [("independent", "weight", k, matched_barrier, matched_error) for k in range(3)]
        rows += [("independent", "activation", 0, matched_barrier, matched_error)]
        for kind, method, order, actual, err in rows:
            e = err + sd * rng.standard_normal()
            estimate = actual * (1 + e) / (1 - e)  # symmetric relative error e (estimate above actual)
            tay.append({"experiment": "e", "kind": kind, "pair": pair, "method": method, "order": order,
                        "actual": actual, "estimate": estimate})
    tay = pd.DataFrame(tay)
    tay["rel_error"] = distance_taylor.relative_error(tay["actual"], tay["estimate"])
    return distance_taylor.Result(pd.DataFrame(dist), pd.DataFrame(), tay, pd.DataFrame())


def test_verdicts_follow_the_synthetic_numbers():
    from lmc_utils import verdicts
    from lmc_utils.studies import distance_taylor

    criteria = verdicts.load_criteria("01_distance_taylor")

    def got(res):
        return {(r.claim, r.subject): r.verdict for r in distance_taylor.verdicts(res, criteria).itertuples()}

    # the paper's picture: distance -15% while the barrier loses 95%; Taylor 5% off in one basin, 60% off after matching
    held = got(_synthetic(spawned_error=0.05, matched_error=0.6, dist_share=0.15))
    assert set(held.values()) == {"held"} and len(held) == 5
    # the opposite: matching removes as much distance as barrier; Taylor as good after matching as in one basin
    other = got(_synthetic(spawned_error=0.6, matched_error=0.05, dist_share=0.9))
    assert set(other.values()) == {"did not hold"}


def test_distance_claim_counts_pairs_where_matching_leaves_the_barrier():
    """The distance statistic is share of distance removed - 0.5 x share of barrier removed: where
    matching does not lower the barrier at all, a small distance cut still fails the claim (the
    first-declared ratio left such pairs out), and it is finite where the barrier barely moves."""
    from lmc_utils import verdicts
    from lmc_utils.studies import distance_taylor

    criteria = verdicts.load_criteria("01_distance_taylor")
    rows = distance_taylor.verdicts(_synthetic(0.05, 0.6, dist_share=0.1, matched_barrier=1.0), criteria)
    shrink = rows[rows["claim"] == "distance_barely_shrinks"]
    assert list(shrink["verdict"]) == ["did not hold", "did not hold"]
    assert (shrink["n"] == 8).all() and shrink["estimate"].to_numpy() == pytest.approx([0.1, 0.1], abs=0.02)
    barely = distance_taylor.verdicts(_synthetic(0.05, 0.6, dist_share=0.1, matched_barrier=0.999), criteria)
    assert np.isfinite(barely.loc[barely["claim"] == "distance_barely_shrinks", "ci_high"]).all()


def test_sinkhorn_matcher_solves_weight_matching_in_the_study(monkeypatch):
    """matcher="sinkhorn": every weight row comes from the relaxation (one per pair: no group order),
    with the profile's keyword arguments; the other methods are untouched."""
    from lmc_utils import rebasin, verdicts
    from lmc_utils.studies import distance_taylor

    calls = []
    real = rebasin.sinkhorn_weight_matching

    def spy(spec, sa, sb, **kw):
        calls.append(kw)
        return real(spec, sa, sb, **kw)

    monkeypatch.setattr(rebasin, "sinkhorn_weight_matching", spy)
    base = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2}, optimizer="adam",
                           lr=0.01, batch_size=64, epochs=3)
    res = distance_taylor.run({"moons": base}, n_pairs=2, parent_epochs=1, loss_subset=None, match_samples=None,
                              n_orders=3, n_points=3, device="cpu", progress=False, matcher="sinkhorn",
                              sinkhorn={"steps": 20, "sinkhorn_iters": 3, "precompute": True})
    assert len(calls) == 2 and all(c["steps"] == 20 and c["precompute"] for c in calls)
    weight = res.distances[res.distances["method"] == "weight"]
    assert list(weight["order"]) == [0, 0] and len(res.taylor) == 2 * 3 + 2
    frame = distance_taylor.verdicts(res, verdicts.load_criteria("01_distance_taylor"))
    assert (frame["subject"] == "moons / weight").any()
    with pytest.raises(ValueError, match="solver"):
        distance_taylor.run({"moons": base}, 1, 1, None, None, device="cpu", progress=False, matcher="hungarian")


def test_both_matchers_recover_a_planted_permutation():
    from lmc_utils import rebasin

    torch.manual_seed(0)
    a = models.mlp(in_features=2, num_classes=2, width=12, depth=2)
    spec = P.spec_for(a)
    b = models.mlp(in_features=2, num_classes=2, width=12, depth=2)
    b.load_state_dict(P.apply_permutation(spec, P.random_permutation(spec, 4), a.state_dict()))
    for matcher in rebasin.MATCHERS:
        perm = rebasin.align("weight", a, b, matcher=matcher, sinkhorn={"steps": 60})
        back = P.apply_permutation(spec, perm, b.state_dict())
        assert all(torch.allclose(back[k], v) for k, v in a.state_dict().items()), matcher


def _two_models(arch: str):
    """Two independently initialised small models of ``arch`` (mlp: an unpermuted output bias; vgg: BatchNorm,
    whose running statistics are buffers the distance leaves out) and their spec."""
    def make():
        if arch == "mlp":
            return models.mlp(in_features=12, num_classes=5, width=24, depth=3)
        return models.vgg("vgg11", in_channels=1, image_size=28, width_multiplier=0.125)

    torch.manual_seed(0)
    a, b = make(), make()
    if arch == "vgg":  # running statistics that differ between the models (and are not matched on)
        for m in (a, b):
            for buf in m.buffers():
                if buf.is_floating_point():
                    buf.add_(torch.rand_like(buf))
    return a.state_dict(), b.state_dict(), P.spec_for(a)


@pytest.mark.parametrize("arch", ["mlp", "vgg"])
def test_distance_over_sweeps_is_the_distance_measured_after_each_sweep(arch):
    """||a - pi(b)||^2 = ||a||^2 + ||b||^2 - 2 <a, pi(b)> over the matched entries, plus the unpermuted
    ones: the distance derived from weight matching's objective history is the distance measured directly
    to B permuted by the search stopped after that many sweeps (same seeded group orders), sweep 0 is the
    naive distance, the last one the final permutation's, and it never rises."""
    from lmc_utils import rebasin
    from lmc_utils.studies import distance_taylor

    sa, sb, spec = _two_models(arch)
    search = distance_taylor.weight_search(spec, sa, sb, seed=3)
    derived = distance_taylor.distance_over_sweeps(spec, sa, sb, search.objective)
    assert len(derived) == search.sweeps + 1 and search.sweeps >= 3  # several sweeps improved
    naive = distance.l2_distance(sa, sb, spec.buffers)
    final = distance.l2_distance(sa, P.apply_permutation(spec, search.perm, sb), spec.buffers)
    assert derived[0] == pytest.approx(naive, rel=1e-6)
    assert derived[-1] == pytest.approx(final, rel=1e-6) and final < 0.99 * naive
    assert (np.diff(derived) <= 1e-6 * naive).all()
    for s in range(1, search.sweeps):
        partial = rebasin.weight_matching(spec, sa, sb, max_sweeps=s, seed=3)
        measured = distance.l2_distance(sa, P.apply_permutation(spec, partial.perm, sb), spec.buffers)
        assert derived[s] == pytest.approx(measured, rel=1e-6), s
    # the Sinkhorn solver's history (before, after the relaxation) gives its two distances the same way
    relaxed = distance_taylor.weight_search(spec, sa, sb, seed=0, matcher="sinkhorn", sinkhorn={"steps": 20})
    two = distance_taylor.distance_over_sweeps(spec, sa, sb, relaxed.objective)
    measured = distance.l2_distance(sa, P.apply_permutation(spec, relaxed.perm, sb), spec.buffers)
    assert two == pytest.approx([naive, measured], rel=1e-6)


def test_weight_search_is_what_align_solves():
    """The study reads the history from weight_search, and the permutation it applies must stay align's."""
    from lmc_utils import rebasin
    from lmc_utils.studies import distance_taylor

    torch.manual_seed(1)
    a = models.mlp(in_features=12, num_classes=5, width=16, depth=2)
    b = models.mlp(in_features=12, num_classes=5, width=16, depth=2)
    spec = P.spec_for(a)
    for matcher, kw in (("iterative", None), ("sinkhorn", {"steps": 20})):
        for seed in (0, 2):
            got = distance_taylor.weight_search(spec, a.state_dict(), b.state_dict(), seed, matcher, kw).perm
            want = rebasin.align("weight", a, b, seed=seed, matcher=matcher, sinkhorn=kw)
            assert all(torch.equal(got[g], want[g]) for g in want), (matcher, seed)


def test_distance_over_sweeps_figure_is_readable():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmc_utils import plots
    from lmc_utils.figures import readability

    rows = []
    for name, pairs in (("MNIST", 3), ("FashionMNIST", 2)):  # labels as a profile gives them
        for pair in range(pairs):
            for order in range(2):
                n = 3 + (pair + order) % 3  # searches of different lengths
                for s in range(n + 1):
                    rel = 1.0 if s == 0 else 0.9 - 0.02 * min(s, n - 1) + 0.01 * pair
                    rows.append({"experiment": name, "pair": pair, "order": order, "sweep": s,
                                 "distance": 40 * rel, "relative_to_naive": rel})
    fig = plots.plot_distance_over_sweeps(pd.DataFrame(rows), title="L2 distance over the sweeps")
    assert readability.problems(fig) == []
    mean = fig.axes[0].get_lines()[-1]  # the bold mean: stopped searches keep their last value
    assert len(mean.get_xdata()) == 6 and mean.get_ydata()[0] == pytest.approx(1.0)
    plt.close(fig)
