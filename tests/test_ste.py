"""The straight-through estimator, its projection, the plane through three models, and the
three-model verdicts (notebook 03)."""

import numpy as np
import pandas as pd
import pytest
import torch

from lmc_utils import matching, models, profiles, verdicts, zoo
from lmc_utils.claims import quality
from lmc_utils.studies import three_models
from lmc_utils import permutation as P
from lmc_utils.data import NUM_CLASSES, TensorData
from lmc_utils.evaluation import evaluate
from lmc_utils.interpolation import barrier, interpolation_curve, plane_basis, plane_grid
from conftest import fit_briefly


def _data(n=600, shape=(1, 6, 6), classes=10, seed=0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g),
                      classes, "synthetic", "train")


def _mlp(seed, width=16, depth=2):
    torch.manual_seed(seed)
    return models.mlp(in_features=36, width=width, depth=depth).eval()


def test_ste_on_a_permuted_copy_returns_the_inverse_with_zero_barrier():
    data = _data()
    a = fit_briefly(_mlp(0), data)
    spec = P.spec_for(a)
    pi = P.random_permutation(spec, seed=3)
    sa = a.state_dict()
    sb = P.apply_permutation(spec, pi, sa)
    res = matching.ste_matching(a, sa, sb, data, steps=6, lr=0.01, batch_size=100, held_size=100, eval_every=2,
                                progress=False)
    for g in spec.sizes:
        assert torch.equal(res.perm[g], P.inverse(pi)[g])
    aligned = P.apply_permutation(spec, res.perm, sb)
    assert all(torch.equal(aligned[k], sa[k]) for k in sa)
    b = barrier(interpolation_curve(a, sa, aligned, data, n_points=5)).iloc[0]
    assert abs(b["loss"]) < 1e-6 and abs(b["accuracy"]) < 1e-9


def test_ste_returns_the_permutation_with_the_lowest_held_midpoint_loss():
    data = _data(seed=1)
    a, b = fit_briefly(_mlp(0), data), fit_briefly(_mlp(1), data)
    spec = P.spec_for(a)
    sa, sb = a.state_dict(), b.state_dict()
    res = matching.ste_matching(a, sa, sb, data, steps=20, lr=0.05, batch_size=100, held_size=200, eval_every=2,
                                progress=False)
    for g, n in spec.sizes.items():  # valid permutations
        assert torch.equal(torch.sort(res.perm[g]).values, torch.arange(n))
    hist = pd.DataFrame(res.history)
    assert hist["step"].iloc[0] == 0 and hist["step"].iloc[-1] == 20
    assert res.best_step == int(hist.loc[hist["held_loss"].idxmin(), "step"])
    # recompute the held midpoint loss of the returned permutation independently
    mid = {k: 0.5 * (sa[k] + v) for k, v in P.apply_permutation(spec, res.perm, sb).items()}
    held = TensorData(data.x[:200], data.y[:200], 10, "held", "train")
    scratch = _mlp(5)
    scratch.load_state_dict(mid)
    assert evaluate(scratch, held)[0] == pytest.approx(hist["held_loss"].min(), rel=1e-5)
    # the model used as template is left as it was
    assert all(torch.equal(a.state_dict()[k], sa[k]) for k in sa)


def test_ste_moves_away_from_the_weight_matching_start():
    """With a large learning rate the learned copy leaves theta_a and the projection changes:
    gradients do flow straight through the hard permutation."""
    data = _data(seed=2)
    a, b = fit_briefly(_mlp(0, width=24), data), fit_briefly(_mlp(1, width=24), data)
    spec = P.spec_for(a)
    wm = matching.weight_matching(spec, a.state_dict(), b.state_dict()).perm
    seen = []
    orig = matching.ste._project

    def spy(*args, **kwargs):
        out = orig(*args, **kwargs)
        seen.append(out)
        return out

    matching.ste._project = spy
    try:
        matching.ste_matching(a, a.state_dict(), b.state_dict(), data, steps=10, lr=0.1, batch_size=100,
                              held_size=100, init_perm=wm, optimizer="adam", progress=False)
    finally:
        matching.ste._project = orig
    assert len(seen) == 10
    assert any(min(matching.permutation_agreement(p, wm).values()) < 1 for p in seen)


