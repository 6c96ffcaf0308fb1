"""The straight-through estimator, its projection, the plane through three models, and the
three-model verdicts (notebook 03)."""

import numpy as np
import pandas as pd
import pytest
import torch

from lmc_utils import matching, models, profiles, zoo
from lmc_utils.studies import three_models
from lmc_utils import permutation as P
from lmc_utils.data import NUM_CLASSES, TensorData
from lmc_utils.evaluation import evaluate
from lmc_utils.interpolation import barrier, interpolation_curve, plane_basis, plane_grid


def _data(n=600, shape=(1, 6, 6), classes=10, seed=0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g),
                      classes, "synthetic", "train")


def _mlp(seed, width=16, depth=2):
    torch.manual_seed(seed)
    return models.mlp(in_features=36, width=width, depth=depth).eval()


def _fit(model, data, steps=30):
    """A few full-batch Adam steps so the model is not at its random initialisation."""
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    return model.eval()


def test_ste_on_a_permuted_copy_returns_the_inverse_with_zero_barrier():
    data = _data()
    a = _fit(_mlp(0), data)
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
    a, b = _fit(_mlp(0), data), _fit(_mlp(1), data)
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
    a, b = _fit(_mlp(0, width=24), data), _fit(_mlp(1, width=24), data)
    spec = P.spec_for(a)
    wm = matching.weight_matching(spec, a.state_dict(), b.state_dict()).perm
    seen = []
    orig = matching._project

    def spy(*args, **kwargs):
        out = orig(*args, **kwargs)
        seen.append(out)
        return out

    matching._project = spy
    try:
        matching.ste_matching(a, a.state_dict(), b.state_dict(), data, steps=10, lr=0.1, batch_size=100,
                              held_size=100, init_perm=wm, progress=False)
    finally:
        matching._project = orig
    assert len(seen) == 10
    assert any(min(matching.permutation_agreement(p, wm).values()) < 1 for p in seen)


def test_projection_recovers_a_permutation_and_is_a_fixed_point():
    data = _data()
    a = _fit(_mlp(0, width=20, depth=3), data)
    spec = P.spec_for(a)
    sa = a.state_dict()
    pi = P.random_permutation(spec, seed=7)
    sb = P.apply_permutation(spec, pi, sa)
    got = matching._project(spec, dict(sa), sb, P.identity(spec), max_sweeps=100, seed=0)
    assert all(torch.equal(got[g], P.inverse(pi)[g]) for g in spec.sizes)
    # against a different model: a local optimum no single-group step improves, better than identity
    other = _mlp(9, width=20, depth=3).state_dict()
    got = matching._project(spec, dict(sa), other, P.identity(spec), max_sweeps=100, seed=0)

    def obj(p):
        s = P.apply_permutation(spec, p, other)
        return sum(float((sa[k] * s[k]).sum()) for k in sa)

    assert obj(got) >= obj(P.identity(spec)) - 1e-6
    again = matching._project(spec, dict(sa), other, got, max_sweeps=1, seed=1)
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


PAPER = profiles.load("paper")["03_ste_three_models"]["experiments"]


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
    ms = [_fit(_mlp(i), data, steps=10) for i in range(3)]
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


def _tables(ste_far_gap: float, seed: int = 0):
    """Synthetic per-triple tables: STE's pi_b(b)-pi_c(c) accuracy barrier exceeds WM's by ``ste_far_gap``."""
    rng = np.random.default_rng(seed)
    rows_b, rows_m, rows_al, rows_ag = [], [], [], []
    for t in range(4):
        for m in three_models.METHODS:
            for pair in three_models.PAIRS:
                acc = 0.3 if m == "naive" else 0.05
                if pair == three_models.PAIRS[2] and m == "ste":
                    acc += ste_far_gap
                rows_b.append({"triple": t, "method": m, "pair": pair, "loss_barrier": acc / 2,
                               "accuracy_barrier": acc + 0.01 * rng.standard_normal()})
            rows_m.append({"triple": t, "method": m, "loss": 0.3, "accuracy": 0.9, "endpoints_accuracy": 0.95})
            for pair in ("a–b", "a–c"):
                top = {"naive": 0.1, "weight": 0.8, "activation": 0.7, "ste": 0.3}[m] + 0.01 * rng.standard_normal()
                rows_al.append({"triple": t, "pair": pair, "method": m, "layer": "hidden.0", "u_top": top,
                                "v_top": top, "u_all": 0.1, "v_all": 0.1})
        for pair in ("a–b", "a–c"):
            for comp, share in (("WM vs AM", 0.2), ("WM vs STE", 0.01), ("AM vs STE", 0.01)):
                rows_ag.append({"triple": t, "pair": pair, "group": "hidden.0", "comparison": comp, "share": share})
    return pd.DataFrame(rows_b), pd.DataFrame(rows_m), pd.DataFrame(rows_ag), pd.DataFrame(rows_al)


def test_describe_three_models_follows_the_numbers():
    text = three_models.describe_three_models("x", *_tables(0.25))
    assert "Claim 1 (STE finds a low barrier but does not align the large singular vectors) held" in text
    assert "Claim 2 (the π_b(b)–π_c(c) barrier is larger with STE than with WM) held" in text
    assert "Claim 3 (WM agrees with AM on far more units than with STE) held" in text
    assert "a gap of +2" in text
    text = three_models.describe_three_models("x", *_tables(-0.03))
    assert "than with WM) did not hold" in text
    summary = three_models.agreement_summary(_tables(0.0)[2])
    assert set(summary["comparison"]) == {"WM vs AM", "WM vs STE", "AM vs STE"}
    assert summary.loc[summary["comparison"] == "WM vs STE", "paper_high"].iloc[0] == pytest.approx(0.0125)


def _history(best_steps, last=20):
    """Synthetic STE histories (evaluations every 10 steps), one run per entry of ``best_steps``."""
    rows = []
    for run, best in enumerate(best_steps):
        for step in range(0, last + 1, 10):
            rows.append({"triple": run, "pair": "a–b", "step": step, "batch_loss": 0.1, "best_step": best,
                         "held_loss": 0.02 - (0.005 if step == best else 0.0) - 0.0001 * step})
    return pd.DataFrame(rows)


def test_describe_says_whether_the_step_budget_cut_the_ste_search_short():
    tables = _tables(0.25)
    text = three_models.describe_three_models("x", *tables, ste_history=_history([10, 10]))
    assert "in no run at the last evaluation" in text and "returned a permutation other than its WM start in 2 of 2" in text
    text = three_models.describe_three_models("x", *tables, ste_history=_history([20, 0]))
    assert "in 1 of 2 runs at the last evaluation" in text and "in 1 of 2 runs;" in text


def test_plot_ste_history_marks_the_returned_permutation():
    import matplotlib

    matplotlib.use("Agg")
    from lmc_utils import plots

    fig = plots.plot_ste_history(_history([10, 20]), title="t")
    ax = fig.axes[0]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [tuple(d.get_xdata()) for d in dots] == [(10,), (20,)]
    matplotlib.pyplot.close(fig)
