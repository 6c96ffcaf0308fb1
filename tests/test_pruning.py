"""Pruning: achieved sparsity, masks via torch.nn.utils.prune, Fisher saliency, redundancy removal."""

import pytest
import torch
from torch import nn

from lmc_utils import models, pruning
from lmc_utils.data import TensorData

from model_zoo_cases import CASES, input_shape


def _data(shape, n=64, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g),
                      classes, "synthetic", "train")


@pytest.mark.parametrize("case", ["mlp", "mlp-nobias", "vgg11-batchnorm", "resnet20-layernorm"])
@pytest.mark.parametrize("method", pruning.METHODS)
@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9, 0.99])
def test_achieved_sparsity_equals_requested(case, method, sparsity):
    torch.manual_seed(0)
    model = CASES[case]().eval()
    scores = None
    if method == "fisher":  # any saliency will do here; fisher_scores is tested below
        scores = {n: torch.rand_like(m.weight) for n, m in pruning.prunable(model)}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = pruning.prune_model(model, sparsity, method, scores=scores)
    table = pruning.sparsity_table(pruned)
    if method == "layer_magnitude":  # the same fraction in every layer, up to rounding per layer
        assert ((table["sparsity"] - sparsity).abs() <= 0.5 / table["weights"] + 1e-12).all()
    total = int(table["weights"].sum())
    rounding = 0.5 * (len(table) if method == "layer_magnitude" else 1)  # weights, per rounded count
    assert abs(pruning.sparsity(pruned) - sparsity) <= rounding / total + 1e-12
    # an ordinary model: no masks or re-parametrisation left, the original untouched
    assert not any(k.endswith(("_orig", "_mask")) for k in pruned.state_dict())
    assert type(pruned) is type(model) and set(pruned.state_dict()) == set(before)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # only weights of Linear/Conv layers change, and only to zero
    for k, v in pruned.state_dict().items():
        changed = v != before[k]
        assert not changed.any() or (k.endswith("weight") and (v[changed] == 0).all()), k


@pytest.mark.parametrize("method", pruning.METHODS)
def test_channels_last_conv_nets_can_be_pruned(method):
    torch.manual_seed(0)
    model = CASES["vgg11-batchnorm"]().to(memory_format=torch.channels_last).eval()
    scores = {n: torch.rand_like(m.weight) for n, m in pruning.prunable(model)} if method == "fisher" else None
    pruned = pruning.prune_model(model, 0.6, method, scores=scores)
    assert abs(pruning.sparsity(pruned) - 0.6) < 0.01
    conv = pruned.features[1].conv.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 28, 28)
    dense_like = pruning.prune_model(model, 0.0, method, scores=scores)
    assert torch.allclose(dense_like(x), model(x), atol=1e-5)


def test_global_magnitude_removes_the_smallest_weights_overall():
    torch.manual_seed(1)
    model = models.mlp(in_features=6, num_classes=3, width=8, depth=2)
    with torch.no_grad():
        model.hidden[1].weight.mul_(10.0)  # a layer of large weights survives global pruning
    pruned = pruning.prune_model(model, 0.5, "global_magnitude")
    kept = torch.cat([m.weight.flatten() for _, m in pruning.prunable(pruned)])
    orig = torch.cat([m.weight.flatten() for _, m in pruning.prunable(model)])
    assert orig[kept == 0].abs().max() <= orig[kept != 0].abs().min()
    layers = pruning.sparsity_table(pruned).set_index("layer")["sparsity"]
    assert layers["hidden.1"] < 0.1 < 0.5 < layers["hidden.0"]


def test_fisher_scores_are_w2_times_mean_squared_gradient():
    torch.manual_seed(2)
    model = models.mlp(in_features=4, num_classes=3, width=5, depth=1)
    data = _data((4,), n=8, classes=3)
    scores = pruning.fisher_scores(model, data, n_batches=3, batch_size=2, seed=7)
    g = torch.Generator().manual_seed(7)
    acc = torch.zeros_like(model.hidden[0].weight)
    for _ in range(3):
        idx = torch.randint(0, 8, (2,), generator=g)
        model.zero_grad()
        nn.functional.cross_entropy(model(data.x[idx]), data.y[idx]).backward()
        acc += model.hidden[0].weight.grad ** 2
    expected = model.hidden[0].weight.detach() ** 2 * acc / 3
    assert torch.allclose(scores["hidden.0"], expected, rtol=1e-5, atol=1e-12)
    assert set(scores) == {"hidden.0", "out"}


