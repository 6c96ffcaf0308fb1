"""Datasets as whole tensors: Moons (scikit-learn), MNIST, FashionMNIST, CIFAR-10/100 (torchvision).

Small datasets are held entirely in memory (and on the chosen device) as one tensor of
inputs and one of labels, so training and evaluation need no DataLoader workers.

Files are looked up in ``LMC_DATA_DIR`` (default ``./data``) in torchvision's layout, e.g.
``$LMC_DATA_DIR/MNIST/raw/train-images-idx3-ubyte.gz``. That folder is treated as read-only:
when only the ``.gz`` files are there they are checked (md5) and unpacked into the project's
cache (``LMC_CACHE_DIR/datasets``), with a SHA-256 digest of every unpacked file recorded at
unpack time; a cached file that no longer matches its digest (flipped bytes, truncation) is
reported by name and unpacked again. When files are missing they are downloaded if allowed
(``download=True``, or ``LMC_OFFLINE`` unset) into the cache, never into ``LMC_DATA_DIR``;
otherwise :class:`DataNotFoundError` says where they must go.

In a dry run (:mod:`lmc_utils.dry_run`) every split is cut to a few examples, and a CIFAR-10/100
that is not on disk is replaced, with a warning, by CIFAR-shaped ``torchvision.datasets.FakeData``
(3 x 32 x 32 images, the dataset's number of classes, a fixed seed per split) in the same format.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import shutil
import tarfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import numpy as np
import torch

from .atomic import atomic_path, write_text
from .device import get_device
from . import settings
from .paths import cache_dir, data_dir

DATASETS = ("moons", "mnist", "fashion_mnist", "cifar10", "cifar100")
SPLITS = ("train", "test")

# Per-channel mean and standard deviation of the training images (the usual constants).
NORMALIZATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
NUM_CLASSES = {"moons": 2, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100}
_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}
_CIFAR_FOLDERS = {"cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz"),
                  "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz")}


class DataNotFoundError(FileNotFoundError):
    """A dataset is not on disk and may not (or could not) be downloaded."""


@dataclass(frozen=True)
class TensorData:
    """A whole dataset split held as tensors.

    ``x``: inputs, float32, ``[N, C, H, W]`` for images (normalised per channel) or
    ``[N, 2]`` for Moons; ``y``: int64 labels ``[N]``.
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str
    split: str

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def to(self, device: str | torch.device) -> "TensorData":
        dev = get_device(device)
        return replace(self, x=self.x.to(dev), y=self.y.to(dev))

    def subset(self, n: int | None, seed: int = 0) -> "TensorData":
        """A random subset of ``n`` examples (fixed by ``seed``); ``None`` keeps all."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"subset size must be positive, got {n}")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].to(self.x.device)
        return replace(self, x=self.x[idx], y=self.y[idx])

    def batches(self, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` mini-batches; shuffled with ``generator`` (a CPU generator)."""
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator).to(self.x.device)
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                yield self.x.index_select(0, idx), self.y.index_select(0, idx)  # the rows of x[idx], gathered faster
        else:
            for i in range(0, n, batch_size):
                yield self.x[i:i + batch_size], self.y[i:i + batch_size]


