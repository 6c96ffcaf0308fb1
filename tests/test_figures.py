"""Figure and table writers: both formats, atomic, reproducible bytes."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lmc_utils import figures  # noqa: E402
from lmc_utils.figures import layout  # noqa: E402


def test_save_figure_and_table(tmp_path):
    figures.setup("unit")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set_xlabel("interpolation weight")
    ax.set_ylabel("test loss (nats)")
    paths = figures.save_figure(fig, "line")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    first = [p.read_bytes() for p in paths]
    figures.save_figure(fig, "line")
    assert [p.read_bytes() for p in paths] == first  # no timestamps: identical re-runs
    df = pd.DataFrame({"method": ["naive", "weight"], "loss_barrier": [1.23456, 0.01]})
    csv, md = figures.save_table(df, "table")
    assert pd.read_csv(csv).equals(df)
    assert md.read_text().splitlines()[0] == "| method | loss_barrier |"
    assert "1.235" in md.read_text()
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]


def test_writer_needs_a_profile(monkeypatch):
    monkeypatch.setitem(figures.style._state, "profile", None)
    with pytest.raises(RuntimeError, match="setup"):
        figures.save_table(pd.DataFrame({"a": [1]}), "t")


def test_mean_std_and_its_text():
    from lmc_utils import tables

    df = pd.DataFrame({"kind": ["x"] * 4 + ["y"] * 4, "actual": [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0],
                       "estimate": [0.0, 1.1, 1.9, 3.0, 1.01, 1.98, 3.02, 3.99]})
    s = tables.mean_std(df, ["kind"], ["actual"])
    assert list(s["n"]) == [4, 4] and s["actual_mean"][0] == pytest.approx(2.5)
    assert s["actual_std"][0] == pytest.approx(df["actual"][:4].std())
    assert tables.mean_sd_text(0.5, 0.25) == "0.500 ± 0.250" and tables.mean_sd_text(1.0, float("nan"), ".1f") == "1.0 ± 0.0"


def test_atomic_write_leaves_the_target_intact_on_failure(tmp_path):
    from lmc_utils.atomic import atomic_path, write_text

    target = write_text(tmp_path / "table.md", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half written")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_markdown_tables_print_rounding_zeros_as_zero():
    import pandas as pd

    from lmc_utils.figures import to_markdown

    md = to_markdown(pd.DataFrame({"barrier": [5.551e-17, 0.25, 3.7e-5], "n": [1, 2, 3]}))
    assert "e-17" not in md and "| 0 | 1 |" in md
    assert "3.7e-05" in md  # a small but real value keeps its digits


def test_markdown_cells_escape_pipes():
    import pandas as pd

    from lmc_utils.figures import to_markdown

    md = to_markdown(pd.DataFrame({"statistic": ["|a - b| / |a|"], "x": [1.0]}))
    assert md.splitlines()[2] == "| \\|a - b\\| / \\|a\\| | 1 |"


# --- experiment labels (params/<profile>.yaml, section `labels`) --------------------------------

import re  # noqa: E402

from lmc_utils import plots, profiles  # noqa: E402

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                 "moons": "Moons"}
NORM_MARKS = {"layernorm": ("LayerNorm", "-LN"), "batchnorm": ("-BN",), "fixup": ("Fixup",)}


def experiment_configs(sections: dict) -> dict[str, list[dict]]:
    """Every experiment name the notebook sections of a profile use, with its training configs:
    the keys of each ``experiments`` and ``*_experiments`` mapping, the value of every ``*_experiment`` parameter, and
    ``<name>`` of every ``redundancy_<name>`` config (notebook 05's Moons and MNIST MLPs) and every rung of
    notebook 10's ``rungs`` (with its width when it has only one)."""
    found: dict[str, list[dict]] = {}
    for section in sections.values():
        section = section or {}
        experiments = section.get("experiments") or {}
        for name, cfg in experiments.items():
            found.setdefault(name, []).append(cfg)
        for key, value in section.items():
            if key.endswith("_experiment") and isinstance(value, str):  # bias_experiment, retrain_experiment
                found.setdefault(value, []).extend([experiments[value]] if value in experiments else [])
            elif key.endswith("_experiments") and isinstance(value, dict):  # 07's wd_experiments, init_experiments
                for name, cfg in value.items():
                    found.setdefault(name, []).append(cfg)
            elif key.startswith("redundancy_") and isinstance(value, dict) and "dataset" in value:
                found.setdefault(key.removeprefix("redundancy_"), []).append(value)
            elif key == "rungs" and isinstance(value, dict):  # notebook 10's ladder: a family over its widths
                for name, rung in value.items():
                    cfg, widths = dict(rung["config"]), list(rung.get("widths") or [])
                    if len(widths) == 1:  # one width: the label may name it
                        field = "width" if cfg["arch"] == "mlp" else "width_multiplier"
                        cfg["model"] = {**(cfg.get("model") or {}), field: widths[0]}
                    found.setdefault(name, []).append(cfg)
            elif isinstance(value, dict) and isinstance(value.get("experiments"), dict):  # a sub-study (09's deep)
                for name, cfg in experiment_configs({key: value}).items():
                    found.setdefault(name, []).extend(cfg)
    return found


def label_problems(sections: dict, labels: dict) -> list[str]:
    """What is wrong with ``labels`` for these notebook sections: a used name without a label, a
    label no section uses, or a label that contradicts one of the name's configs (dataset,
    architecture, normalisation, MLP depth and width, channel multiplier)."""
    used = experiment_configs(sections)
    problems = [f"{name}: no label" for name in sorted(set(used) - set(labels))]
    problems += [f"{name}: label of an experiment no notebook uses" for name in sorted(set(labels) - set(used))]
    for name in sorted(set(used) & set(labels)):
        label = labels[name]
        for cfg in used[name]:
            model = cfg.get("model") or {}
            arch = cfg["arch"]
            if not label.endswith(", " + DATASET_NAMES[cfg["dataset"]]):
                problems.append(f"{name}: {label!r} does not end with its dataset {DATASET_NAMES[cfg['dataset']]}")
            norm = model.get("norm", "none" if arch == "mlp" else "batchnorm")
            for kind, marks in NORM_MARKS.items():
                if any(m in label for m in marks) != (norm == kind):
                    problems.append(f"{name}: {label!r} and norm {norm!r}")
            if arch == "mlp":
                size = re.search(r"(\d+)×(\d+)", label)
                if size and (int(size[1]), int(size[2])) != (model.get("depth"), model.get("width")):
                    problems.append(f"{name}: {label!r} but depth {model.get('depth')}, width {model.get('width')}")
                if not size and not re.search(rf"\b{model.get('depth')} hidden layers?\b", label):
                    problems.append(f"{name}: {label!r} does not say depth {model.get('depth')}")
            else:
                if {"vgg": str(model.get("config", "")).upper(), "resnet20": "ResNet20"}[arch] not in label:
                    problems.append(f"{name}: {label!r} does not name its architecture")
                multiplier = model.get("width_multiplier", 1)
                said = {0.125: "1/8 channels", 0.0625: "1/16 channels", 4: "4× width"}.get(multiplier)
                if (multiplier != 1 and (said is None or said not in label)) or (multiplier == 1 and "channels" in label):
                    problems.append(f"{name}: {label!r} and width multiplier {multiplier}")
    return list(dict.fromkeys(problems))


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_every_experiment_of_a_profile_has_a_fitting_label(profile):
    assert label_problems(profiles.notebook_sections(profile), profiles.labels(profile)) == []


def test_label_check_fails_for_a_new_or_wrong_label():
    mlp = {"dataset": "mnist", "arch": "mlp", "model": {"width": 512, "depth": 3}}
    sections = {"00_x": {"experiments": {"mlp_mnist": mlp, "mlp_new": mlp}},
                "05_y": {"redundancy_moons": {"dataset": "moons", "arch": "mlp", "model": {"depth": 1}}}}
    labels = {"mlp_mnist": "MLP 3×512, MNIST", "moons": "MLP, 1 hidden layer, Moons"}
    assert label_problems(sections, labels) == ["mlp_new: no label"]
    assert label_problems(sections, {**labels, "mlp_new": "MLP 3×256, MNIST", "gone": "x"}) == [
        "gone: label of an experiment no notebook uses", "mlp_new: 'MLP 3×256, MNIST' but depth 3, width 512"]
    # a width swept in another section (no width in its config): the label must not name one
    sections["02_z"] = {"experiments": {"mlp_mnist": {**mlp, "model": {"depth": 3}}}, "bias_experiment": "mlp_mnist"}
    assert label_problems(sections, {**labels, "mlp_new": "MLP 3×512, FashionMNIST"}) == [
        "mlp_mnist: 'MLP 3×512, MNIST' but depth 3, width None",
        "mlp_new: 'MLP 3×512, FashionMNIST' does not end with its dataset MNIST"]


def test_experiment_label_is_the_profiles_label_or_the_name(monkeypatch):
    monkeypatch.setitem(figures.style._state, "profile", None)
    assert figures.experiment_label("mlp_plain") == "mlp_plain"  # setup not called
    figures.setup("cpu")
    assert figures.experiment_label("mlp_plain") == "plain MLP 6×128, FashionMNIST"
    assert figures.experiment_label("vgg11_bn") == profiles.labels("cpu")["vgg11_bn"]
    assert figures.experiment_label("no_such_experiment") == "no_such_experiment"
    figures.setup("paper")
    assert figures.experiment_label("vgg16_bn_cifar10") == "VGG16-BN, CIFAR-10"
    assert figures.experiment_label("mlp_cifar") == "mlp_cifar"  # not a paper experiment
    figures.setup("unit")  # not a profile: no labels
    assert figures.experiment_label("mlp_plain") == "mlp_plain"


def test_plots_title_experiments_by_their_label(monkeypatch):
    monkeypatch.setitem(figures.style._state, "profile", None)
    figures.setup("cpu")
    table = pd.DataFrame({"experiment": ["mlp_plain"] * 2, "method": ["global_magnitude"] * 2, "sparsity": [0.5, 0.8],
                          "pruned": [0.8, 0.3], "renormalized": [0.85, 0.7], "renorm": ["REPAIR"] * 2, "dense": [0.88] * 2})
    fig = plots.plot_pruning(table, 0.8)
    assert fig.axes[0].get_title().splitlines()[0] == "plain MLP 6×128, FashionMNIST"
    plt.close(fig)
    assert layout._experiment_prefix(table) == "plain MLP 6×128, FashionMNIST, "
    assert layout._experiment_prefix(table.drop(columns="experiment")) == ""


def test_every_plot_function_returns_its_figure():
    """A plot function that forgets ``return fig`` breaks its notebook only at the cell that saves
    the figure, after minutes of work (a lost line in a merge once did exactly that)."""
    import ast
    import inspect

    from lmc_utils import plots

    tree = ast.parse(inspect.getsource(plots))
    missing = [f.name for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("plot_")
               and not any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(f))]
    assert missing == []


def test_learning_rate_barrier_plot_draws_both_variants():
    import matplotlib.figure
    import pandas as pd

    from lmc_utils import plots

    rows = [{"lr": lr, "variant": v, "method": m, "reset": True, "accuracy_barrier": 0.1 * lr, "accuracy_a": 0.8,
             "accuracy_b": 0.82} for lr in (0.01, 0.1) for m in ("weight", "activation") for v in ("trained",)]
    rows += [{"lr": 0.1, "variant": "degraded", "method": m, "reset": True, "accuracy_barrier": 0.02,
              "accuracy_a": 0.7, "accuracy_b": 0.71} for m in ("weight", "activation")]
    fig = plots.plot_lr_barriers(pd.DataFrame(rows), reset=True, title="t")
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes[0].lines) == 4