def test_ste_leaves_a_wrong_start_for_the_planted_permutation():
    """Planted: B is a permuted copy of A and the run starts from a wrong permutation (a random one in
    place of WM's). The midpoint loss is lowest at the planted inverse, so STE must leave its start:
    it returns the inverse (zero barrier), not the permutation it started from."""
    data = _data(seed=5)
    a = fit_briefly(_mlp(0, width=24), data)
    spec = P.spec_for(a)
    sa = a.state_dict()
    planted = P.random_permutation(spec, seed=11)
    sb = P.apply_permutation(spec, planted, sa)
    wrong = P.random_permutation(spec, seed=12)
    res = matching.ste_matching.uncached(a, sa, sb, data, steps=20, lr=0.05, batch_size=100, held_size=100,
                                         eval_every=2, init="wm", init_perm=wrong, wm_sweeps=1, progress=False)
    truth = P.inverse(planted)
    assert any(not torch.equal(wrong[g], truth[g]) for g in spec.sizes)
    assert all(torch.equal(res.perm[g], truth[g]) for g in spec.sizes)
    assert res.best_step > 0 and res.history[0]["held_loss"] > min(h["held_loss"] for h in res.history)


def test_ste_budgets_give_the_result_of_runs_stopped_there_and_change_nothing_else():
    data = _data(seed=4)
    a, b = fit_briefly(_mlp(0, width=24), data), fit_briefly(_mlp(1, width=24), data)
    sa, sb = a.state_dict(), b.state_dict()
    kw = dict(lr=0.1, batch_size=100, held_size=100, eval_every=2, progress=False)
    full = matching.ste_matching.uncached(a, sa, sb, data, steps=12, budgets=(4, 8, 20), **kw)
    plain = matching.ste_matching.uncached(a, sa, sb, data, steps=12, **kw)
    for g in full.perm:  # asking for budgets changes nothing else
        assert torch.equal(full.perm[g], plain.perm[g])
    pd.testing.assert_frame_equal(pd.DataFrame(full.history), pd.DataFrame(plain.history))
    assert full.budget_steps == [4, 8, 20]
    for budget, perm, loss in zip(full.budget_steps, full.budget_perms, full.budget_losses):
        capped = matching.ste_matching.uncached(a, sa, sb, data, steps=min(budget, 12), **kw)
        assert all(torch.equal(perm[g], capped.perm[g]) for g in perm), budget
        assert loss == min(h["held_loss"] for h in capped.history)
    with pytest.raises(ValueError, match="multiples of eval_every"):
        matching.ste_matching.uncached(a, sa, sb, data, steps=12, budgets=(5,), **kw)


def test_projection_recovers_a_permutation_and_is_a_fixed_point():
    data = _data()
    a = fit_briefly(_mlp(0, width=20, depth=3), data)
    spec = P.spec_for(a)
    sa = a.state_dict()
    pi = P.random_permutation(spec, seed=7)
    sb = P.apply_permutation(spec, pi, sa)
    got = matching.ste._project(spec, dict(sa), sb, P.identity(spec), max_sweeps=100, seed=0)
    assert all(torch.equal(got[g], P.inverse(pi)[g]) for g in spec.sizes)
    # against a different model: a local optimum no single-group step improves, better than identity
    other = _mlp(9, width=20, depth=3).state_dict()
    got = matching.ste._project(spec, dict(sa), other, P.identity(spec), max_sweeps=100, seed=0)

    def obj(p):
        s = P.apply_permutation(spec, p, other)
        return sum(float((sa[k] * s[k]).sum()) for k in sa)

    assert obj(got) >= obj(P.identity(spec)) - 1e-6
    again = matching.ste._project(spec, dict(sa), other, got, max_sweeps=1, seed=1)
    assert all(torch.equal(again[g], got[g]) for g in spec.sizes)