def load(name: str, split: str = "train", subset: int | None = None, seed: int = 0,
         device: str | torch.device = "cpu", download: bool | None = None,
         n_samples: int = 1000, noise: float = 0.1) -> TensorData:
    """Load a dataset split as :class:`TensorData`.

    Args:
        name: ``moons | mnist | fashion_mnist | cifar10 | cifar100``.
        split: ``train | test``.
        subset: keep a random subset of this many examples (``None``: all).
        seed: seed of the subset (and, for Moons, of the sampled points).
        device: where the tensors live (``auto`` picks CUDA when available).
        download: allow downloading missing files; ``None`` means "unless ``LMC_OFFLINE`` is set".
        n_samples, noise: Moons only — number of points and Gaussian noise of ``make_moons``.

    In a dry run the split is first cut to :func:`lmc_utils.core.settings.split_examples` examples (seed
    0), and a missing CIFAR is CIFAR-shaped ``FakeData`` (see the module docstring).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if name == "moons":
        x, y = _moons(split, n_samples, noise, seed)
    else:
        if download is None:
            download = not settings.offline()
        x, y = _torchvision_tensors(name, split, bool(download), settings.fake_data_allowed())
    data = TensorData(x=x, y=y, num_classes=NUM_CLASSES[name], name=name, split=split)
    return data.subset(settings.split_examples(split), seed=0).subset(subset, seed=seed).to(device)


def _moons(split: str, n_samples: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import make_moons

    # Train and test points come from disjoint random streams of the same distribution.
    state = seed * 2 + (0 if split == "train" else 1)
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=state)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


@functools.lru_cache(maxsize=8)
def _torchvision_tensors(name: str, split: str, download: bool,
                         fake_if_missing: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Full split as normalised float32 ``[N, C, H, W]`` images and int64 labels (CPU, cached);
    ``fake_if_missing``: a CIFAR not on disk is :func:`_fake_cifar` instead (dry runs)."""
    ds = _torchvision_dataset(name, split == "train", download, fake_if_missing)
    images = torch.as_tensor(np.asarray(ds.data))
    if images.ndim == 3:  # MNIST-like: [N, H, W] uint8
        images = images.unsqueeze(1)
    else:  # CIFAR: [N, H, W, C] uint8
        images = images.permute(0, 3, 1, 2)
    mean, std = NORMALIZATION[name]
    x = images.float().div_(255.0)
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return x.contiguous(), y


def _how_to_get(name: str, folder: Path) -> str:
    cls = _TORCHVISION[name]
    if name in _CIFAR_FOLDERS:
        where = f"{folder / _CIFAR_FOLDERS[name][0]} (or the archive {folder / _CIFAR_FOLDERS[name][1]})"
    else:
        where = f"{folder / cls / 'raw'} (the four *-ubyte.gz files)"
    return (f"{cls} was not found. Put it in {where}, or point LMC_DATA_DIR at a folder that has it "
            f"in torchvision's layout, or allow downloading (unset LMC_OFFLINE and pass download=True; "
            f"torchvision.datasets.{cls}(root, download=True) fetches it).")


def _torchvision_dataset(name: str, train: bool, download: bool, fake_if_missing: bool = False):
    import torchvision.datasets as tvd

    cls = getattr(tvd, _TORCHVISION[name])
    root = _prepared_root(name)
    if root is not None:
        return cls(root=str(root), train=train, download=False)
    if fake_if_missing and name in _CIFAR_FOLDERS:
        return _fake_cifar(name, train)
    if not download:
        raise DataNotFoundError(_how_to_get(name, data_dir()))
    dest = cache_dir() / "datasets"  # downloads go to the project's cache; LMC_DATA_DIR stays read-only
    try:
        ds = cls(root=str(dest), train=train, download=True)
    except Exception as err:  # network off, mirror down, ...
        raise DataNotFoundError(f"download failed ({err}). " + _how_to_get(name, data_dir())) from err
    if name not in _CIFAR_FOLDERS:
        raw = dest / _TORCHVISION[name] / "raw"
        _record_digests(raw, [Path(url).with_suffix("").name for url, _ in cls.resources])
    return ds


