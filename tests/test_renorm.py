"""Re-normalisation (REPAIR, RESCALE, RESHIFT, RESET, data-independent) and activation statistics."""

import copy

import pytest
import torch
from torch import nn

from lmc_utils import activations, models, renorm
from lmc_utils.data import TensorData
from lmc_utils.interpolation import interpolate


def _model(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "mlp":
        return models.mlp(in_features=12, num_classes=3, width=16, depth=3).eval()
    if kind == "mlp_ln":
        return models.mlp(in_features=12, num_classes=3, width=16, depth=3, norm="layernorm").eval()
    if kind == "mlp_nobias":
        return models.mlp(in_features=12, num_classes=3, width=16, depth=3, bias=False).eval()
    if kind == "vgg":
        return models.vgg("vgg11", in_channels=1, num_classes=3, image_size=8, norm="none", width_multiplier=0.0625).eval()
    if kind == "vgg_ln":
        return models.vgg("vgg11", in_channels=1, num_classes=3, image_size=8, norm="layernorm",
                          width_multiplier=0.0625).eval()
    if kind == "resnet":
        return models.resnet20(in_channels=1, num_classes=3, norm="none", width_multiplier=0.125).eval()
    if kind == "vgg_bn":
        return models.vgg("vgg11", in_channels=1, num_classes=3, image_size=8, norm="batchnorm",
                          width_multiplier=0.0625).eval()
    raise ValueError(kind)


def _inputs(kind: str, n: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (12,) if kind.startswith("mlp") else (1, 8, 8)
    return torch.randn(n, *shape, generator=g)


def _midpoint(kind: str):
    a, b = _model(kind, 0), _model(kind, 1)
    mid = _model(kind, 2)
    mid.load_state_dict(interpolate(a.state_dict(), b.state_dict(), 0.5))
    return a, b, mid


KINDS = ["mlp", "mlp_ln", "vgg", "vgg_ln", "resnet"]


@pytest.mark.parametrize("kind", KINDS)
def test_repair_at_lambda_zero_leaves_the_endpoint_unchanged(kind):
    a, b, _ = _midpoint(kind)
    x = _inputs(kind)
    goal = renorm.goal_statistics([a, b], [1.0, 0.0], x)
    for sequential in (False, True):
        fixed = renorm.repair(a, goal, x, sequential=sequential)
        assert type(fixed) is type(a) and fixed is not a
        with torch.no_grad():
            torch.testing.assert_close(fixed(x), a(x), rtol=1e-4, atol=1e-5)
        assert set(fixed.state_dict()) == set(a.state_dict())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", renorm.MODES)
def test_sequential_correction_reaches_the_goal_statistics(kind, mode):
    a, b, mid = _midpoint(kind)
    x = _inputs(kind)
    goal = renorm.goal_statistics([a, b], [0.5, 0.5], x)
    before = {k: v.clone() for k, v in mid.state_dict().items()}
    fixed = renorm.correct(mid, goal, x, mode=mode, sequential=True)
    assert all(torch.equal(before[k], v) for k, v in mid.state_dict().items()), "input model was modified"
    names = [p.name for p in renorm.correction_points(mid)]
    after = activations.output_moments(fixed, names, x)
    orig = activations.output_moments(mid, names, x)
    for n in names:
        mean, std = after[n]
        gm, gs = goal[n]
        if mode in ("repair", "rescale"):
            torch.testing.assert_close(std, gs, rtol=1e-3, atol=1e-5)
        if mode in ("repair", "reshift"):
            torch.testing.assert_close(mean, gm, rtol=1e-3, atol=1e-4)
    if mode == "reshift":  # only the first point is guaranteed to keep its spread
        first = names[0]
        torch.testing.assert_close(after[first][1], orig[first][1], rtol=1e-4, atol=1e-6)


def test_one_pass_is_sequential_with_one_batch_and_close_with_several():
    a, b, mid = _midpoint("mlp")
    x = _inputs("mlp")
    goal = renorm.goal_statistics([a, b], [0.5, 0.5], x)
    seq = renorm.repair(mid, goal, x, sequential=True)
    one = renorm.repair(mid, goal, x, batch_size=len(x))
    for p, q in zip(seq.parameters(), one.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)
    names = [p.name for p in renorm.correction_points(mid)]
    several = renorm.repair(mid, goal, x, batch_size=12)
    s = activations.output_moments(several, names, x)
    torch.testing.assert_close(s[names[0]][0], goal[names[0]][0], rtol=1e-4, atol=1e-5)  # batch means average exactly
    assert not torch.allclose(s[names[-1]][1], goal[names[-1]][1], rtol=1e-4)


def test_average_goal_gives_every_channel_the_layer_mean_std():
    a, b, mid = _midpoint("mlp")
    x = _inputs("mlp")
    goal = renorm.goal_statistics([a, b], [0.5, 0.5], x)
    fixed = renorm.rescale(mid, goal, x, average=True, sequential=True)
    for n, (mean, std) in activations.output_moments(fixed, [p.name for p in renorm.correction_points(mid)], x).items():
        torch.testing.assert_close(std, torch.full_like(std, float(goal[n][1].mean())), rtol=1e-3, atol=1e-6)


def test_goal_statistics_is_the_weighted_combination():
    a, b, _ = _midpoint("vgg")
    x = _inputs("vgg")
    ga, gb = renorm.goal_statistics([a], [1.0], x), renorm.goal_statistics([b], [1.0], x)
    g = renorm.goal_statistics([a, b], [0.25, 0.75], x)
    for n in g:
        torch.testing.assert_close(g[n][0], 0.25 * ga[n][0] + 0.75 * gb[n][0])
        torch.testing.assert_close(g[n][1], 0.25 * ga[n][1] + 0.75 * gb[n][1])
    with pytest.raises(ValueError, match="one weight per model"):
        renorm.goal_statistics([a, b], [1.0], x)


def test_correction_keeps_a_pruned_model_exactly_as_sparse():
    a, b, mid = _midpoint("mlp")
    with torch.no_grad():
        for p in mid.parameters():
            if p.ndim == 2:
                p.mul_((torch.rand_like(p) > 0.7).float())
    x = _inputs("mlp")
    fixed = renorm.repair(mid, renorm.goal_statistics([a], [1.0], x), x, sequential=True)
    for (k, p), q in zip(mid.state_dict().items(), fixed.state_dict().values()):
        if p.ndim == 2:
            assert torch.equal(p == 0, q == 0), k


def test_bias_free_model_rescale_keeps_no_bias_and_repair_creates_one():
    a, b, mid = _midpoint("mlp_nobias")
    x = _inputs("mlp_nobias")
    goal = renorm.goal_statistics([a, b], [0.5, 0.5], x)
    assert set(renorm.rescale(mid, goal, x).state_dict()) == set(mid.state_dict())
    repaired = renorm.repair(mid, goal, x, sequential=True)
    assert "hidden.0.bias" in repaired.state_dict() and "hidden.0.bias" not in mid.state_dict()
    mean, _ = activations.output_moments(repaired, ["norms.2"], x)["norms.2"]
    torch.testing.assert_close(mean, goal["norms.2"][0], rtol=1e-3, atol=1e-4)


def test_dead_channel_is_not_rescaled():
    a, b, mid = _midpoint("mlp")
    with torch.no_grad():
        mid.hidden[0].weight[3] = 0.0  # channel 3 is constant (its bias)
    x = _inputs("mlp")
    goal = renorm.goal_statistics([a, b], [0.5, 0.5], x)
    fixed = renorm.rescale(mid, goal, x)
    assert torch.isfinite(fixed.hidden[0].bias).all()
    assert fixed.hidden[0].bias[3] == mid.hidden[0].bias[3]


def test_bad_mode_and_foreign_goal_are_errors():
    a, b, mid = _midpoint("mlp")
    x = _inputs("mlp")
    goal = renorm.goal_statistics([a], [1.0], x)
    with pytest.raises(ValueError, match="unknown mode"):
        renorm.correct(mid, goal, x, mode="rescaled")
    v = _model("vgg", 0)
    with pytest.raises(ValueError, match="lack points"):
        renorm.correct(v, goal, _inputs("vgg"))


def test_reset_and_data_independent_reset_on_batchnorm():
    m = _model("vgg_bn", 0)
    x = _inputs("vgg_bn", 128)
    data = TensorData(x, torch.zeros(128, dtype=torch.long), 3, "synthetic", "train")
    r = renorm.reset(m, data, batch_size=128)
    assert r is not m
    bn = r.features[0].norm
    conv_out = r.features[0].conv(x)
    torch.testing.assert_close(bn.running_mean, conv_out.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    ind = renorm.per_batch(m)  # evaluates with batch statistics, as BatchNorm in train mode does
    with torch.no_grad():
        torch.testing.assert_close(ind.eval()(x), copy.deepcopy(m).train()(x))
        assert not torch.allclose(ind(x), m(x), atol=1e-3)


@pytest.mark.parametrize("kind", ["mlp", "vgg_ln", "resnet"])
def test_data_independent_repair_hits_the_goal_on_every_batch(kind):
    a, b, mid = _midpoint(kind)
    x = _inputs(kind)
    goal = renorm.goal_statistics([a, b], [0.5, 0.5], x)
    ind = renorm.per_batch(mid, goal, mode="repair").eval()
    first = renorm.correction_points(mid)[0].name
    names = [n for n, m in ind.named_modules() if isinstance(m, renorm.BatchCorrection)]
    assert len(names) == len(renorm.correction_points(mid))
    y = activations.output_moments(ind, [names[0]], x[:32], batch_size=32)[names[0]]
    torch.testing.assert_close(y[0], goal[first][0], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(y[1], goal[first][1], rtol=1e-2, atol=1e-3)


def test_layer_statistics_of_an_mlp_by_hand():
    m = _model("mlp", 0)
    x = _inputs("mlp", 100)
    stats = activations.layer_statistics(m, x, batch_size=30)
    assert list(stats) == ["acts.0", "acts.1", "acts.2"]
    pre = m.hidden[0](x).double()
    post = pre.clamp_min(0)
    s = stats["acts.0"]
    torch.testing.assert_close(s.pre_mean, pre.mean(0).detach())
    torch.testing.assert_close(s.pre_std, pre.std(0, unbiased=False).detach())
    torch.testing.assert_close(s.post_std, post.std(0, unbiased=False).detach())
    torch.testing.assert_close(s.zero_share, (post == 0).double().mean(0))
    table = activations.statistics_table(m, x)
    assert list(table["module"]) == list(stats) and (table["zero_share"].between(0, 1)).all()


def test_layer_statistics_of_a_resnet_cover_every_relu():
    m = _model("resnet", 0)
    stats = activations.layer_statistics(m, _inputs("resnet", 8))
    relus = [n for n, mod in m.named_modules() if isinstance(mod, nn.ReLU)]
    assert list(stats) == relus
    assert all(s.pre_std.shape == s.zero_share.shape for s in stats.values())


def test_homogeneous_interpolation_endpoints_and_bias_weights():
    from lmc_utils.studies.renormalisation import homogeneous_interpolate

    a, b, mid = _midpoint("mlp")
    sa, sb = a.state_dict(), b.state_dict()
    for lam, ref in ((0.0, sa), (1.0, sb)):
        out = homogeneous_interpolate(mid, sa, sb, lam)
        assert all(torch.allclose(out[k], ref[k]) for k in ref)
    out = homogeneous_interpolate(mid, sa, sb, 0.5)
    torch.testing.assert_close(out["hidden.0.weight"], 0.5 * (sa["hidden.0.weight"] + sb["hidden.0.weight"]))
    torch.testing.assert_close(out["hidden.1.bias"], 0.25 * (sa["hidden.1.bias"] + sb["hidden.1.bias"]))
    torch.testing.assert_close(out["out.bias"], 0.0625 * (sa["out.bias"] + sb["out.bias"]))


def test_barrier_rows_and_steps_to_accuracy():
    import pandas as pd

    from lmc_utils.measure.barrier import barrier_rows
    from lmc_utils.studies.renormalisation import steps_to_accuracy

    c = pd.DataFrame({"k": "x", "lam": [0, 0.5, 1], "loss": [1.0, 3.0, 2.0], "accuracy": [0.9, 0.5, 0.8]})
    r = barrier_rows(c, ["k"], midpoint=True).iloc[0]
    assert r["loss_barrier"] == pytest.approx(1.5) and r["accuracy_barrier"] == pytest.approx(0.35)
    assert r["midpoint_accuracy"] == 0.5 and "split" not in r
    with_ends = barrier_rows(c.assign(split="test"), ["k"], endpoints=("loss", "accuracy"))
    assert list(with_ends.columns) == ["k", "split", "loss_barrier", "accuracy_barrier", "loss_a", "loss_b",
                                       "accuracy_a", "accuracy_b"]
    assert with_ends.iloc[0][["loss_a", "loss_b", "accuracy_a", "accuracy_b"]].tolist() == [1.0, 2.0, 0.9, 0.8]
    h = pd.DataFrame({"start": ["a"] * 3 + ["b"] * 3, "steps": [10, 20, 30] * 2,
                      "train_accuracy": [0.5, 0.91, 0.95, 0.1, 0.2, 0.3]})
    s = steps_to_accuracy(h, 0.9).set_index("start")
    assert s.loc["a", "steps_to_target"] == 20 and s.loc["b", "steps_to_target"] != s.loc["b", "steps_to_target"]


# --- the study's verdicts on synthetic results ------------------------------------------------

def _synthetic_result(n_pairs: int = 8, n_orders: int = 3, seed: int = 0):
    """A Result whose numbers say: REPAIR/RESCALE beat none, RESHIFT hurts, RESCALE is below
    REPAIR, sequential REPAIR equals REPAIR up to noise, matching is needed, the midpoint
    collapses, bias removal lowers the accuracy barrier but not the loss barrier, and the WM
    midpoint re-trains faster."""
    import numpy as np
    import pandas as pd

    from lmc_utils.studies.renormalisation import Result

    rng = np.random.default_rng(seed)
    means = {"none": 0.50, "REPAIR": 0.70, "RESCALE": 0.62, "indep. RESCALE": 0.58, "RESHIFT": 0.40,
             "SEQ REPAIR": None, "RESET": 0.75}
    rows, collapse = [], []
    for i in range(n_pairs):
        pair_shift = rng.normal(0, 0.05)  # pairs differ; the paired differences stay consistent
        for method, orders in (("weight", n_orders), ("naive", 1)):
            for k in range(orders):
                accs = {}
                for v, m in means.items():
                    if m is None:
                        accs[v] = accs["REPAIR"] + rng.normal(0, 0.01)
                    else:
                        accs[v] = m + pair_shift + rng.normal(0, 0.01) - (0.3 if method == "naive" else 0)
                for exp, variants in (("mlp_plain", [v for v in accs if v != "RESET"]), ("vgg", ["none", "RESET"])):
                    for v in variants:
                        rows.append({"experiment": exp, "pair": i, "method": method, "order": k, "variant": v,
                                     "loss": 1 - accs[v], "accuracy": accs[v]})
                for exp in ("mlp_plain", "vgg"):
                    for layer, ratio in ((0, 0.9), (1, 0.4 + rng.normal(0, 0.02))):
                        collapse.append({"experiment": exp, "pair": i, "method": method, "order": k, "layer": layer,
                                         "ratio": ratio})
    bias = []
    for i in range(n_pairs):
        for k in range(n_orders):
            for curve, acc_drop, loss_bump in (("with biases: WM", 0.30, 1.0), ("with biases: WM + RESCALE", 0.10, 0.3),
                                               ("with biases: WM, homogeneous", 0.12, 0.9), ("no biases: WM", 0.10, 0.95)):
                a, l = acc_drop + rng.normal(0, 0.01), loss_bump + rng.normal(0, 0.02)
                for lam, acc, loss in ((0.0, 0.85, 0.4), (0.5, 0.85 - a, 0.4 + l), (1.0, 0.85, 0.4)):
                    bias.append({"pair": i, "order": k, "curve": curve, "lam": lam, "loss": loss, "accuracy": acc})
    hist = []
    for i in range(n_pairs):
        for start, reach in (("naive midpoint", None), ("WM midpoint", 2), ("AM midpoint", 2), ("fresh init", 6)):
            for epoch in range(1, 9):
                acc = 0.9 if reach is not None and epoch >= reach else 0.5
                hist.append({"pair": i, "start": start, "order": 0, "epoch": epoch, "steps": 32 * epoch,
                             "train_accuracy": acc})
    return Result(ablation=pd.DataFrame(rows), collapse=pd.DataFrame(collapse), curves=pd.DataFrame(),
                  activations=pd.DataFrame(), bias_curves=pd.DataFrame(bias), retraining=pd.DataFrame(hist),
                  target_accuracy=0.85, bias_experiment="mlp_plain", retrain_experiment="mlp_plain",
                  experiments={"mlp_plain": "plain", "vgg": "batchnorm"}, layer_info=_planted_info(n_pairs, seed=seed),
                  widths=_planted_widths(n_pairs, seed=seed), width_experiment="mlp_plain")


def test_study_verdicts_follow_the_synthetic_numbers():
    from lmc_utils import verdicts
    from lmc_utils.studies import renormalisation

    criteria = verdicts.load_criteria("04_renormalisation")
    frame = renormalisation.verdicts(_synthetic_result(), criteria)
    verdicts.check_declared(frame, criteria)
    got = {(r.claim, r.subject): r.verdict for r in frame.itertuples()}
    assert got[("variance_collapse", "mlp_plain / weight")] == "held"
    assert got[("renorm_beats_none", "mlp_plain / weight / REPAIR")] == "held"
    assert got[("renorm_beats_none", "mlp_plain / weight / RESCALE")] == "held"
    assert got[("renorm_beats_none", "vgg / weight / RESET")] == "held"
    assert got[("reshift_hurts", "mlp_plain / weight")] == "held"
    assert got[("rescale_beats_repair", "mlp_plain / weight")] == "did not hold"
    assert got[("sequential_repair_helps", "mlp_plain / weight")] == "inconclusive"
    assert got[("matching_needed", "mlp_plain / REPAIR")] == "held"
    assert got[("bias_removal_lowers_accuracy_barrier", "mlp_plain / homogeneous interpolation")] == "held"
    assert got[("loss_barrier_remains", "mlp_plain / trained without biases")] == "held"
    assert got[("retrains_faster", "mlp_plain / WM midpoint vs fresh init")] == "held"
    assert got[("retrains_faster", "mlp_plain / WM midpoint vs naive midpoint")] == "held"
    row = frame.set_index(["claim", "subject"]).loc[("rescale_beats_repair", "mlp_plain / weight")]
    assert row["n"] == 8 and row["repeats"] == 3 and abs(row["estimate"] - (-0.08)) < 0.02
    # never reaching the target counts as budget (256 steps) + one epoch (32): 288 - 64 = 224 steps
    r = frame.set_index(["claim", "subject"]).loc[("retrains_faster", "mlp_plain / WM midpoint vs naive midpoint")]
    assert r["estimate"] == 224


def test_study_verdicts_flip_when_the_numbers_do():
    """The same result with RESHIFT above none and RESCALE above REPAIR by 5 points on every pair."""
    from lmc_utils import verdicts
    from lmc_utils.studies import renormalisation

    res = _synthetic_result(seed=1)
    abl = res.ablation
    abl.loc[abl["variant"] == "RESHIFT", "accuracy"] += 0.2
    rep = abl[abl["variant"] == "REPAIR"].set_index(["experiment", "pair", "method", "order"])["accuracy"]
    idx = abl["variant"] == "RESCALE"
    keys = list(zip(abl.loc[idx, "experiment"], abl.loc[idx, "pair"], abl.loc[idx, "method"], abl.loc[idx, "order"]))
    abl.loc[idx, "accuracy"] = [rep[k] + 0.05 for k in keys]
    criteria = verdicts.load_criteria("04_renormalisation")
    got = {(r.claim, r.subject): r.verdict for r in renormalisation.verdicts(res, criteria).itertuples()}
    assert got[("reshift_hurts", "mlp_plain / weight")] == "did not hold"
    assert got[("rescale_beats_repair", "mlp_plain / weight")] == "held"


def test_ablation_summary_averages_orders_within_a_pair_first():
    import pandas as pd

    from lmc_utils.studies.midpoint_variants import ablation_summary

    t = pd.DataFrame({"experiment": "e", "method": "weight", "variant": "none", "pair": [0, 0, 0, 1],
                      "order": [0, 1, 2, 0], "accuracy": [0.1, 0.2, 0.3, 0.6], "loss": [1.0, 1.0, 1.0, 2.0]})
    r = ablation_summary(t).iloc[0]
    assert r["n"] == 2 and r["orders"] == 3
    assert r["accuracy_mean"] == pytest.approx(0.4)  # (0.2 + 0.6) / 2, not the mean of four rows (0.3)


def test_batched_retraining_equals_retraining_one_by_one():
    import numpy as np
    import pandas as pd

    from lmc_utils import zoo
    from lmc_utils.studies import renormalisation

    base = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2}, optimizer="sgd", lr=0.05,
                           batch_size=64, epochs=2, seed=0)
    pairs = [(zoo.train(base.replace(seed=2 * i), device="cpu", progress=False),
              zoo.train(base.replace(seed=2 * i + 1), device="cpu", progress=False)) for i in range(2)]
    x = torch.randn(64, 2)
    retrain = base.replace(seed=20_000, epochs=2)
    single = renormalisation.retraining(pairs, retrain, x, n_orders=2, device="cpu", progress=False)
    batched = renormalisation.retraining(pairs, retrain.replace(trainer="batched"), x, n_orders=2, device="cpu",
                                         progress=False)
    # both trainers record the same columns (l2_from_start included)
    assert list(single.columns) == list(batched.columns)
    assert len(single) == len(batched) == 2 * 5 * 2
    key = ["pair", "start", "order", "epoch"]
    pd.testing.assert_frame_equal(single[key], batched[key])
    np.testing.assert_allclose(single["train_loss"], batched["train_loss"], rtol=1e-4)


# --- layer information, the width sweep and bias removal after training (issue #40) -----------

def _moons_pairs(n_pairs: int = 1, bias: bool = True):
    from lmc_utils import zoo

    base = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 2, "bias": bias},
                           optimizer="sgd", lr=0.05, batch_size=64, epochs=2, seed=0)
    return base, [(zoo.train(base.replace(seed=2 * i), device="cpu", progress=False),
                   zoo.train(base.replace(seed=2 * i + 1), device="cpu", progress=False)) for i in range(n_pairs)]