def test_ste_rejects_bad_arguments():
    data = _data(n=50)
    a = _mlp(0)
    s = a.state_dict()
    with pytest.raises(ValueError, match="held_size"):
        matching.ste_matching(a, s, s, data, held_size=50, progress=False)
    with pytest.raises(ValueError, match="init"):
        matching.ste_matching(a, s, s, data, held_size=10, init="b", progress=False)
    with pytest.raises(ValueError, match="different width"):
        matching.ste_matching(a, s, _mlp(0, width=8).state_dict(), data, held_size=10, progress=False)


@pytest.mark.parametrize("arch,kwargs", [("vgg", {"config": "vgg11", "norm": "batchnorm", "width_multiplier": 0.0625,
                                                   "image_size": 16}),
                                         ("resnet20", {"norm": "batchnorm", "width_multiplier": 0.5})])
def test_ste_runs_on_batchnorm_conv_nets(arch, kwargs):
    data = _data(n=24, shape=(3, 16, 16))
    torch.manual_seed(0)
    a = models.build(arch, **kwargs)
    torch.manual_seed(1)
    b = models.build(arch, **kwargs)
    sa, sb = a.state_dict(), b.state_dict()
    before = {k: v.clone() for k, v in sa.items()}
    res = matching.ste_matching(a, sa, sb, data, steps=2, batch_size=8, held_size=8, eval_every=1, progress=False)
    spec = P.spec_for(a)
    assert set(res.perm) == set(spec.sizes)
    assert all(torch.equal(before[k], sa[k]) for k in sa)  # BN statistics of A untouched


PAPER = quality.strip(profiles.load("paper")["03_ste_three_models"]["experiments"])  # floors out


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_profile_models_run_ste(name):
    """Each paper-profile architecture of notebook 03: build two, one STE step (synthetic data)."""
    config = zoo.TrainConfig(**PAPER[name])
    shape = zoo.INPUT_SHAPES[config.dataset]
    data = _data(n=8, shape=shape, classes=NUM_CLASSES[config.dataset])
    a, b = zoo.build_model(config), zoo.build_model(config.replace(seed=1))
    spec = P.spec_for(a)
    res = matching.ste_matching(a, a.state_dict(), b.state_dict(), data, steps=1, batch_size=4, held_size=4,
                                init_perm=P.identity(spec), wm_sweeps=1, spec=spec, progress=False)
    assert set(res.perm) == set(P.spec_for(a).sizes) and len(res.history) == 2


def test_plane_basis_is_orthonormal_and_reproduces_the_models():
    sa, sb, sc = (_mlp(i).state_dict() for i in range(3))
    keys, a, e1, e2, coords = plane_basis(sa, sb, sc)
    assert float(e1 @ e1) == pytest.approx(1) and float(e2 @ e2) == pytest.approx(1)
    assert abs(float(e1 @ e2)) < 1e-10
    flat = lambda s: torch.cat([s[k].double().reshape(-1) for k in keys])  # noqa: E731
    for name, s in (("b", sb), ("c", sc)):
        x, y = coords[name]
        assert torch.allclose(a + x * e1 + y * e2, flat(s), atol=1e-10)
    assert coords["b"][0] == pytest.approx(float((flat(sb) - flat(sa)).norm()))
    with pytest.raises(ValueError, match="collinear"):
        mid = {k: 0.5 * (sa[k] + sb[k]) for k in sa}
        plane_basis(sa, sb, mid)


