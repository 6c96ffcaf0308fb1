"""Notebook 07's helpers and protocol: retraining from a trained model, planted-permutation
recovery, and the verdicts on synthetic results."""

import math

import pandas as pd
import pytest
import torch

from lmc_utils import permutation as P
from lmc_utils import verdicts, zoo
from lmc_utils.distance import l2_distance
from lmc_utils.studies import implicit_bias, same_basin

MOONS = zoo.TrainConfig(dataset="moons", arch="mlp", model={"width": 16, "depth": 1}, optimizer="sgd", lr=0.05,
                        batch_size=64, epochs=2)


def test_retrain_config_schedule_and_parent():
    r = zoo.retrain_config(MOONS, [(0.1, 3), (0.01, 2)], data_seed=7)
    assert r.parent == MOONS and r.epochs == 5 and r.data_seed == 7 and r.trainer == "single"
    factors = [r.lr * zoo.lr_factor(r, step, steps_per_epoch=10) for step in range(50)]
    assert factors[:30] == pytest.approx([0.1] * 30) and factors[30:] == pytest.approx([0.01] * 20)
    one = zoo.retrain_config(MOONS, [(0.2, 1)])
    assert one.schedule == "constant" and one.lr == 0.2 and one.epochs == 1
    assert one.key != r.key != MOONS.key
    for bad in ([], [(0.1, 1)] * 3, [(0.0, 1)], [(0.1, 0)]):
        with pytest.raises(ValueError, match="phases"):
            zoo.retrain_config(MOONS, bad)


def test_retrained_copy_records_its_distance_to_the_original():
    original = zoo.get(MOONS, device="cpu", progress=False)
    copy = zoo.get(zoo.retrain_config(MOONS, [(0.2, 2), (0.02, 1)]), device="cpu", progress=False)
    dist = [h["l2_from_start"] for h in copy.history]
    assert len(dist) == 3 and all(d > 0 for d in dist)
    assert dist[-1] == pytest.approx(l2_distance(original.model.state_dict(), copy.model.state_dict()), rel=1e-6)
    # a model trained from scratch records its distance from initialisation
    init = zoo.build_model(MOONS).state_dict()
    assert original.history[-1]["l2_from_start"] == pytest.approx(
        l2_distance(init, original.model.state_dict()), rel=1e-6)


def _perturbed(model, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    other = same_basin._copy_with(model, model.state_dict())
    with torch.no_grad():
        for p in other.parameters():
            p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=gen))
    return other


@pytest.mark.parametrize("arch,model", [("mlp", {"width": 24, "depth": 3}),
                                        ("vgg", {"config": "vgg11", "norm": "batchnorm", "width_multiplier": 0.125})])