def _fake_cifar(name: str, train: bool) -> SimpleNamespace:
    """CIFAR-shaped ``torchvision.datasets.FakeData`` for a dry run, as the attributes the loader
    reads from a torchvision CIFAR: ``data`` (uint8 ``[N, 32, 32, 3]``) and ``targets`` (ints in
    ``0 .. classes - 1``). ``N`` is the dry run's split size; image ``i`` of the train (test) split
    is drawn with seed ``i`` (``N + i``), so every process gets the same images."""
    import torchvision.datasets as tvd

    split = "train" if train else "test"
    n = settings.SPLIT_EXAMPLES[split]
    warnings.warn(f"dry run: {_TORCHVISION[name]} is not in {data_dir()}; using {n} CIFAR-shaped "
                  f"torchvision.datasets.FakeData images (3x32x32, {NUM_CLASSES[name]} classes) as its {split} split",
                  RuntimeWarning, stacklevel=4)
    fake = tvd.FakeData(size=n, image_size=(3, 32, 32), num_classes=NUM_CLASSES[name], random_offset=0 if train else n)
    images, targets = zip(*((np.asarray(image, dtype=np.uint8), int(target)) for image, target in fake))
    return SimpleNamespace(data=np.stack(images), targets=list(targets))


def _prepared_root(name: str) -> Path | None:
    """A root folder torchvision can read without downloading, unpacking into the cache if needed."""
    import torchvision.datasets as tvd

    if name in _CIFAR_FOLDERS:
        folder, archive = _CIFAR_FOLDERS[name]
        for root in (data_dir(), cache_dir() / "datasets"):
            if (root / folder).is_dir():
                return root
        if (data_dir() / archive).is_file():
            dest = cache_dir() / "datasets"
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(data_dir() / archive) as tar:
                tar.extractall(dest, filter="data")
            return dest
        return None

    cls = _TORCHVISION[name]
    resources = getattr(tvd, cls).resources
    gz_names = [Path(url).name for url, _ in resources]
    names = [Path(n).with_suffix("").name for n in gz_names]
    user_raw = data_dir() / cls / "raw"
    if all((user_raw / n).is_file() for n in names):  # unpacked by the user: theirs to keep right
        return data_dir()
    dest_root = cache_dir() / "datasets"
    dest = dest_root / cls / "raw"
    if all((dest / n).is_file() for n in names):
        bad = _failed_digests(dest, names)
        if not bad:
            return dest_root
        why = ("do not match the digest recorded when they were unpacked (corrupt or truncated)"
               if (dest / DIGESTS_FILE).is_file() else "have no recorded digest (unpacked by an older version)")
        warnings.warn(f"unpacked dataset file(s) {', '.join(str(dest / n) for n in bad)} {why}; unpacking them again",
                      RuntimeWarning, stacklevel=3)
    sources = [src for src in (user_raw, dest) if all((src / n).is_file() for n in gz_names)]
    if not sources:
        return None
    src = sources[0]
    dest.mkdir(parents=True, exist_ok=True)
    for (url, md5), gz_name in zip(resources, gz_names):
        gz = src / gz_name
        if md5 and _file_digest(gz, "md5") != md5:
            raise DataNotFoundError(f"{gz} is corrupt (md5 mismatch); replace it. " + _how_to_get(name, data_dir()))
        with gzip.open(gz, "rb") as fin, atomic_path(dest / Path(gz_name).with_suffix("").name) as tmp:
            with open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    _record_digests(dest, names)
    return dest_root


DIGESTS_FILE = "lmc-digests.json"


def _record_digests(folder: Path, names: list[str]) -> None:
    """Write the SHA-256 of each unpacked file in ``folder`` (checked by :func:`_failed_digests`)."""
    digests = {n: _file_digest(folder / n) for n in names if (folder / n).is_file()}
    write_text(folder / DIGESTS_FILE, json.dumps(digests, indent=1, sort_keys=True))


def _failed_digests(folder: Path, names: list[str]) -> list[str]:
    """The files of ``folder`` whose content differs from the digest recorded at unpack time (all
    of them when no digest was recorded)."""
    try:
        recorded = json.loads((folder / DIGESTS_FILE).read_text())
    except (OSError, ValueError):
        return list(names)
    return [n for n in names if recorded.get(n) != _file_digest(folder / n)]


def _file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``md5`` for torchvision's published checksums)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