def test_plane_grid_evaluates_the_models_at_their_coordinates():
    data = _data(n=100)
    ms = [fit_briefly(_mlp(i), data, steps=10) for i in range(3)]
    states = [m.state_dict() for m in ms]
    grid = plane_grid(ms[0], *states, data, resolution=3, margin=0.1, progress=False)
    assert (grid["point"] == "grid").sum() == 9 and set(grid["point"]) == {"grid", "a", "b", "c"}
    for name, m in zip("abc", ms):
        row = grid[grid["point"] == name].iloc[0]
        loss, acc = evaluate(m, data)
        assert row["loss"] == pytest.approx(loss, rel=1e-4) and row["accuracy"] == pytest.approx(acc)
    # the grid spans the models plus the margin
    g = grid[grid["point"] == "grid"]
    pts = grid[grid["point"] != "grid"]
    assert g["x"].min() < pts["x"].min() and g["y"].max() > pts["y"].max()
    assert all(torch.equal(ms[0].state_dict()[k], states[0][k]) for k in states[0])


CRITERIA = verdicts.load_criteria("03_ste_three_models")


def _result(ste_far_gap: float, n_triples: int = 4, n_orders: int = 3, noise: float = 0.005, seed: int = 0,
            ste_wm_agreement: float = 0.01) -> three_models.Result:
    """Synthetic per-triple tables in :class:`three_models.Result`'s schema: every method removes
    the a–π barriers (0.05 left; 0.3 naive); on π_b(b)–π_c(c) STE's accuracy barrier exceeds WM's by
    ``ste_far_gap``; WM's values vary a little over group orders."""
    rng = np.random.default_rng(seed)
    b, m, ag, al = [], [], [], []
    for t in range(n_triples):
        for method, order in [("naive", 0), *[("weight", k) for k in range(n_orders)], ("activation", 0), ("ste", 0)]:
            key = {"experiment": "x", "triple": t, "method": method, "order": order}
            for pair in three_models.PAIRS:
                acc = 0.3 if method == "naive" else 0.05 + noise * rng.standard_normal()
                if pair == three_models.PAIRS[2] and method == "ste":
                    acc += ste_far_gap
                b.append({**key, "pair": pair, "loss_barrier": acc / 2, "accuracy_barrier": acc})
            m.append({**key, "loss": 0.3, "accuracy": 0.95 - (ste_far_gap if method == "ste" else 0.0),
                      "endpoints_accuracy": 0.97})
            for pair in ("a–b", "a–c"):
                top = {"naive": 0.1, "weight": 0.8, "activation": 0.7, "ste": 0.3}[method] + noise * rng.standard_normal()
                for layer in ("hidden.0", "out"):
                    al.append({**key, "pair": pair, "layer": layer, "u_top": top, "v_top": top, "u_all": 0.1,
                               "v_all": 0.1})
        for pair in ("a–b", "a–c"):
            for k in range(n_orders):
                for comp, share in (("WM vs AM", 0.2), ("WM vs STE", ste_wm_agreement)):
                    for group, units in (("hidden.0", 64), ("hidden.1", 32)):
                        ag.append({"experiment": "x", "triple": t, "pair": pair, "order": k, "comparison": comp,
                                   "group": group, "units": units, "share": share + noise * rng.standard_normal()})
            ag.append({"experiment": "x", "triple": t, "pair": pair, "order": 0, "comparison": "AM vs STE",
                       "group": "hidden.0", "units": 64, "share": 0.01})
    hist = pd.DataFrame([{"experiment": "x", "triple": 0, "pair": "a–b", "step": s, "held_loss": 0.1, "batch_loss": 0.1,
                          "best_step": 0} for s in (0, 10)])
    return three_models.Result(pd.DataFrame(b), pd.DataFrame(m), pd.DataFrame(ag), pd.DataFrame(al), hist,
                               pd.DataFrame())


def _verdict(frame, claim):
    return frame.set_index("claim").loc[claim]


