"""ImageNet on user-provided data and weight files (lmc_utils.imagenet) and the ImageNet sections of
notebooks 02 and 05 (lmc_utils.studies.imagenet_resnet50), on FakeData and random-init models.

The studies run on torchvision's ResNet18 here (the papers use ResNet50): the code paths are the same
(traced spec, first conv ``conv1``, BatchNorm), ResNet50's 25M weights would cost tens of seconds
per test on one core (SVDs, pruning), and the traced ResNet50 spec is tested in test_traced_spec.py.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from lmc_utils import dry_run, imagenet, profiles, pruning, spectral
from lmc_utils import permutation as P
from lmc_utils import verdicts as V
from lmc_utils.studies import imagenet_resnet50 as study


@pytest.fixture
def no_dry_run(monkeypatch):
    monkeypatch.delenv(dry_run.VARIABLE, raising=False)
    monkeypatch.delenv(dry_run.PLAN_VARIABLE, raising=False)


def test_missing_imagenet_says_where_to_put_it(tmp_path, monkeypatch, no_dry_run):
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path))
    with pytest.raises(imagenet.ImageNetNotFoundError) as err:
        imagenet.load("val")
    msg = str(err.value)
    assert str(tmp_path / "imagenet" / "val") in msg and "<wnid>/*.JPEG" in msg and "never downloads" in msg
    assert "-p imagenet '{}'" in msg
    with pytest.raises(ValueError, match="unknown ImageNet split"):
        imagenet.load("test")


def _image_folder(root, classes: int, per_class: int = 1, size: int = 12):
    for c in range(classes):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((size, size + 4, 3), (c * 7 + i) % 256, dtype=np.uint8)).save(folder / f"{i}.JPEG")


def test_image_folder_layout_is_read_with_the_eval_transform(tmp_path, monkeypatch, no_dry_run):
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(imagenet, "NUM_CLASSES", 8)  # 8 class folders stand for ImageNet's 1000
    _image_folder(tmp_path / "imagenet" / "val", 8)
    val = imagenet.load("val", subset=6, seed=3, resolution=8)
    assert len(val) == 6 and val.indices == sorted(val.indices)
    x, y = next(val.batches(6))
    assert x.shape == (6, 3, 8, 8) and x.dtype == torch.float32
    assert y.tolist() == [val.dataset.targets[i] for i in val.indices]  # labels: sorted wnid order
    # a uniform grey image of value g is (g / 255 - mean) / std after normalisation
    g = (y[0].item() * 7) % 256
    assert torch.allclose(x[0, :, 4, 4], (g / 255 - torch.tensor(imagenet.MEAN)) / torch.tensor(imagenet.STD), atol=0.03)
    _image_folder(tmp_path / "imagenet" / "train", 3)
    with pytest.raises(imagenet.ImageNetNotFoundError, match="3 class folders, not 8"):
        imagenet.load("train")


def test_fake_data_and_the_dry_run_stand_in(tmp_path, monkeypatch, no_dry_run):
    fake = imagenet.load("val", fake=True, fake_size=5, resolution=16)
    x, y = next(fake.batches(8))
    assert x.shape == (5, 3, 16, 16) and int(y.max()) < imagenet.NUM_CLASSES
    assert torch.equal(x, next(imagenet.load("val", fake=True, fake_size=5, resolution=16).batches(8))[0])
    assert not torch.equal(x[:4], next(imagenet.load("train", fake=True, fake_size=5, resolution=16).batches(4))[0])
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(dry_run.VARIABLE, "1")
    with pytest.warns(RuntimeWarning, match="ImageNet is not in"):
        val = imagenet.load("val", resolution=16)
    assert len(val) == dry_run.SPLIT_EXAMPLES["test"]
    with pytest.warns(RuntimeWarning, match="randomly initialised"):
        model = imagenet.torchvision_model("imagenet/missing.pth", "resnet18", seed=1)
    assert torch.equal(model.conv1.weight, imagenet.torchvision_model(None, "resnet18", seed=1).conv1.weight)


class NotATensor:  # pickled by the test below: torch.load(weights_only=True) must refuse it
    pass


def test_weight_files_load_or_fail_clearly(tmp_path, monkeypatch, no_dry_run):
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path))
    with pytest.raises(imagenet.WeightsError, match="never downloaded"):
        imagenet.torchvision_model("imagenet/resnet50_a.pth")
    src = imagenet.torchvision_model(None, "resnet18", seed=5)
    (tmp_path / "w").mkdir()
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "w" / "a.pth")
    got = imagenet.torchvision_model("w/a.pth", "resnet18", seed=0)  # relative to LMC_DATA_DIR; wrapped, DataParallel keys
    assert all(torch.equal(v, got.state_dict()[k]) for k, v in src.state_dict().items())
    with pytest.raises(imagenet.WeightsError, match="is not a state dict of ResNet: [1-9][0-9]* missing keys"):
        imagenet.torchvision_model(tmp_path / "w" / "a.pth", "resnet50")  # resnet18 weights, resnet50 model
    torch.save({"a": NotATensor()}, tmp_path / "w" / "pickle.pth")
    with pytest.raises(imagenet.WeightsError, match="weights_only=True"):
        imagenet.load_weights(src, tmp_path / "w" / "pickle.pth")
    (tmp_path / "w" / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(imagenet.WeightsError, match="could not be read"):
        imagenet.load_weights(src, tmp_path / "w" / "junk.pth")
    torch.save([1, 2], tmp_path / "w" / "list.pth")
    with pytest.raises(imagenet.WeightsError, match="does not hold a state dict"):
        imagenet.load_weights(src, tmp_path / "w" / "list.pth")


def test_threshold_pruning_matches_torch_prune_and_breaks_ties_by_order():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 36, 10))
    for method in ("global_magnitude", "layer_magnitude"):
        for s in (0.3, 0.8):
            a, b = pruning.prune_model(model, s, method), pruning.prune_model(model, s, method, threshold=True)
            assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    tied = torch.nn.Linear(4, 2)
    with torch.no_grad():
        tied.weight.copy_(torch.tensor([[1.0, -1.0, 3.0, 1.0], [2.0, 1.0, -4.0, 5.0]]))
    out = pruning.prune_model(tied, 0.25, "layer_magnitude", threshold=True).weight  # 2 of the four 1s go
    assert out.tolist() == [[0.0, -0.0, 3.0, 1.0], [2.0, 1.0, -4.0, 5.0]]


def test_streamed_input_alignment_equals_the_materialised_one():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 3, stride=2),
                                torch.nn.Flatten(), torch.nn.Linear(3 * 9, 5)).double()
    x = torch.randn(6, 2, 8, 8, dtype=torch.float64)
    svds = spectral.spectra(model.state_dict())
    full = spectral.layer_inputs(model, x, max_rows=None)
    got = spectral.streamed_input_alignment(model, {n: d.v for n, d in svds.items()}, x.split(4), rows_per_batch=None)
    for name, d in svds.items():
        assert torch.allclose(got[name], spectral.input_alignment(d.v, full[name]), atol=1e-6)


LAYERS = ["conv1", "layer1.0.conv1", "layer2.0.downsample.0", "fc"]  # a few SVDs: the rest costs seconds each


def test_merge_study_recovers_a_planted_permutation(tmp_path, no_dry_run):
    a = imagenet.torchvision_model(None, "resnet18", seed=0)
    spec = P.spec_for(a)
    planted = P.random_permutation(spec, seed=3)
    torch.save(a.state_dict(), tmp_path / "a.pth")
    torch.save(P.apply_permutation(spec, planted, a.state_dict()), tmp_path / "b.pth")
    res = study.run_merge([tmp_path / "a.pth", tmp_path / "b.pth"], n_orders=1, max_sweeps=3, val_examples=4,
                          reset_examples=4, input_examples=2, input_rows=64, top=2, resolution=32, batch_size=4,
                          workers=0, arch="resnet18", layers=LAYERS, fake=True, progress=False)
    al = res.alignment.set_index(["method", "layer"])
    assert np.allclose(al.loc["weight", ["top", "bottom"]].to_numpy(), 1.0, atol=1e-6)  # every singular vector back
    assert al.loc["naive", "top"].max() < 0.99
    mids = res.midpoints.set_index(["method", "reset"])
    end = res.endpoints.iloc[0]
    assert abs(mids.loc[("weight", False), "loss"] - end["loss"]) < 1e-4  # the matched midpoint is A itself
    assert abs(mids.loc[("naive", False), "loss"] - end["loss"]) > 1e-3
    assert res.endpoints["loss"].iloc[0] == pytest.approx(res.endpoints["loss"].iloc[1], abs=1e-5)
    tables = study.merge_tables(res)
    assert tables["02_imagenet_merge"]["paper_value"].iloc[0] == study.ITO_ENDPOINT_ACCURACY
    assert set(tables["02_imagenet_input_alignment"]["layer"]) == set(LAYERS)
    criteria = V.load_criteria("02_imagenet")
    rows = study.merge_verdicts(res, criteria)
    V.check_declared(rows, criteria)
    assert (rows["n"] == [1, 1, 1, 2]).all() and (rows["verdict"][:3] == "inconclusive").all()  # one pair, two models
    with pytest.raises(ValueError, match="even number"):
        study.run_merge([tmp_path / "a.pth"], fake=True)


def test_pruning_study_reaches_the_sparsity_and_keeps_the_first_conv(no_dry_run):
    res = study.run_pruning([None], [0.9], judge_sparsity=0.9, exclude=["conv1"], val_examples=4,
                            reset_examples=4, resolution=32, batch_size=4, workers=0, arch="resnet18", fake=True,
                            progress=False)
    acc = res.accuracy
    assert len(acc) == 2 * 2 and np.allclose(acc["achieved"], acc["sparsity"], atol=1e-6)
    assert (acc["excluded_sparsity"] == 0).all()
    table = study.pruning_tables(res)["05_imagenet_pruning"]
    assert table["paper_gain"].isna().all()  # Qu & Horvath give a number at 80% only
    frame, declared = study.with_verdicts(V.table([]), {}, res)
    V.check_declared(frame, declared)
    assert set(frame["notebook"]) == {"05_pruning"} and len(frame) == 4  # 2 claims x 2 methods
    with pytest.raises(ValueError, match="not one of the sparsities"):
        study.run_pruning([None], [0.5], judge_sparsity=0.8, fake=True)
    with pytest.raises(ValueError, match="not Linear/Conv2d layers"):
        pruning.prune_model(torch.nn.Sequential(torch.nn.Linear(2, 2)), 0.5, exclude=["stem"])


def test_sections_are_off_at_smoke_and_cpu_and_small_in_the_dry_run():
    for profile in ("smoke", "cpu"):
        for nb in ("02_singular_vectors", "05_pruning"):
            assert profiles.notebook_sections(profile)[nb]["imagenet"] is None
    frame = V.table([])
    assert study.with_verdicts(frame, {}, None)[0] is frame  # a section that did not run adds nothing
    paper = profiles.notebook_sections("paper")
    p05 = dry_run.budget("05_pruning", paper["05_pruning"])["imagenet"]
    assert p05["sparsities"] == [paper["05_pruning"]["imagenet"]["judge_sparsity"]] and p05["resolution"] == 64
    p02 = dry_run.budget("02_singular_vectors", paper["02_singular_vectors"])["imagenet"]
    assert p02["n_orders"] == 1 and p02["workers"] == 0 and p02["weights"] == paper["02_singular_vectors"]["imagenet"]["weights"]
    assert dry_run.budget("05_pruning", {"imagenet": None})["imagenet"] is None