def test_planted_permutation_recovered_in_a_basin_not_across(arch, model):
    cfg = zoo.TrainConfig(dataset="mnist", arch=arch, model=model)
    a = zoo.build_model(cfg).eval()
    inputs = torch.randn(256, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    near = _perturbed(a, 0.01, seed=1)  # same basin: a small move from A
    # activation matching only on the MLP: in this untrained VGG the last blocks have units that are
    # dead on every input (all-zero correlations), which no activation statistic can tell apart
    methods = ["weight", "activation"] if arch == "mlp" else ["weight"]
    rec = same_basin.planted_recovery(a, near, methods, inputs, planted_seeds=[3, 4])
    assert len(rec) == 2 * len(methods) and rec["exact"].all() and (rec["share_recovered"] == 1.0).all()
    assert (rec["live_share"] > 0.5).all() and (rec["share_recovered_live"] == 1.0).all()
    if arch == "vgg":  # dead units: activation matching recovers every live unit, not every unit
        am = same_basin.planted_recovery(a, near, ["activation"], inputs, planted_seeds=[3])
        assert am["live_share"].iloc[0] < 1 and am["share_recovered_live"].iloc[0] == 1.0
        assert am["share_recovered"].iloc[0] < 1
    far = zoo.build_model(cfg.replace(seed=1)).eval()  # an independent model
    rec = same_basin.planted_recovery(a, far, ["weight"], inputs, planted_seeds=[3, 4])
    assert not rec["exact"].any() and rec["share_recovered"].max() < 0.5


def test_pair_distances_include_bn_statistics_and_fall_after_matching():
    cfg = zoo.TrainConfig(dataset="mnist", arch="vgg", model={"config": "vgg11", "norm": "batchnorm",
                                                              "width_multiplier": 0.125})
    a = zoo.build_model(cfg).eval()
    spec = P.spec_for(a)
    b = same_basin._copy_with(a, P.apply_permutation(spec, P.random_permutation(spec, 5), a.state_dict()))
    with torch.no_grad():
        for m in b.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(4.0)  # 1 -> 4 in every channel: only the statistics differ after matching
    rows = {r["alignment"]: r for r in same_basin.pair_distances(a, b)}
    assert rows["weight"]["l2_weights_only"] == pytest.approx(0.0, abs=1e-6)
    n_channels = sum(m.num_features for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert rows["weight"]["l2"] == pytest.approx(3.0 * math.sqrt(n_channels), rel=1e-6)
    assert rows["naive"]["l2_weights_only"] > 1.0


def _synthetic(same_barrier: float, indep_barrier: float, share_same: float) -> same_basin.Result:
    bar, rec, dist = [], [], []
    for kind in same_basin.KINDS:
        for i in range(4):
            noise = 0.001 * i
            for method in ("naive", "weight"):
                for reset in (False, True):
                    acc = same_barrier if kind != "independent" else (0.5 if method == "naive" else indep_barrier)
                    acc = acc / 4 if reset and kind == "independent" else acc
                    bar.append({"kind": kind, "pair": i, "method": method, "reset": reset, "split": "test",
                                "loss_barrier": acc, "accuracy_barrier": acc + noise, "accuracy_a": 0.9,
                                "accuracy_b": 0.9})
            for s in range(2):
                share = share_same if kind != "independent" else 0.1
                rec.append({"kind": kind, "pair": i, "method": "weight", "planted": s, "share_recovered": share + noise,
                            "exact": share == 1.0, "share_recovered_live": share, "live_share": 1.0})
            for alignment, l2 in (("naive", 2.0 if kind != "independent" else 30.0), ("weight", 20.0)):
                dist.append({"kind": kind, "pair": i, "alignment": alignment, "l2": l2 + noise, "l2_weights_only": l2})
    return same_basin.Result(pd.DataFrame(bar), pd.DataFrame(), pd.DataFrame(rec), pd.DataFrame(dist),
                             pd.DataFrame(), pd.DataFrame(), has_bn=True)


def test_verdicts_on_synthetic_results():
    criteria = verdicts.load_criteria("07_same_basin")
    good = same_basin.verdicts({"x": _synthetic(0.001, 0.3, 0.999)}, criteria)
    verdicts.check_declared(good, criteria)
    by = good.set_index("subject")["verdict"]
    assert by["x: retrained, naive, no RESET"] == "held"
    assert by["x: spawned vs independent + weight"] == "held"
    assert by["x: independent + weight"] == "held"  # RESET lowers the matched barrier (0.3 -> 0.075)
    assert by["x: retrained, weight"] == "held" and by["x: independent, weight"] == "held"
    assert by["x: retrained (naive) / independent (WM)"] == "held"
    bad = same_basin.verdicts({"x": _synthetic(0.2, 0.2, 0.5)}, criteria).set_index("subject")["verdict"]
    assert bad["x: retrained, naive, no RESET"] == "did not hold"
    assert bad["x: retrained, weight"] == "did not hold"
    assert bad["x: spawned vs independent + weight"] == "did not hold"


def test_study_runs_end_to_end_on_moons():
    from lmc_utils import data

    test, train = data.load("moons", "test"), data.load("moons", "train")
    res = same_basin.run(MOONS, n_pairs=2, parent_epochs=1, retrain_phases=[(0.2, 1), (0.02, 1)], eval_data=test,
                         reset_data=train, match_inputs=train.x[:500], methods=["naive", "weight", "activation"],
                         n_planted=2, n_points=3, lrs=[0.02, 0.05], prune_sparsities=[0.5], seed=0, device="cpu",
                         progress=False)
    assert not res.has_bn
    assert len(res.barriers) == 3 * 2 * 3  # kinds x pairs x methods (no RESET without BatchNorm)
    assert len(res.recovery) == 3 * 2 * 2 * 2 and len(res.retraining) == 2 * 2
    assert set(res.lr_barriers["variant"]) == {"trained", "degraded"}
    assert set(res.lr_barriers.loc[res.lr_barriers["variant"] == "degraded", "lr"]) == {0.05}
    tabs = same_basin.tables({"moons": res})
    assert {"07_barriers", "07_recovery", "07_distances", "07_retraining", "07_lr"} <= set(tabs)
    frame = same_basin.verdicts({"moons": res}, verdicts.load_criteria("07_same_basin"))
    verdicts.check_declared(frame, verdicts.load_criteria("07_same_basin"))
    reset = frame[frame["claim"] == "reset_needed_by_rebasin"]  # no BatchNorm: inconclusive by regime
    assert list(reset["verdict"]) == ["inconclusive"] and reset["subject"].str.startswith("not judged").all()
    assert {"larger_lr_lower_barrier", "larger_lr_lower_barrier_degraded"} <= set(frame["claim"])
    # pruning curves by learning rate: rates x models x sparsities (0 = unpruned, 0.5) x re-normalisation
    pr = res.lr_pruning
    assert len(pr) == 2 * 4 * 2 * 2 and set(pr["seed"]) == {0, 1, 2, 3}
    dense = pr[pr["sparsity"] == 0].pivot_table(index=["lr", "model"], columns="renorm", values="accuracy")
    assert (dense[False] == dense[True]).all()  # the unpruned model is not re-normalised
    assert len(tabs["07_lr_pruning"]) == 2 * 2 * 2 and (tabs["07_lr_pruning"]["n"] == 4).all()
    prunes = frame[frame["claim"] == "larger_lr_prunes_better"]
    assert len(prunes) == 2 and (prunes["n"] == 4).all()  # as pruned and after REPAIR, one unit per seed


# --- claims 5 and 6: weight decay, initialisation, pruning by learning rate -------------------------


def test_bias_configs_share_the_base_arm_and_vary_one_field():
    base = MOONS.replace(weight_decay=0)  # an int 0 from a yaml file: the same config as 0.0
    arms = implicit_bias.bias_configs(base, [0.0, 0.01, 0.1])
    assert set(arms) == {("weight_decay", 0.0), ("weight_decay", 0.01), ("weight_decay", 0.1),
                         ("init", "kaiming_uniform"), ("init", "kaiming_normal")}
    assert arms[("weight_decay", 0.0)].key == arms[("init", "kaiming_uniform")].key  # trained once
    assert arms[("weight_decay", 0.1)].weight_decay == 0.1 and "init" not in arms[("weight_decay", 0.1)].model
    normal = arms[("init", "kaiming_normal")]
    assert normal.model == {**MOONS.model, "init": "kaiming_normal"} and normal.weight_decay == 0.0
    assert len({c.key for c in arms.values()}) == 4
    with pytest.raises(ValueError, match="non-negative"):
        implicit_bias.bias_configs(base, [-0.1])
    with pytest.raises(ValueError, match="unknown init"):
        implicit_bias.bias_configs(base, [0.0], inits=["xavier"])


def test_kaiming_normal_redraws_the_initial_weights_of_the_same_seed():
    cfg = zoo.TrainConfig(dataset="fashion_mnist", arch="mlp", model={"width": 128, "depth": 3, "norm": "layernorm"})
    uniform = zoo.build_model(cfg).state_dict()
    normal = zoo.build_model(cfg.replace(model={**cfg.model, "init": "kaiming_normal"})).state_dict()
    again = zoo.build_model(cfg.replace(model={**cfg.model, "init": "kaiming_normal"})).state_dict()
    w_u, w_n = uniform["hidden.1.weight"], normal["hidden.1.weight"]  # fan_in 128
    assert float(w_u.abs().max()) <= 1 / math.sqrt(128) + 1e-6  # PyTorch's default: U(-1/sqrt(k), 1/sqrt(k))
    assert float(w_n.std()) == pytest.approx(math.sqrt(2 / 128), rel=0.05)  # N(0, 2 / fan_in)
    assert float(w_n.abs().max()) > 1 / math.sqrt(128)
    assert float(normal["hidden.1.bias"].abs().max()) == 0.0 and float(uniform["hidden.1.bias"].abs().max()) > 0
    assert all(torch.equal(normal[k], again[k]) for k in normal)  # deterministic from the seed
    assert torch.equal(uniform["norms.0.weight"], normal["norms.0.weight"])  # LayerNorm starts at (1, 0) in both


def _bias_result(wd_barriers: dict, wd_endpoints: dict, init_barriers: dict, init_l2: dict) -> implicit_bias.BiasResult:
    bar, dist = [], []
    for i in range(4):
        noise = 0.002 * i
        for wd, b in wd_barriers.items():
            bar.append({"study": "weight_decay", "value": wd, "pair": i, "method": "weight", "reset": False,
                        "split": "test", "loss_barrier": b, "accuracy_barrier": b + noise,
                        "accuracy_a": wd_endpoints[wd] + noise, "accuracy_b": wd_endpoints[wd]})
        for init, b in init_barriers.items():
            bar.append({"study": "init", "value": init, "pair": i, "method": "weight", "reset": False, "split": "test",
                        "loss_barrier": b, "accuracy_barrier": b + noise, "accuracy_a": 0.85, "accuracy_b": 0.85})
            for stage in ("init", "trained"):
                dist.append({"study": "init", "value": init, "pair": i, "stage": stage, "alignment": "weight",
                             "l2": init_l2[init] * (1 + noise)})
    return implicit_bias.BiasResult(pd.DataFrame(bar), pd.DataFrame(dist), pd.DataFrame(), has_bn=False,
                                    judge_weight_decay=0.01)


def test_bias_verdicts_on_synthetic_results():
    criteria = verdicts.load_criteria("07_same_basin")
    good = implicit_bias.bias_verdicts(_bias_result({0.0: 0.3, 0.01: 0.1, 0.1: 0.05, 1.0: 0.2},
                                                    {0.0: 0.86, 0.01: 0.87, 0.1: 0.85, 1.0: 0.6},
                                                    {"kaiming_uniform": 0.1, "kaiming_normal": 0.4},
                                                    {"kaiming_uniform": 5.0, "kaiming_normal": 12.0}), criteria)
    by = good.set_index("subject")["verdict"]
    assert by["wd 0 - wd 0.01, weight"] == "held"
    assert by["wd 0.01 (best) - wd 1 (largest), endpoint accuracy"] == "held"  # the best of the others is 0.01
    assert by["Kaiming normal - uniform, weight"] == "held"
    assert by["Kaiming normal / uniform, trained, after WM"] == "held"
    bad = implicit_bias.bias_verdicts(_bias_result({0.0: 0.1, 0.01: 0.3, 0.1: 0.3, 1.0: 0.3},
                                                   {0.0: 0.86, 0.01: 0.85, 0.1: 0.85, 1.0: 0.9},
                                                   {"kaiming_uniform": 0.4, "kaiming_normal": 0.1},
                                                   {"kaiming_uniform": 5.0, "kaiming_normal": 4.0}), criteria)
    assert set(bad["verdict"]) == {"did not hold"}
    assert "wd 0 (best) - wd 1 (largest), endpoint accuracy" in set(bad["subject"])


def test_bias_study_runs_end_to_end_and_every_claim_gets_a_row():
    from lmc_utils import data

    test, train = data.load("moons", "test"), data.load("moons", "train")
    bias = implicit_bias.run_bias(MOONS, [0.0, 0.01, 0.3], 2, test, train, train.x[:300], methods=["weight"],
                                  n_points=3, device="cpu", progress=False, degrade_epochs=1)
    assert bias.judge_weight_decay == 0.01  # the median by default
    # 3 weight decays + 2 initialisations (one shared with wd 0), 2 pairs, one method
    assert len(bias.barriers) == 5 * 2 and set(bias.barriers["reset"]) == {False}
    shared = bias.barriers.set_index(["study", "value", "pair"])["accuracy_barrier"].sort_index()
    assert shared.loc[("weight_decay", 0.0)].tolist() == shared.loc[("init", "kaiming_uniform")].tolist()
    assert len(bias.distances) == 5 * 2 * 2 * 2  # arms x pairs x stages x alignments
    assert len(bias.history) == 5 * 2 * 2 * MOONS.epochs and (bias.history["l2_from_start"] > 0).all()
    # the weight-decay extras: 3 weight decays x 4 models x 2 quantities; 3 x 2 pairs x (2 endpoints + 3
    # corrections); the judged weight decay's 2 pairs degraded (one method)
    assert len(bias.compression) == 3 * 4 * 2 and set(bias.compression["quantity"]) == set(implicit_bias.COMPRESSION_QUANTITIES)
    n_params = sum(p.numel() for p in zoo.build_model(MOONS).parameters())
    assert (bias.compression.loc[bias.compression["quantity"] == "parameter magnitude", "n"] == n_params).all()
    assert (bias.compression_hist.groupby(["value", "quantity"])["count"].sum()
            == bias.compression.groupby(["value", "quantity"])["n"].sum()).all()  # every value in a bin, per arm
    assert len(bias.renorm) == 3 * 2 * 5 and set(bias.renorm["variant"]) >= set(implicit_bias.RENORM_VARIANTS)
    assert len(bias.degraded) == 2 and set(bias.degraded["value"]) == {0.01}
    tabs = implicit_bias.bias_tables({"moons": bias})
    assert set(tabs) == {"07_weight_decay", "07_init", "07_init_distances", "07_init_history",
                         "07_weight_decay_compression", "07_repair_rescale_by_weight_decay", "07_weight_decay_degraded"}
    assert len(tabs["07_weight_decay"]) == 3 and (tabs["07_weight_decay"]["n"] == 2).all()
    assert len(tabs["07_repair_rescale_by_weight_decay"]) == 3 * 4 and (tabs["07_repair_rescale_by_weight_decay"]["n"] == 2).all()
    deg = tabs["07_weight_decay_degraded"]
    assert list(zip(deg["weight_decay"], deg["variant"])) == [(0.0, "trained"), (0.01, "trained"), (0.01, "degraded")]
    from lmc_utils.figures import readability
    from lmc_utils.figures import same_basin as figs

    for fig in (figs.plot_weight_decay_compression(bias.compression_hist, title="Moons MLP"),
                figs.plot_repair_rescale_by_weight_decay(tabs["07_repair_rescale_by_weight_decay"], title="Moons MLP"),
                figs.plot_weight_decay(tabs["07_weight_decay"], title="Moons MLP", degraded=deg)):
        assert readability.problems(fig) == []
    with pytest.raises(ValueError, match="judge_weight_decay"):
        implicit_bias.run_bias(MOONS, [0.0, 0.01], 1, test, train, train.x, judge_weight_decay=0.5)
    criteria = verdicts.load_criteria("07_same_basin")
    frame = same_basin.verdicts({}, criteria, bias_rows={"moons": implicit_bias.bias_verdicts(bias, criteria)})
    assert {"weight_decay_lowers_barrier", "too_much_weight_decay_degrades", "init_changes_barrier",
            "init_distance_persists", "weight_decay_compresses", "rescale_robust_to_weight_decay",
            "weight_decay_lowers_barrier_degraded"} <= set(frame.loc[~frame["subject"].str.startswith("not judged"), "claim"])
    lr = frame[frame["claim"] == "larger_lr_prunes_better"]  # no learning-rate study: inconclusive by regime
    assert list(lr["verdict"]) == ["inconclusive"] and lr["subject"].str.startswith("not judged").all()


def test_compression_values_count_every_parameter_and_unit_and_bin_zeros_first():
    cfg = zoo.TrainConfig(dataset="mnist", arch="mlp", model={"width": 24, "depth": 3, "norm": "layernorm"})
    model = zoo.build_model(cfg).eval()
    values = implicit_bias.compression_values(model, torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    assert values["parameter magnitude"].size == sum(p.numel() for p in model.parameters())
    assert values["channel activation"].size == 3 * 24 and (values["channel activation"] >= 0).all()
    counts = implicit_bias.compression_histogram(pd.Series([0.0, 1e-9, 0.5, 1e3]).to_numpy())
    assert counts.sum() == 4 and counts[0] == 2 and counts[-1] == 1  # zeros and tiny values first, huge last


def _wd_extras(ratio: float, rescale_gain: float, degraded_barrier: float) -> implicit_bias.BiasResult:
    """A weight-decay sweep (0, 0.01, 0.1) of 4 pairs whose wd-0 barrier is 0.3, with compression means
    at wd 0.01 ``ratio`` times wd 0's, RESCALE ``rescale_gain`` above REPAIR at wd 0, and the judged
    weight decay's degraded pairs at ``degraded_barrier``."""
    bar, comp, rn, deg = [], [], [], []
    for i in range(4):
        noise = 0.004 * i
        for wd, b in ((0.0, 0.3), (0.01, 0.1), (0.1, 0.05)):
            bar.append({"study": "weight_decay", "value": wd, "pair": i, "method": "weight", "reset": False,
                        "split": "test", "loss_barrier": b, "accuracy_barrier": b + noise, "accuracy_a": 0.85,
                        "accuracy_b": 0.85})
        for wd in (0.0, 0.01):
            for variant, acc in (("none", 0.6), ("REPAIR", 0.75), ("RESCALE", 0.75 + (rescale_gain if wd == 0 else 0))):
                rn.append({"value": wd, "pair": i, "method": "weight", "order": 0, "variant": variant, "loss": 1.0,
                           "accuracy": acc + noise * (variant == "RESCALE")})
        deg.append({"value": 0.01, "pair": i, "method": "weight", "reset": False, "split": "test",
                    "loss_barrier": degraded_barrier, "accuracy_barrier": degraded_barrier + noise,
                    "accuracy_a": 0.8, "accuracy_b": 0.8})
    for k in range(8):
        for wd, scale in ((0.0, 1.0), (0.01, ratio), (0.1, ratio ** 2)):
            for q in implicit_bias.COMPRESSION_QUANTITIES:
                comp.append({"value": wd, "model": k, "seed": k, "quantity": q, "mean": scale * (0.1 + 0.001 * k) * (1 + 0.01 * k * (wd > 0))})
    return implicit_bias.BiasResult(pd.DataFrame(bar), pd.DataFrame(), pd.DataFrame(), has_bn=False, judge_weight_decay=0.01,
                                    compression=pd.DataFrame(comp), renorm=pd.DataFrame(rn), degraded=pd.DataFrame(deg))


def test_weight_decay_extra_verdicts_on_synthetic_results():
    criteria = verdicts.load_criteria("07_same_basin")
    claims = {"weight_decay_compresses", "rescale_robust_to_weight_decay", "weight_decay_lowers_barrier_degraded"}
    good = implicit_bias.bias_verdicts(_wd_extras(ratio=0.5, rescale_gain=0.05, degraded_barrier=0.1), criteria)
    good = good[good["claim"].isin(claims)].set_index("subject")
    assert good.loc["wd 0.01 / wd 0, parameter magnitude", "verdict"] == "held"
    assert good.loc["wd 0.01 / wd 0, parameter magnitude", "estimate"] == pytest.approx(0.5, rel=0.05)
    assert good.loc["wd 0.01 / wd 0, channel activation", "verdict"] == "held"
    assert good.loc["wd 0, WM midpoint: RESCALE - REPAIR", "verdict"] == "held"
    assert good.loc["wd 0 - wd 0.01 degraded, weight", "verdict"] == "held"
    assert (good["n"] == [8, 8, 4, 4]).all()  # models for the compression, pairs otherwise
    # planted failures: weight decay inflates the weights, REPAIR beats RESCALE, the degraded pairs' barrier is higher
    bad = implicit_bias.bias_verdicts(_wd_extras(ratio=1.5, rescale_gain=-0.05, degraded_barrier=0.5), criteria)
    bad = bad[bad["claim"].isin(claims)]
    assert len(bad) == 4 and set(bad["verdict"]) == {"did not hold"}
    # a sweep without the extras leaves the three claims to the "not judged" rows of verdicts()
    sweep = _bias_result({0.0: 0.3, 0.01: 0.1, 0.1: 0.05, 1.0: 0.2}, {0.0: 0.86, 0.01: 0.87, 0.1: 0.85, 1.0: 0.6},
                         {"kaiming_uniform": 0.1, "kaiming_normal": 0.4}, {"kaiming_uniform": 5.0, "kaiming_normal": 12.0})
    frame = same_basin.verdicts({}, criteria, bias_rows={"x": implicit_bias.bias_verdicts(sweep, criteria)})
    extra = frame[frame["claim"].isin(claims)]
    assert len(extra) == 3 and extra["subject"].str.startswith("not judged").all()


def test_init_comparison_is_the_ratio_of_mean_barriers():
    init = pd.DataFrame([{"experiment": "x", "init": i, "method": "weight", "reset": False, "accuracy_barrier": b}
                         for i, b in (("kaiming_uniform", 0.2), ("kaiming_normal", 0.5))])
    t = same_basin.init_comparison({"07_init": init})
    assert len(t) == 1 and t["ratio"].iloc[0] == pytest.approx(2.5) and "1.4" in t["paper"].iloc[0]
    assert same_basin.init_comparison({}).empty


# --- the learning-rate-only study (Fig. 5 (D): VGG-LN on MNIST) ----------------------------------------

def _lr_only(barriers: dict[float, float], n_pairs: int = 4) -> same_basin.LrResult:
    """A learning-rate-only result whose pair i at rate lr has accuracy barrier barriers[lr] + 0.01 i
    (both methods; loss barrier twice that)."""
    rows = [{"lr": lr, "variant": "trained", "pair": i, "method": m, "reset": False, "split": "test",
             "loss_barrier": 2 * (b + 0.01 * i), "accuracy_barrier": b + 0.01 * i + (0.002 * i if m == "activation" else 0),
             "accuracy_a": 0.95, "accuracy_b": 0.97}
            for lr, b in barriers.items() for i in range(n_pairs) for m in ("weight", "activation")]
    return same_basin.LrResult(pd.DataFrame(rows), has_bn=False)


def test_lr_only_verdicts_on_synthetic_results():
    criteria = verdicts.load_criteria("07_same_basin")
    claim = same_basin.LR_ONLY_CLAIM
    good = same_basin.verdicts({}, criteria, lr_only={"x": _lr_only({0.001: 0.6, 0.01: 0.2, 0.1: 0.05})})
    rows = good[good["claim"] == claim].set_index("subject")
    assert list(rows.index) == ["x: lr 0.001 - lr 0.1, weight", "x: lr 0.001 - lr 0.1, activation"]
    assert (rows["verdict"] == "held").all() and (rows["n"] == 4).all()
    assert rows.loc["x: lr 0.001 - lr 0.1, weight", "estimate"] == pytest.approx(0.55)  # smallest minus largest rate
    # planted failure: the small rate's barrier is the lower one
    bad = same_basin.verdicts({}, criteria, lr_only={"x": _lr_only({0.001: 0.05, 0.01: 0.2, 0.1: 0.6})})
    assert set(bad.loc[bad["claim"] == claim, "verdict"]) == {"did not hold"}
    # a profile without a learning-rate-only experiment: one "not judged" row
    none = same_basin.verdicts({}, criteria)
    assert list(none.loc[none["claim"] == claim, "verdict"]) == ["inconclusive"]
    # the table: means over pairs with intervals, per rate and method
    t = same_basin.lr_table({"x": _lr_only({0.001: 0.6, 0.1: 0.05})}).set_index(["lr", "method"])
    assert t.loc[(0.1, "weight"), "accuracy_barrier"] == pytest.approx(0.065)  # 0.05 + mean of 0, .01, .02, .03
    assert t.loc[(0.1, "weight"), "loss_barrier"] == pytest.approx(0.13)
    assert t.loc[(0.1, "weight"), "endpoint_accuracy"] == pytest.approx(0.96)
    assert (t["accuracy_barrier_low"] < t["accuracy_barrier"]).all() and (t["n"] == 4).all()


def test_lr_only_study_runs_without_the_degrade_control():
    from lmc_utils.claims import quality

    quality.clear()
    res = same_basin.run_lr_experiments({"moons": MOONS}, {"moons": [0.02, 0.2]}, n_pairs=2, eval_subset=None,
                                        match_samples=200, methods=["naive", "weight"], n_points=3, seed=0,
                                        device="cpu", progress=False)
    lrb = res["moons"].lr_barriers
    assert set(lrb["variant"]) == {"trained"} and set(lrb["lr"]) == {0.02, 0.2}
    assert set(lrb["method"]) == {"weight"} and len(lrb) == 2 * 2  # rates x pairs, the matcher only
    assert {e.arm for e in quality.recorded() if e.experiment == "moons"} == {"lr 0.02", "lr 0.2"}
    table = same_basin.lr_table(res)
    assert len(table) == 2 and table["floor"].isna().all()  # no floor declared in this test
    with pytest.raises(ValueError, match="at least two learning rates"):
        same_basin.run_lr_experiments({"moons": MOONS}, {"moons": [0.1]}, n_pairs=1)
    quality.clear()