def test_verdicts_follow_the_numbers():
    frame = three_models.verdicts(_result(0.25), CRITERIA)
    verdicts.check_declared(frame, CRITERIA)
    assert (frame["n"] == 4).all() and (frame["repeats"] == 3).all()
    got = frame.set_index("claim")["verdict"].to_dict()
    assert got == {"ste_barrier_comparable": "held", "ste_aligns_less": "held", "ste_far_edge_worse": "held",
                   "ste_merge_worse": "held", "wm_am_agree": "held", "wm_ste_disagree": "held"}
    # STE's gain over no permutation (0.3 - 0.1) is 2/7 of WM's (0.8 - 0.1)
    assert _verdict(frame, "ste_aligns_less")["estimate"] == pytest.approx(2 / 7, abs=0.02)
    assert _verdict(frame, "ste_far_edge_worse")["estimate"] == pytest.approx(0.25, abs=0.01)
    # no gap between STE and WM (both barriers at the same level): the far-edge claims did not hold
    frame = three_models.verdicts(_result(0.0), CRITERIA)
    assert _verdict(frame, "ste_far_edge_worse")["verdict"] == "did not hold"
    assert _verdict(frame, "ste_merge_worse")["verdict"] == "did not hold"
    # STE stays on WM's permutation: the disagreement claim did not hold
    frame = three_models.verdicts(_result(0.0, ste_wm_agreement=0.6), CRITERIA)
    assert _verdict(frame, "wm_ste_disagree")["verdict"] == "did not hold"
    # a gap near the threshold with noise across triples: inconclusive
    frame = three_models.verdicts(_result(0.02, noise=0.02, seed=3), CRITERIA)
    assert _verdict(frame, "ste_far_edge_worse")["verdict"] == "inconclusive"


def test_verdicts_average_group_orders_within_a_triple():
    """The WM side of a gap is the mean over its group orders; the triples, not the orders, are the units."""
    res = _result(0.1, n_triples=3, n_orders=2, noise=0.0)
    far = res.barriers["pair"] == three_models.PAIRS[2]
    wm = far & (res.barriers["method"] == "weight")
    res.barriers.loc[wm & (res.barriers["order"] == 1), "accuracy_barrier"] += 0.04  # one order is worse
    row = _verdict(three_models.verdicts(res, CRITERIA), "ste_far_edge_worse")
    assert row["n"] == 3 and row["repeats"] == 2
    assert row["estimate"] == pytest.approx(0.1 - 0.02)
    assert row["repeat_sd"] == pytest.approx(np.std([0.1, 0.06], ddof=1))


def test_verdicts_need_every_criterion_declared():
    partial = {k: v for k, v in CRITERIA.items() if k != "wm_am_agree"}
    with pytest.raises(verdicts.CriteriaError, match="wm_am_agree"):
        three_models.verdicts(_result(0.1), partial)


def test_triples_of_permuted_copies_measure_zero_barriers_and_full_agreement():
    """b and c are permuted copies of a: every method recovers the permutation, so every barrier is
    zero, the merged model is a, all methods agree, and the verdicts say so (comparable barriers and
    WM-AM agreement held; STE's worse far edge and its disagreement with WM did not)."""
    data = _data(n=200)
    parts = {k: [] for k in ("barriers", "merged", "agreement", "alignment", "ste_history")}
    accuracy = {}
    for t in range(2):
        a = fit_briefly(_mlp(t, width=12), data, steps=20)
        accuracy[t] = evaluate(a, data)[1]
        spec = P.spec_for(a)
        copies = []
        for s in (1, 2):
            m = _mlp(0, width=12)
            m.load_state_dict(P.apply_permutation(spec, P.random_permutation(spec, seed=10 * t + s), a.state_dict()))
            copies.append(m.eval())
        got = three_models.measure_triple(a, *copies, data, data, data.x[:100],
                                          dict(steps=2, batch_size=50, held_size=100, eval_every=1), n_orders=2,
                                          n_points=3, top_k=3, seed=t)
        for k in parts:
            f = got[k] if isinstance(got[k], pd.DataFrame) else pd.DataFrame(got[k])
            parts[k].append(f.assign(experiment="tiny", triple=t))
    res = three_models.Result(**{k: pd.concat(v, ignore_index=True) for k, v in parts.items()}, planes=pd.DataFrame())
    matched = res.barriers[res.barriers["method"] != "naive"]
    assert matched["loss_barrier"].abs().max() < 1e-5 and matched["accuracy_barrier"].abs().max() < 1e-9
    assert res.barriers[res.barriers["method"] == "naive"]["loss_barrier"].max() > 0
    merged = res.merged[res.merged["method"] != "naive"]
    assert np.allclose(merged["accuracy"], merged["triple"].map(accuracy))
    assert (res.agreement["share"] == 1.0).all()
    assert set(res.barriers["order"][res.barriers["method"] == "weight"]) == {0, 1}
    got = three_models.verdicts(res, CRITERIA).set_index("claim")["verdict"].to_dict()
    assert got["ste_barrier_comparable"] == "held" and got["wm_am_agree"] == "held"
    assert got["ste_far_edge_worse"] == "did not hold" and got["wm_ste_disagree"] == "did not hold"
    assert got["ste_aligns_less"] == "did not hold"  # STE aligns exactly as WM does


