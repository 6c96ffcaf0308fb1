"""The GPU data path (lmc_utils.gpu_data) on CPU: the crop and flip are exact, the device generator
makes augmentation reproducible, bf16 autocast training matches float32 training up to rounding,
bf16=False is plain float32 SGD, and evaluation stays float32 inside an autocast region."""

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lmc_utils import zoo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gpu_data  # noqa: E402  (bench/gpu_data.py: the GPU data path of bench/bench_epoch.py)
from lmc_utils.data import TensorData


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorData(x=torch.randn(n, 3, 32, 32, generator=g), y=torch.randint(0, 10, (n,), generator=g),
                      num_classes=10, name="cifar10", split="train")


def test_crop_flip_is_the_padded_crop_and_mirror():
    x = _images(6).x
    dx, dy = torch.tensor([0, 8, 4, 3, 1, 7]), torch.tensor([8, 0, 4, 5, 2, 6])
    flip = torch.tensor([False, True, False, True, True, False])
    out = gpu_data.crop_flip(x, dx, dy, flip)
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(6):
        ref = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        assert torch.equal(out[i], ref.flip(-1) if flip[i] else ref)
    centre = gpu_data.crop_flip(x, torch.full((6,), 4), torch.full((6,), 4), torch.zeros(6, dtype=torch.bool))
    assert torch.equal(centre, x)  # offset 4 without a flip is the identity


def test_augmentation_is_seeded_on_the_device_and_keeps_channels_last():
    data = gpu_data.to_device(_images(64), "cpu")
    assert data.x.is_contiguous(memory_format=torch.channels_last)
    a = gpu_data.augment(data.x, gpu_data.generator("cpu", 3))
    b = gpu_data.augment(data.x, gpu_data.generator("cpu", 3))
    c = gpu_data.augment(data.x, gpu_data.generator("cpu", 4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.is_contiguous(memory_format=torch.channels_last) and a.shape == data.x.shape
    if torch.cuda.is_available():  # a generator must live where the batch is
        with pytest.raises(ValueError, match="generator"):
            gpu_data.augment(data.x, gpu_data.generator("cuda", 0))


def test_crop_flip_agrees_with_the_zoo_augmentation():
    """With the offsets the zoo would draw, the device crop is the zoo's (bit for bit)."""
    x = _images(8).x
    gen = torch.Generator().manual_seed(5)
    zoo_out = zoo.trainers._augment(x, gen)
    gen = torch.Generator().manual_seed(5)
    dx, dy = torch.randint(0, 9, (8,), generator=gen), torch.randint(0, 9, (8,), generator=gen)
    flip = torch.rand(8, generator=gen) < 0.5
    assert torch.equal(gpu_data.crop_flip(x, dx, dy, flip), zoo_out)


def _resnet(seed=0, width=1):
    cfg = zoo.TrainConfig(dataset="cifar10", arch="resnet20", model={"norm": "batchnorm", "width_multiplier": width},
                          seed=seed)
    from lmc_utils.device import place

    return place(zoo.build_model(cfg), "cpu")


def _train(model, data, bf16, epochs=2, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = gpu_data.generator("cpu", 0)
    return [gpu_data.train_epoch(model, data, opt, 32, gen, bf16=bf16) for _ in range(epochs)]


def _learnable(n=128, seed=0):
    """Images = a per-class template + noise: a task with signal, so the losses can fall."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(10, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    x = templates[y] + 0.5 * torch.randn(n, 3, 32, 32, generator=g)
    return TensorData(x=x, y=y, num_classes=10, name="cifar10", split="train")


def test_bf16_training_matches_float32_up_to_autocast_rounding():
    data = gpu_data.to_device(_learnable(), "cpu")
    model = _resnet()
    with torch.no_grad():  # one forward pass: bf16 logits are float32's up to rounding
        model.eval()
        ref = model(data.x)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            low = model(data.x).float()
    assert 0 < float((low - ref).norm() / ref.norm()) < 0.05
    # Training at half width on 96 images (CPU autocast convolutions are slow: ~10 s, was ~30 s at width 1)
    data = gpu_data.to_device(_learnable(96), "cpu")
    fp32, bf16 = _resnet(width=0.5), _resnet(width=0.5)
    h32, h16 = (_train(m, data, bf16=b, epochs=4, lr=0.1) for m, b in ((fp32, False), (bf16, True)))
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # weights and optimiser stay float32
    assert h32[-1]["train_loss"] < 0.9 * h32[0]["train_loss"]  # it learns ...
    for a, b in zip(h32, h16):  # ... and bf16 follows float32's loss curve
        assert abs(a["train_loss"] - b["train_loss"]) < 0.05 * a["train_loss"], (h32, h16)


def test_float32_epoch_is_plain_sgd():
    """bf16=False: exactly the float32 loop written out by hand (same order, same augmentation)."""
    data = gpu_data.to_device(_images(64), "cpu")
    model, ref = _resnet(), _resnet()
    gpu_data.train_epoch(model, data, torch.optim.SGD(model.parameters(), lr=0.05), 32,
                         gpu_data.generator("cpu", 1), bf16=False)
    opt, gen = torch.optim.SGD(ref.parameters(), lr=0.05), gpu_data.generator("cpu", 1)
    ref.train()
    order = torch.randperm(64, generator=gen)
    for i in range(0, 64, 32):
        x = gpu_data.augment(data.x[order[i:i + 32]], gen)
        loss = F.cross_entropy(ref(x), data.y[order[i:i + 32]])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), ref.state_dict().values()))


def test_evaluation_is_float32_inside_autocast():
    data = gpu_data.to_device(_images(40), "cpu")
    model = _resnet()
    plain = gpu_data.evaluate(model, data, batch_size=16)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        inside = gpu_data.evaluate(model, data, batch_size=16)
    assert plain == inside
    from lmc_utils.evaluation import evaluate

    loss, acc = evaluate(copy.deepcopy(model), data)
    assert abs(loss - plain[0]) < 1e-4 and acc == plain[1]


def test_compile_is_optional():
    model = _resnet()
    assert gpu_data.compiled(model, False) is model
