"""ImageNet (ILSVRC-2012) on data the user provides, and torchvision ResNet50s from weight files
the user points to: nothing is ever downloaded.

**Data.** The images are read with ``torchvision.datasets.ImageFolder`` from
``$LMC_DATA_DIR/imagenet/{train,val}/<wnid>/*.JPEG`` (the usual layout: one folder per class,
named by its WordNet id, 1000 of them; the validation images sorted into class folders as well).
Every image goes through the standard evaluation transform (resize the short side to
``resolution * 256 / 224``, centre crop ``resolution``, ImageNet mean and std), also the training
images used for RESET statistics and layer inputs. A split is far too large to hold as one tensor,
so :func:`load` returns a :class:`StreamedData`: the same ``batches`` / ``len`` interface as
:class:`lmc_utils.data.TensorData`, so :func:`lmc_utils.evaluation.evaluate` and
:func:`lmc_utils.renorm.reset` take it as they are, but each batch is decoded by DataLoader
workers when it is asked for.

A missing folder raises :class:`ImageNetNotFoundError` saying where the images must go. ``fake=True``
(tests) gives ``torchvision.datasets.FakeData`` of the same shape instead (1000 classes, square
images of ``resolution`` pixels, a fixed seed per split); a dry run (:mod:`lmc_utils.dry_run`) does
the same, with a warning, when the folder is absent, and cuts every split to its few examples.

**Models.** :func:`torchvision_model` builds ``torchvision.models.resnet50(weights=None)`` and loads a state
dict from a file (:func:`load_weights`: ``torch.load(..., weights_only=True)``; a missing file, a
file that is not a state dict, or a state dict of another architecture is one
:class:`WeightsError`). Relative paths are looked up under ``$LMC_DATA_DIR``. In a dry run a missing
file gives a randomly initialised ResNet50 (seeded) with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from .data import DataNotFoundError
from . import settings
from .paths import data_dir

FOLDER = "imagenet"  # $LMC_DATA_DIR/imagenet/{train,val}
SPLITS = ("train", "val")
NUM_CLASSES = 1000
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the ImageNet constants torchvision's models expect
RESOLUTION = 224  # the standard evaluation crop (resize to 256 first)
_DRY_SPLIT = {"train": "train", "val": "test"}  # which of lmc_utils.settings.SPLIT_EXAMPLES caps a split


class ImageNetNotFoundError(DataNotFoundError):
    """ImageNet is not where :func:`load` looks for it (it is never downloaded)."""


class WeightsError(ValueError):
    """A ResNet50 weights file is missing, unreadable, or not a ResNet50 state dict."""


def split_folder(split: str) -> Path:
    """``$LMC_DATA_DIR/imagenet/<split>``."""
    return data_dir() / FOLDER / split


def _how_to_get(split: str) -> str:
    root = data_dir() / FOLDER
    return (f"ImageNet's {split} split was not found at {split_folder(split)}. This project never downloads "
            f"ImageNet: put the ILSVRC-2012 images there in torchvision's ImageFolder layout, "
            f"{root}/{{train,val}}/<wnid>/*.JPEG (1000 class folders named by WordNet id, e.g. n01440764; the "
            f"validation images sorted into the same class folders), or point LMC_DATA_DIR at a folder whose "
            f"imagenet/ sub-folder has them. To skip the ImageNet section of a notebook at the paper profile, "
            f"run it with -p imagenet '{{}}'.")


def eval_transform(resolution: int = RESOLUTION):
    """The standard evaluation transform: resize the short side to ``round(resolution * 256 / 224)``,
    centre crop ``resolution`` x ``resolution``, to a float tensor, normalise by :data:`MEAN`, :data:`STD`."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(round(resolution * 256 / 224)), T.CenterCrop(resolution), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