def test_sinkhorn_matcher_gives_one_weight_order_and_recovers_permuted_copies():
    """matcher="sinkhorn": WM by the relaxation (no group order: one order whatever n_orders says),
    still exact on permuted copies; an unknown solver is refused."""
    data = _data(n=200)
    a = fit_briefly(_mlp(0, width=12), data, steps=20)
    spec = P.spec_for(a)
    copies = []
    for s in (1, 2):
        m = _mlp(0, width=12)
        m.load_state_dict(P.apply_permutation(spec, P.random_permutation(spec, seed=s), a.state_dict()))
        copies.append(m.eval())
    ste = dict(steps=2, batch_size=50, held_size=100, eval_every=1)
    got = three_models.measure_triple(a, *copies, data, data, data.x[:100], ste, n_orders=3, n_points=3, top_k=3,
                                      matcher="sinkhorn", sinkhorn={"steps": 60})
    barriers = pd.DataFrame(got["barriers"])
    weight = barriers[barriers["method"] == "weight"]
    assert set(weight["order"]) == {0} and weight["loss_barrier"].abs().max() < 1e-5
    with pytest.raises(ValueError, match="solver"):
        three_models.align(a, copies[0], data, data.x[:100], ste, matcher="lap")


@pytest.mark.parametrize("arch,kwargs", [
    ("mlp", {"in_features": 36, "width": 16, "depth": 3}),
    ("vgg", {"config": "vgg11", "norm": "batchnorm", "width_multiplier": 0.0625, "image_size": 16}),
    ("resnet20", {"norm": "layernorm", "width_multiplier": 0.5})])
def test_permuted_spectra_equal_the_spectra_of_the_permuted_state(arch, kwargs):
    from lmc_utils import spectral

    torch.manual_seed(0)
    model = models.build(arch, **kwargs)
    spec = P.spec_for(model)
    state = model.state_dict()
    perm = P.random_permutation(spec, seed=4)
    fast = three_models.permuted_spectra(spec, perm, state, spectral.spectra(state))
    slow = spectral.spectra(P.apply_permutation(spec, perm, state))
    assert set(fast) == set(slow)
    for layer in slow:
        assert torch.allclose(fast[layer].s, slow[layer].s)
        # the same decomposition: it reconstructs the permuted matrix, and matches the fresh one up to signs
        w = fast[layer].u @ torch.diag(fast[layer].s) @ fast[layer].v.T
        assert torch.allclose(w, slow[layer].u @ torch.diag(slow[layer].s) @ slow[layer].v.T, atol=1e-10)
        d = spectral.diagonal_alignment(fast[layer], slow[layer])
        assert torch.allclose(d["u"], torch.ones_like(d["u"]), atol=1e-6)
        assert torch.allclose(d["v"], torch.ones_like(d["v"]), atol=1e-6)