def test_layer_information_is_the_mean_magnitude_and_mean_squared_gradient():
    import torch.nn.functional as F

    from lmc_utils.core import data as data_mod
    from lmc_utils.studies import plain_networks

    _, pairs = _moons_pairs()
    data = data_mod.load("moons", "train", subset=128)
    info = plain_networks.layer_information(pairs, data, methods=["weight", "naive"], n_batches=4, batch_size=8,
                                             progress=False)
    assert set(info["model"]) == {"endpoint A", "endpoint B", "naive", "weight"}
    a = pairs[0][0].model.eval()
    g = torch.Generator().manual_seed(0)  # pair 0: the mini-batches fisher_scores draws with seed 0
    layers = [m for m in a.modules() if isinstance(m, nn.Linear)]
    sq = [torch.zeros_like(m.weight, dtype=torch.float64) for m in layers]
    for _ in range(4):
        idx = torch.randint(0, len(data), (8,), generator=g)
        a.zero_grad()
        F.cross_entropy(a(data.x[idx]), data.y[idx]).backward()
        for s, m in zip(sq, layers):
            s += m.weight.grad.double() ** 2
    got = info[info["model"] == "endpoint A"].sort_values("layer")
    assert len(got) == len(layers)
    for (_, r), s, m in zip(got.iterrows(), sq, layers):
        assert r["magnitude"] == pytest.approx(float(m.weight.detach().abs().mean()), rel=1e-6)
        assert r["fisher"] == pytest.approx(float((s / 4).mean()), rel=1e-4)