def test_fisher_scores_of_a_conv_net_leave_the_model_alone():
    torch.manual_seed(0)
    model = CASES["vgg11-batchnorm"]().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = pruning.fisher_scores(model, _data(input_shape("vgg11-batchnorm"), classes=10), n_batches=2, batch_size=4)
    assert {n: s.shape for n, s in scores.items()} == {n: m.weight.shape for n, m in pruning.prunable(model)}
    assert all((s >= 0).all() and s.isfinite().all() for s in scores.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training


def test_fisher_pruning_keeps_the_highest_scores():
    torch.manual_seed(3)
    model = models.mlp(in_features=6, num_classes=3, width=8, depth=2)
    scores = {n: torch.rand_like(m.weight) for n, m in pruning.prunable(model)}
    pruned = pruning.prune_model(model, 0.3, "fisher", scores=scores)
    s = torch.cat([scores[n].flatten() for n, _ in pruning.prunable(model)])
    w = torch.cat([m.weight.flatten() for _, m in pruning.prunable(pruned)])
    assert s[w == 0].max() <= s[w != 0].min()


def test_bad_requests_fail_clearly():
    model = models.mlp(in_features=4, num_classes=2, width=4, depth=1)
    with pytest.raises(ValueError, match="sparsity"):
        pruning.prune_model(model, 1.0)
    with pytest.raises(ValueError, match="unknown pruning method"):
        pruning.prune_model(model, 0.5, "random")
    with pytest.raises(ValueError, match="needs scores"):
        pruning.prune_model(model, 0.5, "fisher")
    with pytest.raises(ValueError, match="plain MLP"):
        pruning.remove_redundant_units(models.mlp(in_features=4, num_classes=2, width=4, depth=1, norm="layernorm"))


def _duplicated(bias: bool, depth: int, seed: int = 0):
    """An MLP whose hidden units come in groups that are positive multiples of each other."""
    torch.manual_seed(seed)
    base = models.mlp(in_features=5, num_classes=3, width=4, depth=depth, bias=bias).double()
    copies, scales = 3, torch.tensor([1.0, 0.5, 2.5], dtype=torch.float64)
    big = models.mlp(in_features=5, num_classes=3, width=4 * copies, depth=depth, bias=bias).double()
    perm = torch.randperm(4 * copies)
    sd, out = base.state_dict(), {}
    for i in range(depth):
        w = sd[f"hidden.{i}.weight"]
        if i > 0:  # previous layer's copies: split the incoming weight among them
            w = torch.cat([w / scales[c] / copies for c in range(copies)], dim=1)[:, prev_perm]
        out[f"hidden.{i}.weight"] = torch.cat([w * scales[c] for c in range(copies)])[perm]
        if bias:
            out[f"hidden.{i}.bias"] = torch.cat([sd[f"hidden.{i}.bias"] * scales[c] for c in range(copies)])[perm]
        prev_perm = perm
    out["out.weight"] = torch.cat([sd["out.weight"] / scales[c] / copies for c in range(copies)], dim=1)[:, perm]
    if bias:
        out["out.bias"] = sd["out.bias"]
    big.load_state_dict(out)
    return base.eval(), big.eval()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("depth", [1, 2])
def test_merging_exact_duplicates_leaves_the_function_unchanged(bias, depth):
    base, big = _duplicated(bias, depth)
    x = torch.randn(200, 5, dtype=torch.float64)
    assert torch.allclose(big(x), base(x), atol=1e-10)  # the construction itself
    reduced, info = pruning.remove_redundant_units(big, tol=1e-9)
    assert info.widths_before == [12] * depth
    assert info.widths_after == [4] * depth and info.merged == [8] * depth
    assert torch.allclose(reduced(x), big(x), atol=1e-9)


def test_merging_does_not_touch_distinct_or_negatively_scaled_units():
    torch.manual_seed(4)
    model = models.mlp(in_features=3, num_classes=2, width=6, depth=1).double().eval()
    with torch.no_grad():  # unit 1 = -unit 0: opposite directions compute different functions
        model.hidden[0].weight[1] = -model.hidden[0].weight[0]
        model.hidden[0].bias[1] = -model.hidden[0].bias[0]
    reduced, info = pruning.remove_redundant_units(model, tol=0.0)
    assert info.widths_after == [6]
    x = torch.randn(50, 3, dtype=torch.float64)
    assert torch.allclose(reduced(x), model(x))


def test_nothing_to_remove_gives_back_the_same_weights_in_the_same_order():
    torch.manual_seed(8)
    model = models.mlp(in_features=20, num_classes=3, width=[16, 8], depth=2).eval()
    reduced, info = pruning.remove_redundant_units(model, tol=1e-6)
    assert info.widths_after == [16, 8]
    for k, v in model.state_dict().items():
        assert torch.allclose(reduced.state_dict()[k], v), k


def test_dead_units_are_dropped_without_changing_outputs_on_the_data():
    torch.manual_seed(5)
    model = models.mlp(in_features=4, num_classes=3, width=10, depth=1).eval()
    with torch.no_grad():
        model.hidden[0].weight[:3] = 0.0
        model.hidden[0].bias[:3] = -1.0  # never active
    x = torch.randn(100, 4)
    reduced, info = pruning.remove_redundant_units(model, tol=0.0, inputs=x)
    assert info.dead == [3] and info.widths_after == [7]
    assert torch.allclose(reduced(x), model(x), atol=1e-6)


def test_near_duplicates_merge_only_within_tolerance():
    torch.manual_seed(6)
    base, big = _duplicated(True, 1)
    with torch.no_grad():
        big.hidden[0].weight.add_(1e-3 * torch.randn_like(big.hidden[0].weight))
    x = torch.randn(100, 5, dtype=torch.float64)
    assert pruning.remove_redundant_units(big, tol=0.0)[1].widths_after == [12]
    reduced, info = pruning.remove_redundant_units(big, tol=1e-2)
    assert info.widths_after == [4]
    assert (reduced(x) - big(x)).abs().max() < 0.05


def test_padding_with_zero_units_keeps_the_function():
    torch.manual_seed(7)
    model = models.mlp(in_features=5, num_classes=3, width=[4, 6], depth=2).eval()
    padded = pruning.pad_hidden(model, [9, 6])
    x = torch.randn(20, 5)
    assert [m.out_features for m in padded.hidden] == [9, 6]
    assert torch.allclose(padded(x), model(x), atol=1e-6)
    with pytest.raises(ValueError):
        pruning.pad_hidden(model, [3, 6])


# --- the notebook's protocol helpers (lmc_utils.studies.pruning) ---------------------------------

from lmc_utils.studies import pruning as pruning_study  # noqa: E402
from lmc_utils.activations import layer_statistics  # noqa: E402


@pytest.mark.parametrize("case", ["mlp", "mlp-layernorm", "vgg11-none"])
def test_repair_after_pruning_restores_the_dense_statistics_and_keeps_sparsity(case):
    torch.manual_seed(0)
    dense = CASES[case]().eval()
    data = _data(input_shape(case), n=128, classes=5)
    pruned = pruning.prune_model(dense, 0.8, "global_magnitude")
    fixed = pruning_study.renormalize(dense, pruned, data)
    assert pruning.sparsity(fixed) == pruning.sparsity(pruned)
    d, p, f = (layer_statistics(m, data.x) for m in (dense, pruned, fixed))
    for name in d:
        alive = f[name].pre_std > 1e-6  # channels whose inputs were all pruned cannot be rescaled
        assert alive.float().mean() > 0.5
        err_p = (p[name].pre_std - d[name].pre_std)[alive].abs().max()
        err_f = (f[name].pre_std - d[name].pre_std)[alive].abs().max()
        assert err_f < 1e-3 * (1 + d[name].pre_std.max()) and err_f < err_p, name


def test_reset_after_pruning_a_batchnorm_model_recomputes_its_statistics():
    torch.manual_seed(0)
    dense = CASES["vgg11-batchnorm"]().eval()
    data = _data(input_shape("vgg11-batchnorm"), n=64, classes=10)
    pruned = pruning.prune_model(dense, 0.5, "layer_magnitude")
    fixed = pruning_study.renormalize(dense, pruned, data)
    bn = fixed.features[0].norm
    assert not torch.equal(bn.running_var, pruned.features[0].norm.running_var)
    with torch.no_grad():
        pre = fixed.features[0].conv(data.x)
    assert torch.allclose(bn.running_mean, pre.mean((0, 2, 3)), atol=1e-4)
    assert pruning.sparsity(fixed) == pruning.sparsity(pruned)


def _synthetic_result(n=8, seed=0):
    """A Result whose per-model statistics are known: 8 models of experiment ``e``, pruned at the
    judged sparsity 0.8 (and a swept-only sparsity 0.5 on the first two models)."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)
    noise = lambda: float(rng.normal(0, 0.005))  # noqa: E731
    dense, acc, samples, scale = [], [], [], []
    for k in range(n):
        key = {"experiment": "e", "norm": "none", "model": k}
        dense.append({**key, "loss": 0.3, "accuracy": 0.9})
        curve = k < 2
        for sp in ([0.5, 0.8] if curve else [0.8]):
            # as pruned / re-normalised: global magnitude recovers 5/6 of the loss, layer-wise 1/2 + noise,
            # Fisher 1/12; at 0.5 nothing is lost
            values = {"global_magnitude": (0.3, 0.8), "layer_magnitude": (0.3, 0.6), "fisher": (0.3, 0.35)}
            for m, (p, r) in values.items():
                if sp == 0.5:
                    p, r = 0.9, 0.9
                for flag, a in ((False, p + noise()), (True, r + noise())):
                    acc.append({**key, "curve": curve, "method": m, "sparsity": sp, "achieved": sp, "renorm": flag,
                                "loss": 1.0, "accuracy": a})
            for m, small in (("global_magnitude", 0.79), ("layer_magnitude", 0.45)):
                for lab, n_s, a in (("none", 0, 0.3), ("64", 64, small + noise()), ("all", 2000, 0.8 if m == "global_magnitude" else 0.6)):
                    samples.append({**key, "curve": curve, "method": m, "sparsity": sp, "n_samples": n_s, "label": lab,
                                    "accuracy": a})
            for layer in range(3):
                for flag, ratio in ((False, 0.2), (True, 1.0)):
                    scale.append({"experiment": "e", "model": k, "curve": curve, "method": "global_magnitude",
                                  "sparsity": sp, "renorm": flag, "layer": layer, "module": f"acts.{layer}",
                                  "std_ratio": ratio + noise(), "zero_share": 0.5})
    units, barriers = [], []
    for ds, share in (("moons", 0.5), ("mnist", 1.0)):
        for k in range(n):
            red = round(128 * share) - (k % 2 if share < 1 else 0)
            units.append({"dataset": ds, "width": 128, "model": k, "tol": 0.001, "reduced_width": red, "dead": 0,
                          "merged": 128 - red, "full_loss": 0.1, "full_accuracy": 0.99, "reduced_loss": 0.1,
                          "reduced_accuracy": 0.99 - 0.001 * (k % 3)})
        for p in range(n // 2):
            for network, b in (("full", 0.1), ("reduced", 0.3 + noise())):
                for method in ("naive", "weight"):
                    barriers.append({"dataset": ds, "width": 128, "pair": p, "tol": 0.001, "network": network,
                                     "method": method, "loss_barrier": b if method == "naive" else 0.0,
                                     "accuracy_barrier": 0.0})
    return pruning_study.Result(pd.DataFrame(dense), pd.DataFrame(acc), pd.DataFrame(samples), pd.DataFrame(scale),
                                pd.DataFrame(units), pd.DataFrame(barriers), judge_sparsity=0.8, judge_width=128,
                                merge_tol=0.001)


def test_verdicts_follow_the_per_model_statistics():
    from lmc_utils import verdicts
    criteria = verdicts.load_criteria("05_pruning")
    frame = pruning_study.verdicts(_synthetic_result(), criteria)
    verdicts.check_declared(frame, criteria)
    got = frame.set_index(["claim", "subject"])
    v = got["verdict"]
    assert v[("renorm_recovers_pruning_loss", "e / global magnitude")] == "held"
    assert v[("renorm_recovers_pruning_loss", "e / diagonal Fisher")] == "did not hold"
    assert abs(got.loc[("renorm_recovers_pruning_loss", "e / global magnitude"), "estimate"] - 5 / 6) < 0.02
    assert got.loc[("renorm_recovers_pruning_loss", "e / global magnitude"), "n"] == 8  # every model, not just the swept
    # the layer-wise share is 0.5 up to noise: the interval straddles the threshold 0.5
    assert v[("renorm_recovers_pruning_loss", "e / layer-wise magnitude")] == "inconclusive"
    # gap |gm - fisher|: 0 as pruned, 0.45 after: it grows, so the claim did not hold
    assert v[("magnitude_fisher_gap_shrinks", "e")] == "did not hold"
    assert v[("one_batch_suffices", "e / global magnitude")] == "held"  # 0.49 of 0.5 gain: 98%
    assert v[("one_batch_suffices", "e / layer-wise magnitude")] == "did not hold"  # 0.15 of 0.3: 50%
    assert v[("pruning_collapses_scale", "e")] == "held" and v[("renorm_restores_scale", "e")] == "held"
    assert v[("wide_mlp_units_redundant", "moons / width 128")] == "held"
    assert v[("wide_mlp_units_redundant", "mnist / width 128")] == "did not hold"
    assert v[("merging_keeps_accuracy", "moons / width 128")] == "held"
    assert v[("reduction_raises_naive_barrier", "moons / width 128")] == "held"
    assert ("reduction_raises_naive_barrier", "mnist / width 128") not in v.index  # Moons only (the talk's setting)
    assert got.loc[("reduction_raises_naive_barrier", "moons / width 128"), "n"] == 4  # pairs, not models


def test_models_with_nothing_to_recover_are_left_out():
    from lmc_utils import verdicts
    r = _synthetic_result()
    acc = r.accuracy
    easy = (acc["model"] >= 5) & (acc["method"] == "global_magnitude")
    acc.loc[easy & ~acc["renorm"], "accuracy"] = 0.88  # pruning cost these three models only 2 points
    stats = pruning_study.unit_statistics(r)
    share = stats[(stats["claim"] == "renorm_recovers_pruning_loss") & (stats["subject"] == "e / global magnitude")]
    assert share["value"].isna().sum() == 3
    criteria = verdicts.load_criteria("05_pruning")
    row = pruning_study.verdicts(r, criteria).set_index(["claim", "subject"]).loc[
        ("renorm_recovers_pruning_loss", "e / global magnitude")]
    assert row["n"] == 5 and row["verdict"] == "held"


def test_a_claim_this_run_did_not_measure_is_inconclusive():
    from lmc_utils import verdicts
    r = _synthetic_result()
    r.accuracy = r.accuracy[r.accuracy["method"] != "fisher"]
    frame = pruning_study.verdicts(r, verdicts.load_criteria("05_pruning"))
    row = frame[frame["claim"] == "magnitude_fisher_gap_shrinks"]
    assert len(row) == 1 and row["verdict"].iloc[0] == "inconclusive" and row["n"].iloc[0] == 0


def test_curve_tables_average_only_the_swept_models():
    r = _synthetic_result()
    r.dense.loc[r.dense["model"] >= 2, "accuracy"] = 0.5  # the unswept models must not enter the curves
    t = pruning_study.pruning_table(r).set_index(["method", "sparsity"])
    assert abs(t.loc[("global_magnitude", 0.8), "renormalized"] - 0.8) < 0.01
    assert (t["dense"] == 0.9).all() and set(t.index.get_level_values("sparsity")) == {0.5, 0.8}
    s = pruning_study.samples_table(r).set_index(["method", "sparsity"])
    assert abs(s.loc[("layer_magnitude", 0.8), "64"] - 0.45) < 0.01 and s.loc[("layer_magnitude", 0.8), "all"] == 0.6