def test_summary_tables_average_orders_within_triples():
    res = _result(0.25, n_triples=2, n_orders=3)
    t = three_models.tables(res)
    assert set(t) == {"barriers", "merged", "singular_alignment", "agreement", "ste_runs"}
    bar = t["barriers"].set_index(["method", "pair"])
    assert (t["barriers"]["n"] == 2).all()  # triples, not triples x orders
    assert bar.loc[("naive", three_models.PAIRS[0]), "accuracy_barrier_mean"] == pytest.approx(0.3)
    ag = t["agreement"]
    assert ag.loc[ag["comparison"] == "WM vs STE", "paper_high"].iloc[0] == pytest.approx(0.0125)


def _history(best_steps, last=20):
    """Synthetic STE histories (evaluations every 10 steps), one run per entry of ``best_steps``."""
    rows = []
    for run, best in enumerate(best_steps):
        for step in range(0, last + 1, 10):
            rows.append({"experiment": "x", "triple": run, "pair": "a–b", "step": step, "batch_loss": 0.1,
                         "best_step": best, "held_loss": 0.02 - (0.005 if step == best else 0.0) - 0.0001 * step})
    return pd.DataFrame(rows)


def test_ste_runs_flag_runs_the_step_budget_may_have_cut_short():
    runs = three_models.ste_runs(_history([10, 20, 0]))
    assert runs["best_at_last_evaluation"].tolist() == [False, True, False]
    assert runs["steps"].tolist() == [20, 20, 20] and runs["best_step"].tolist() == [10, 20, 0]
    assert runs["held_loss_start"].iloc[0] == pytest.approx(0.02)
    assert runs["held_loss_best"].iloc[1] == pytest.approx(0.02 - 0.005 - 0.002)


def test_plot_ste_history_marks_the_returned_permutation():
    import matplotlib

    matplotlib.use("Agg")
    from lmc_utils import plots

    fig = plots.plot_ste_history(_history([10, 20]), title="t")
    ax = fig.axes[0]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [tuple(d.get_xdata()) for d in dots] == [(10,), (20,)]
    # relative to the WM start: run 0's returned permutation is 0.006 nats (30%) below its 0.02 start
    assert dots[0].get_ydata()[0] == pytest.approx(-30.0)
    assert "weight-matching" in ax.get_xlabel()  # no init column: the default WM start
    matplotlib.pyplot.close(fig)
    fig = plots.plot_ste_history(_history([10, 20]).assign(init="random"))
    assert "random permutation" in fig.axes[0].get_xlabel() and "weight-matching" not in fig.axes[0].get_xlabel()
    matplotlib.pyplot.close(fig)


def test_three_model_plots_tell_methods_apart_by_more_than_colour():
    import matplotlib

    matplotlib.use("Agg")
    from lmc_utils import plots

    t = three_models.tables(_result(0.25, n_triples=2))
    fig = plots.plot_singular_alignment(t["singular_alignment"])
    lines = {l.get_label(): l for l in fig.axes[0].get_lines()}
    am, ste = lines["activation matching"], lines["straight-through estimator"]
    assert am.get_marker() != ste.get_marker() and am.get_linestyle() != ste.get_linestyle()
    matplotlib.pyplot.close(fig)
    fig = plots.plot_three_model_barriers(t["barriers"])
    markers = {c.get_label(): c.lines[0].get_marker() for ax in fig.axes for c in ax.containers}
    matplotlib.pyplot.close(fig)
    assert markers["activation matching"] != markers["straight-through estimator"]