def _planted_info(n_pairs: int = 6, matched_magnitude: float = 0.9, fisher_gain: float = 10.0, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_pairs):
        for layer in range(3):
            for model, order, mag, fisher in (("endpoint A", 0, 1.0, 1e-3), ("endpoint B", 0, 1.0, 1e-3),
                                              ("naive", 0, 0.7, 1e-4), ("weight", 0, matched_magnitude, 1e-4 * fisher_gain),
                                              ("weight", 1, matched_magnitude, 1e-4 * fisher_gain)):
                rows.append({"pair": i, "model": model, "order": order, "layer": layer, "module": f"l{layer}",
                             "magnitude": mag + rng.normal(0, 0.01), "fisher": fisher * np.exp(rng.normal(0, 0.05))})
    return pd.DataFrame(rows)


def _planted_widths(n_pairs: int = 6, wide_barrier: float = 0.45, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_pairs):
        for width, barrier in ((64, 0.5), (128, 0.48), (256, wide_barrier)):
            for method, orders in (("weight", 2), ("naive", 1)):
                for k in range(orders):
                    b = barrier + (0.3 if method == "naive" else 0) + rng.normal(0, 0.01)
                    rows.append({"width": width, "pair": i, "method": method, "order": k, "accuracy": 0.85 - b,
                                 "endpoint_accuracy": 0.85, "midpoint_barrier": b, "loss": 1.0})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("magnitude, gain, wide, expect", [
    (0.9, 10.0, 0.45, ("held", "held", "held", "held")),
    (0.5, 0.1, 0.10, ("did not hold", "did not hold", "held", "did not hold")),
    (0.9, 10.0, 0.60, ("held", "held", "did not hold", "held"))])
