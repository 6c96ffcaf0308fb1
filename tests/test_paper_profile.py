"""Every model the paper profile trains can be built, trained for a step and matched on CPU,
so that profile cannot rot where no GPU (or CIFAR) is at hand."""

import json

import pytest
import torch

from lmc_utils import matching, profiles, zoo
from lmc_utils.claims import quality
from lmc_utils import permutation as P
from lmc_utils.data import NUM_CLASSES, TensorData

# not the `labels` section; without the accuracy floors (declared beside the training fields, not among them)
PAPER = {nb: quality.strip(section) for nb, section in profiles.notebook_sections("paper").items()}


def _train_configs(section: dict) -> dict[str, dict]:
    """Every training config in a notebook's section: the ``experiments`` mapping and any
    parameter that is itself a config (has ``dataset`` and ``arch``)."""
    found = dict(section.get("experiments") or {})
    found.update({k: v for k, v in section.items() if isinstance(v, dict) and {"dataset", "arch"} <= set(v)})
    return found


CONFIGS = {f"{nb}/{name}": cfg for nb, section in PAPER.items() for name, cfg in _train_configs(section).items()}


def _kind(cfg: dict) -> str:
    """What decides the code a training step and a matching take: dataset, architecture, model
    options, optimizer, schedule and SWA (not learning rates, epochs or weight decay)."""
    return json.dumps([cfg["dataset"], cfg["arch"], cfg.get("model") or {}, cfg.get("optimizer"),
                       cfg.get("schedule"), bool(cfg.get("swa_epochs"))], sort_keys=True)


# one config of each kind trains a step (the paper profile repeats architectures across notebooks
# at other learning rates and weight decays; every config is still checked to build)
KINDS = {}
for _name, _cfg in sorted(CONFIGS.items()):
    KINDS.setdefault(_kind(_cfg), _name)


def test_paper_profile_uses_the_papers_models():
    archs = {(c["arch"], c["model"].get("config"), c["model"].get("width_multiplier", 1)) for c in CONFIGS.values()}
    assert ("vgg", "vgg16", 1) in archs and ("resnet20", None, 4) in archs
    assert any(c["dataset"] == "cifar10" for c in CONFIGS.values())


def test_every_paper_config_is_valid():
    for name, cfg in CONFIGS.items():
        config = zoo.TrainConfig(**cfg)
        assert config.dataset in zoo.INPUT_SHAPES, name


@pytest.mark.parametrize("name", sorted(KINDS.values()))
def test_paper_model_trains_a_step_and_matches(name, monkeypatch):
    cfg = CONFIGS[name]
    config = zoo.TrainConfig(**{**cfg, "epochs": 1, "batch_size": 4, "warmup_epochs": 0,
                                "swa_epochs": min(cfg.get("swa_epochs", 0), 2)})
    shape = zoo.INPUT_SHAPES[config.dataset]

    def synthetic(dataset, split, subset=None, seed=0, device="cpu", **_):
        g = torch.Generator().manual_seed(seed)
        return TensorData(torch.randn(4, *shape, generator=g), torch.randint(0, NUM_CLASSES[dataset], (4,), generator=g),
                          NUM_CLASSES[dataset], dataset, split).to(device)

    monkeypatch.setattr(zoo.trainers.data_mod, "load", synthetic)
    before = zoo.build_model(config).state_dict()
    trained = zoo.train(config, device="cpu", progress=False)  # one optimisation step (4 examples, batch 4)
    after = trained.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    other = zoo.build_model(config.replace(seed=config.seed + 1)).state_dict()
    spec = P.spec_for(trained.model)
    res = matching.weight_matching(spec, after, other, max_sweeps=2)
    assert set(res.perm) == set(spec.sizes) and res.objective[-1] >= res.objective[0]