def test_plane_labels_are_dark_on_a_light_box():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_rgb

    from lmc_utils import plots

    data = _data(n=60)
    ms = [fit_briefly(_mlp(i), data, steps=5) for i in range(3)]
    grid = plane_grid(ms[0], *(m.state_dict() for m in ms), data, resolution=3, margin=0.1, progress=False)
    fig = plots.plot_planes(grid.assign(method="weight"))
    texts = [t for ax in fig.axes for t in ax.texts]
    assert len(texts) == 6  # three models x (loss, accuracy)
    for t in texts:
        assert sum(to_rgb(t.get_color())) < 0.5  # dark text
        assert sum(to_rgb(t.get_bbox_patch().get_facecolor())) > 2.5  # on a light box
    matplotlib.pyplot.close(fig)


def test_ste_defaults_are_the_reference_protocol_at_every_profile():
    """ste_matching's defaults are Ainsworth et al.'s protocol (src/mnist_mlp_ste2.py: theta~ from theta_a,
    SGD lr 1e-2 momentum 0.9, batches of 1000, a warm-started projection of up to 100 sweeps, 250 epochs),
    and every notebook at every profile runs it; only the length (cap, patience) differs."""
    import inspect

    assert matching.STE_PROTOCOL == {"init": "wm", "optimizer": "sgd", "lr": 1e-2, "momentum": 0.9,
                                     "weight_decay": 0.0, "batch_size": 1000, "wm_sweeps": 100, "steps": 15_000}
    defaults = inspect.signature(matching.ste_matching).parameters
    for key, value in matching.STE_PROTOCOL.items():
        assert defaults[key].default == value, key
    for profile in profiles.PROFILES:
        p = profiles.load(profile)
        nb03, nb08, ste10 = p["03_ste_three_models"], p["08_merge_many"], p["10_regime_ladder"]["ste"]
        assert (nb03["ste_optimizer"], nb03["ste_lr"], nb03["ste_momentum"], nb03["ste_weight_decay"],
                nb03["ste_init"], nb03["ste_projection_sweeps"]) == ("sgd", 0.01, 0.9, 0.0, "wm", 100), profile
        assert (nb08["ste_lr"], nb08["ste_projection_sweeps"]) == (0.01, 100), profile
        assert (ste10["lr"], ste10["wm_sweeps"], ste10.get("optimizer", "sgd")) == (0.01, 100, "sgd"), profile
        if profile != "smoke":  # smoke's 200-example data cannot hold batches of 1000
            assert nb03["ste_batch_size"] == nb08["ste_batch_size"] == ste10["batch_size"] == 1000, profile
    paper = profiles.load("paper")["03_ste_three_models"]
    assert paper["ste_steps"] == 15_000 and paper["ste_patience"] is not None  # run to convergence


def test_describe_budgets_says_whether_ste_reaches_the_papers_agreement():
    """The words under the STE ladder: agreement at each budget and at convergence, compared with Ito
    et al.'s range, and the converged far edge and merge against WM's."""
    def ladder(final):
        return pd.DataFrame({"experiment": "e", "budget": ["50", "1000", "converged"],
                             "agreement_mean": [0.9, 0.5, final], "steps_mean": [50, 1000, 2400],
                             "far_accuracy_barrier_mean": [0.3, 0.2, 0.25], "merged_accuracy_mean": [0.6, 0.7, 0.65]})
    barriers = pd.DataFrame({"experiment": "e", "method": ["weight", "weight"], "pair": list(three_models.PAIRS[1:]),
                             "accuracy_barrier_mean": [0.01, 0.05]})
    merged = pd.DataFrame({"experiment": "e", "method": ["weight"], "accuracy_mean": [0.8]})
    far = three_models.describe_budgets(ladder(0.2), barriers, merged, label=str.upper)
    assert "**E**" in far and "90% of the hidden units after 50 steps" in far and "20% at convergence" in far
    assert "2,400 steps" in far and "16 times the top" in far
    assert "25.0% with STE and 5.0% with WM" in far and "65.0% accurate with STE and 80.0% with WM" in far
    assert "within Ito et al." in three_models.describe_budgets(ladder(0.01), barriers, merged)
    assert three_models.describe_budgets(pd.DataFrame(), barriers, merged) == ""
