"""Datasets load offline as tensors; missing or corrupt files give clear errors."""

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import needs_mnist
from lmc_utils import data


@pytest.fixture(autouse=True)
def _fresh_tensor_cache():
    data._torchvision_tensors.cache_clear()
    yield
    data._torchvision_tensors.cache_clear()


def test_moons_is_seeded_and_split():
    a = data.load("moons", "train", n_samples=200, seed=3)
    b = data.load("moons", "train", n_samples=200, seed=3)
    t = data.load("moons", "test", n_samples=200, seed=3)
    assert a.x.shape == (200, 2) and a.num_classes == 2
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, t.x)


def test_subsets_are_seeded_and_nested():
    full = data.load("moons", "train", n_samples=500)
    small, big = full.subset(50, seed=1), full.subset(100, seed=1)
    assert len(small) == 50 and torch.equal(small.x, big.x[:50])
    assert not torch.equal(small.x, full.subset(50, seed=2).x)


def test_bad_names_are_errors():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("svhn")
    with pytest.raises(ValueError, match="unknown split"):
        data.load("mnist", "validation")


def test_missing_data_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(data.DataNotFoundError, match=r"MNIST.*raw.*LMC_DATA_DIR"):
        data.load("mnist", "train")
    with pytest.raises(data.DataNotFoundError, match="cifar-10-batches-py"):
        data.load("cifar10", "test")


def _copy_mnist_gz(root: Path) -> tuple[Path, Path]:
    """Copy the MNIST .gz files of LMC_DATA_DIR into ``root/MNIST/raw``; return (source, copy) folders."""
    src = Path(os.environ["LMC_DATA_DIR"]) / "MNIST" / "raw"
    dst = root / "MNIST" / "raw"
    dst.mkdir(parents=True)
    for f in src.glob("*.gz"):
        shutil.copy(f, dst / f.name)
    return src, dst


@needs_mnist
def test_mnist_from_read_only_gz_files(tmp_path, monkeypatch):
    src, ro = _copy_mnist_gz(tmp_path / "ro")
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path / "ro"))
    ro.chmod(0o555)
    try:
        train = data.load("mnist", "train", subset=100)
        test = data.load("mnist", "test")
    finally:
        ro.chmod(0o755)
    assert train.x.shape == (100, 1, 28, 28) and len(test) == 10000
    assert abs(float(data.load("mnist", "train").x.mean())) < 1e-2  # normalised
    assert sorted(p.name for p in ro.iterdir()) == sorted(f.name for f in src.glob("*.gz"))  # untouched


@needs_mnist
def test_corrupt_gz_is_reported(tmp_path, monkeypatch):
    _, dst = _copy_mnist_gz(tmp_path / "bad")
    with gzip.open(dst / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00" * 100)
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path / "bad"))
    with pytest.raises(data.DataNotFoundError, match="corrupt"):
        data.load("mnist", "test")


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_path_on_synthetic_tensors(tmp_path, monkeypatch, name, classes):
    """CIFAR is not available offline: check the conversion on a stand-in with CIFAR's layout."""
    import torchvision.datasets as tvd

    folder = data._CIFAR_FOLDERS[name][0]
    (tmp_path / folder).mkdir()
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path))
    rng = np.random.default_rng(0)

    class FakeCIFAR:
        def __init__(self, root, train, download):
            assert Path(root) == tmp_path and download is False
            n = 50 if train else 20
            self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            self.targets = list(rng.integers(0, classes, n))

    monkeypatch.setattr(tvd, data._TORCHVISION[name], FakeCIFAR)
    train = data.load(name, "train")
    assert train.x.shape == (50, 3, 32, 32) and train.x.dtype == torch.float32
    assert train.num_classes == classes and train.y.dtype == torch.int64
    # per-channel normalisation of uint8 images: pixel p -> (p / 255 - mean_c) / std_c
    mean, std = torch.tensor(data.NORMALIZATION[name][0]), torch.tensor(data.NORMALIZATION[name][1])
    pixels = train.x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    torch.testing.assert_close(pixels * 255, (pixels * 255).round(), atol=1e-3, rtol=0)
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
    assert len(data.load(name, "test")) == 20


@needs_mnist
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_unpacked_cache_is_detected_and_unpacked_again(tmp_path, monkeypatch, damage):
    """Flipped bytes in the unpacked labels used to load silently wrong labels, and a truncated
    images file failed with a shape error naming no file: both are now caught by the digest
    recorded at unpack time, reported by file name, and unpacked again from the .gz files."""
    _copy_mnist_gz(tmp_path / "ro")
    monkeypatch.setenv("LMC_DATA_DIR", str(tmp_path / "ro"))
    good = data.load("mnist", "test")
    raw = Path(os.environ["LMC_CACHE_DIR"]) / "datasets" / "MNIST" / "raw"
    name = "t10k-labels-idx1-ubyte" if damage == "flip" else "t10k-images-idx3-ubyte"
    path = raw / name
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[100:110] = bytes((b + 1) % 10 for b in blob[100:110])  # still valid labels, wrong ones
    else:
        blob = blob[: len(blob) // 2]
    path.write_bytes(bytes(blob))
    data._torchvision_tensors.cache_clear()
    with pytest.warns(RuntimeWarning, match=name):
        again = data.load("mnist", "test")
    assert torch.equal(again.y, good.y) and torch.equal(again.x, good.x)


def test_written_files_follow_the_umask(tmp_path, monkeypatch):
    """Checkpoints, figures and tables used to be written 0600 (mkstemp's mode)."""
    from lmc_utils.atomic import write_text

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "t.md", "x")
        assert (path.stat().st_mode & 0o777) == 0o644
        os.umask(0o002)
        assert (write_text(tmp_path / "u.md", "x").stat().st_mode & 0o777) == 0o664
    finally:
        os.umask(old)