def test_layer_information_and_width_verdicts_follow_planted_numbers(magnitude, gain, wide, expect):
    from lmc_utils import verdicts
    from lmc_utils.studies import plain_networks, renormalisation

    res = _synthetic_result()
    res.layer_info = _planted_info(matched_magnitude=magnitude, fisher_gain=gain)
    res.widths, res.width_experiment = _planted_widths(wide_barrier=wide), "mlp_plain"
    criteria = verdicts.load_criteria("04_renormalisation")
    frame = renormalisation.verdicts(res, criteria)
    verdicts.check_declared(frame, criteria)
    got = {(r.claim, r.subject): r.verdict for r in frame.itertuples()}
    width = "mlp_plain / width 64 vs width 256 / WM"
    assert (got[("matching_keeps_magnitude", "mlp_plain / WM vs naive midpoint")],
            got[("matching_raises_fisher", "mlp_plain / WM vs naive midpoint")],
            got[("plain_barrier_falls_with_width", width)], got[("plain_barrier_falls_slowly", width)]) == expect
    summary = plain_networks.width_summary(res.widths)
    assert list(summary["width"].unique()) == [64, 128, 256] and (summary["pairs"] == 6).all()
    ratios = plain_networks.layer_information_ratios(res.layer_info)
    assert ratios[ratios["model"] == "naive"]["log10_fisher_vs_naive"].abs().max() < 1e-12


def test_biases_removed_then_fine_tuned():
    from lmc_utils import zoo
    from lmc_utils.studies import plain_networks

    base, pairs = _moons_pairs()
    free = base.replace(model={**base.model, "bias": False}, epochs=1, lr=0.01)
    state = plain_networks.biases_removed(pairs[0][0], free)
    assert state and not any(k.endswith("bias") for k in state)
    assert all(torch.equal(v, pairs[0][0].model.state_dict()[k]) for k, v in state.items())
    tuned = plain_networks.finetuned_without_biases(pairs, free, device="cpu", progress=False)
    assert len(tuned) == 1 and all(not any(k.endswith("bias") for k in t.model.state_dict()) for t in tuned[0])
    assert tuned[0][0].config.seed == pairs[0][0].config.seed and len(tuned[0][0].history) == 1
    again = zoo.train(free.replace(seed=pairs[0][0].config.seed), device="cpu", init_state=state, progress=False)
    for k, v in again.model.state_dict().items():  # exactly what training from the bias-free weights gives
        assert torch.allclose(v, tuned[0][0].model.state_dict()[k])
    with pytest.raises(ValueError, match="without biases"):
        plain_networks.finetuned_without_biases(pairs, base, device="cpu", progress=False)