@dataclass
class StreamedData:
    """A subset of an image dataset decoded batch by batch: ``batches(batch_size)`` yields
    ``(x [B, 3, H, W] float32, y [B] int64)`` in a fixed order, as :class:`lmc_utils.data.TensorData`
    does (no ``x`` tensor: a split does not fit in memory)."""

    dataset: Any  # a torchvision dataset (ImageFolder or FakeData) yielding (tensor, int)
    indices: list[int]
    num_classes: int
    name: str
    split: str
    workers: int = 0

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` mini-batches on the CPU; ``shuffle`` draws the order with ``generator``."""
        from torch.utils.data import DataLoader, Subset

        order = self.indices
        if shuffle:
            order = [self.indices[i] for i in torch.randperm(len(self.indices), generator=generator).tolist()]
        loader = DataLoader(Subset(self.dataset, order), batch_size=batch_size, shuffle=False,
                            num_workers=self.workers, pin_memory=torch.cuda.is_available(),
                            persistent_workers=False)
        for x, y in loader:
            yield x, torch.as_tensor(y, dtype=torch.int64)

    def first(self, n: int) -> torch.Tensor:
        """The first ``n`` inputs as one ``[n, 3, H, W]`` tensor (a few hundred at most: layer inputs)."""
        xs, seen = [], 0
        for x, _ in self.batches(min(n, 64)):
            xs.append(x[: n - seen])
            seen += xs[-1].shape[0]
            if seen >= n:
                break
        return torch.cat(xs)


def _fake(split: str, size: int, resolution: int):
    import torchvision.datasets as tvd
    from torchvision import transforms as T

    offset = 0 if split == "train" else 10**6  # disjoint image seeds per split
    return tvd.FakeData(size=size, image_size=(3, resolution, resolution), num_classes=NUM_CLASSES,
                        transform=T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)]), random_offset=offset)


def load(split: str = "val", subset: int | None = None, seed: int = 0, resolution: int = RESOLUTION,
         fake: bool = False, fake_size: int = 16, workers: int = 0) -> StreamedData:
    """One ImageNet split as :class:`StreamedData`.

    Args:
        split: ``train | val``.
        subset: a random subset of this many images, fixed by ``seed`` and read in file order
            (``None``: the whole split).
        resolution: side of the centre crop (224 for the papers' numbers; tests use less).
        fake: ``torchvision.datasets.FakeData`` of ``fake_size`` images at ``resolution`` pixels
            instead of the files (tests; also a dry run's stand-in when the folder is absent).
        workers: DataLoader worker processes that decode the JPEGs (0: in this process).
    Raises:
        ImageNetNotFoundError: the split's folder is missing (outside a dry run), or it does not
            hold exactly 1000 class folders (torchvision's ResNet50 outputs follow that order).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown ImageNet split {split!r}; choose 'train' or 'val'")
    cap = settings.split_examples(_DRY_SPLIT[split])
    folder = split_folder(split)
    if not fake and not folder.is_dir():
        if not settings.fake_data_allowed():
            raise ImageNetNotFoundError(_how_to_get(split))
        fake = True
        warnings.warn(f"dry run: ImageNet is not in {folder}; using torchvision.datasets.FakeData "
                      f"(3x{resolution}x{resolution}, {NUM_CLASSES} classes) as its {split} split",
                      RuntimeWarning, stacklevel=2)
    if fake:
        dataset = _fake(split, cap or fake_size, resolution)
        workers = 0
    else:
        import torchvision.datasets as tvd

        dataset = tvd.ImageFolder(str(folder), transform=eval_transform(resolution))
        if len(dataset.classes) != NUM_CLASSES:
            raise ImageNetNotFoundError(f"{folder} has {len(dataset.classes)} class folders, not {NUM_CLASSES}: "
                                        f"the labels would not line up with ResNet50's outputs. " + _how_to_get(split))
    n = len(dataset)
    indices = list(range(n))
    for count, s in ((cap, 0), (subset, seed)):  # the dry run's cut first, as lmc_utils.data.load does
        if count is not None and count < len(indices):
            if count <= 0:
                raise ValueError(f"subset size must be positive, got {count}")
            g = torch.Generator().manual_seed(s)
            keep = torch.randperm(len(indices), generator=g)[:count].tolist()
            indices = sorted(indices[i] for i in keep)
    return StreamedData(dataset, indices, NUM_CLASSES, "imagenet", split, workers)


# --- models --------------------------------------------------------------------------------

def weights_path(path: str | Path) -> Path:
    """``path`` as given when absolute, else under ``$LMC_DATA_DIR``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else data_dir() / p


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside what ``torch.load`` returned (a state dict, or one under ``state_dict``
    or ``model``, as training scripts save them; a ``module.`` prefix of DataParallel dropped)."""
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the state dict in ``path`` (:func:`weights_path`) into ``model``, in place, with
    ``torch.load(..., weights_only=True)``. Raises :class:`WeightsError` when the file is missing or
    unreadable, or its keys or shapes are not the model's."""
    p = weights_path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {p} not found. Weights are never downloaded: save a torchvision "
                           f"ResNet50 state dict there (torch.save(model.state_dict(), path)), or give its path in "
                           f"the notebook's `imagenet: weights:` list (absolute, or relative to LMC_DATA_DIR={data_dir()}).")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, truncated, or pickled objects beyond tensors
        raise WeightsError(f"{p} could not be read with torch.load(weights_only=True): {err}") from err
    state = _state_dict(obj, p)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} (model {tuple(own[k].shape)})" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise WeightsError(f"{p} is not a state dict of {type(model).__name__}: "
                           f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
                           f"{len(shapes)} shape mismatches {shapes[:3]}")
    model.load_state_dict(state)
    return model


ARCHS = ("resnet50", "resnet18")  # resnet18: tests of the code paths only (the papers use ResNet50)


def torchvision_model(weights: str | Path | None, arch: str = "resnet50", seed: int = 0,
                      device: str | torch.device = "cpu") -> nn.Module:
    """``torchvision.models.<arch>(weights=None)`` (ResNet50 unless a test asks for ResNet18) with the
    state dict of the file ``weights`` (:func:`load_weights`), in eval mode on ``device``.
    ``weights=None``: random initialisation seeded by ``seed`` (tests); in a dry run a missing file
    gives the same, with a warning. Nothing is fetched: torchvision's own ``weights=`` is never used."""
    import torchvision

    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if weights is not None and settings.fake_data_allowed() and not weights_path(weights).is_file():
        warnings.warn(f"dry run: {arch} weights {weights_path(weights)} not found; using a randomly initialised "
                      f"{arch} (seed {seed})", RuntimeWarning, stacklevel=2)
        weights = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(torchvision.models, arch)(weights=None)
    if weights is not None:
        load_weights(model, weights)
    return model.to(device).eval()
