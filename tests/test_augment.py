"""Training augmentation (issue 25, item 6): random crop with padding and horizontal flip on CIFAR, no flip on
SVHN's digits, per data set defaults that the config overrides; training batches only; the same seed, the
same crops and flips."""

from __future__ import annotations

import pytest
import torch

from nasnav.config import DataConfig, load_config, preset_path
from nasnav.data.augment import Augmentation
from nasnav.data.splits import load_splits
from nasnav.space import SearchSpace
from nasnav.train.modules import StandaloneModule
from nasnav.train.standalone import train_standalone
from nasnav.workflow.runs import round_space


@pytest.mark.parametrize("source,kind,shape,expected", [
    ("cifar10", "image", (3, 32, 32), (4, True)),
    ("cifar100", "image", (3, 32, 32), (4, True)),
    ("cifar", "image", (3, 32, 32), (4, True)),  # your own CIFAR batches
    ("fashion_mnist", "image", (1, 28, 28), (4, True)),
    ("svhn", "image", (3, 32, 32), (4, False)),  # a mirrored 2 is not a 2
    ("digits", "image", (1, 8, 8), (1, False)),
    ("folder", "image", (3, 64, 64), (4, False)),
    ("mnist1d", "sequence", (1, 40), (2, False)),
    ("csv", "tabular", (13,), (0, False)),
])
def test_each_data_set_has_its_default(source, kind, shape, expected):
    aug = Augmentation.for_data(DataConfig(source=source), kind, shape)
    assert (aug.crop_padding, aug.flip) == expected


def test_the_config_overrides_the_default():
    assert Augmentation.for_data(DataConfig(source="svhn", flip=True), "image", (3, 32, 32)) == Augmentation(4, True)
    assert Augmentation.for_data(DataConfig(source="cifar10", crop_padding=0, flip=False), "image",
                                 (3, 32, 32)) == Augmentation(0, False)
    assert Augmentation.for_data(DataConfig(source="mnist1d", flip=True), "sequence", (1, 40)).flip is False
    assert Augmentation(4, True).words() == "random crop (padding 4) and horizontal flip"
    assert Augmentation().words() == "none"


def test_crop_and_flip_are_deterministic_given_the_seed():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8).repeat(32, 1, 1, 1)  # (64, 3, 8, 8)
    aug = Augmentation(2, True)

    def run(seed):
        return aug(x, torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    only_flip = Augmentation(0, True)(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, s.flip(-1)) for o, s in zip(only_flip, x)])
    assert torch.all(flipped | torch.tensor([torch.equal(o, s) for o, s in zip(only_flip, x)]))
    assert 16 < int(flipped.sum()) < 48  # about half of the 64
    only_crop = Augmentation(2, False)(x, torch.Generator().manual_seed(0))
    assert (only_crop == 0).any() and not torch.equal(only_crop, x)  # shifted in, zero fill
    seq = torch.randn(4, 1, 40)
    assert torch.equal(Augmentation(0, True)(seq), seq)  # a sequence is never mirrored


def test_only_training_batches_are_augmented():
    cfg = load_config(preset_path("tiny"))
    space = SearchSpace.from_dict(cfg.to_dict()["space"], "image")
    module = StandaloneModule(space.to_dict(), "conv3x3/conv3x3/conv3x3", "image", 1, 10,
                              {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0,
                               "schedule": "constant"}, augment={"crop_padding": 2, "flip": True})
    module.eval()
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        plain = module.net(x)
        for stage in ("val", "test"):
            assert torch.equal(module._logits(x, stage), plain)
        torch.manual_seed(0)
        train = module._logits(x, "train")
        torch.manual_seed(0)
        assert torch.equal(module._logits(x, "train"), train) and not torch.allclose(train, plain)


def test_a_training_uses_the_data_set_s_augmentation_as_configured(tmp_path):
    from nasnav.workflow.runs import create_run

    fast = ["data.max_samples=200", "retrain.epochs=1"]
    for extra, expected in ((["data.crop_padding=3", "data.flip=true"], {"crop_padding": 3, "flip": True}),
                            ([], {"crop_padding": 1, "flip": False}),  # digits: a 1-cell crop, no flip
                            (["retrain.augment=false"], False)):
        cfg = load_config(preset_path("tiny"), overrides=fast + extra)
        run = create_run(cfg, tmp_path / f"r{len(extra)}{expected is False}")
        space = round_space(run, cfg, 0)
        res = train_standalone(cfg, space, space.parse("conv3x3/conv3x3/conv3x3"), load_splits(cfg.data, cfg.seed),
                               0, 1, test=False, quiet=True)
        assert res["module"].hparams.augment == expected
