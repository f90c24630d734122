"""LightningModules: one-shot supernet training and standalone training of one architecture."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasnav.data.augment import Augmentation, augment_batch  # noqa: F401 (augment_batch: re-exported)
from nasnav.errors import InvalidInput
from nasnav.model.supernet import Supernet, build_network
from nasnav.space import Arch, SearchSpace


def path_sampler(space: SearchSpace, mode: str, seed: int):
    """A function step -> Arch, deterministic in (seed, step) so every DDP rank agrees.

    ``uniform`` draws each step independently. ``fair`` (strict fairness, as FairNAS) walks each
    single-select stage through a fresh permutation of its active components, so within every
    block of n steps each of the n components is trained exactly once. (An object, not a closure:
    ``ddp_spawn`` pickles the module that holds it.)
    """
    if mode not in ("uniform", "fair"):
        raise InvalidInput(f"supernet.sampler: '{mode}' is not one of uniform, fair")
    return PathSampler(space, mode, seed)


class PathSampler:
    """``path_sampler``'s function: ``sampler(step)`` is the path trained at ``step``."""

    def __init__(self, space: SearchSpace, mode: str, seed: int):
        self.space, self.mode, self.seed = space, mode, seed

    def __call__(self, step: int) -> Arch:
        if self.mode == "uniform":
            return self.space.sample(np.random.default_rng([self.seed, step]))
        choices = []
        for i, stage in enumerate(self.space.stages):
            if stage.pinned is not None:
                choices.append(stage.pinned)
            elif stage.select == "one":
                active = stage.active
                n = len(active)
                perm = np.random.default_rng([self.seed, i, step // n]).permutation(n)
                choices.append((active[perm[step % n]],))
            else:
                choices.append(stage.sample(np.random.default_rng([self.seed, i, step, 1])))
        return Arch(tuple(choices))


def make_optimizer(params, section: dict):
    name, lr, wd = section["optimizer"], section["lr"], section["weight_decay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=section["momentum"], weight_decay=wd, nesterov=section["momentum"] > 0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


def _optim_config(module: pl.LightningModule, params, section: dict):
    opt = make_optimizer(params, section)
    if section.get("schedule", "cosine") != "cosine":
        return opt
    epochs = max(1, module.trainer.max_epochs if module.trainer else 1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class _Classifier(pl.LightningModule):
    """Shared steps: cross-entropy, accuracy, logging per stage (train / val / test)."""

    def _logits(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        raise NotImplementedError  # subclasses say how a batch is run

    def _common_step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self._logits(x, stage)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.get("label_smoothing", 0.0) if stage == "train" else 0.0)
        acc = (logits.argmax(1) == y).float().mean()
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "test", sync_dist=True)
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._common_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._common_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._common_step(batch, "test")


class SupernetModule(_Classifier):
    """Trains a Supernet one path per step over the current (pruned) space.

    Unsampled (and pruned) components get no gradient; optimisers skip parameters whose
    gradient is None, so they get no momentum or weight-decay update either.
    Validation scores one random path per batch with batch statistics (running statistics of
    a supernet are a mix of paths; one-shot scores recalibrate them instead, see evaluate.py).

    ``distill`` (in-place distillation, as BigNAS / OFA): each step also trains the largest path
    (most parameters) on the labels, and the sampled path learns from the largest path's soft
    outputs instead of the labels. Twice the step cost; the logged loss and accuracy stay those
    of the sampled path.
    """

    def __init__(self, space: dict, kind: str, in_channels: int, num_classes: int, optim: dict,
                 sampler: str = "fair", seed: int = 0, label_smoothing: float = 0.0, step_offset: int = 0,
                 distill: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.space = SearchSpace.from_dict(space, kind)
        self.net = Supernet(self.space, kind, in_channels, num_classes)
        self._sample = path_sampler(self.space, sampler, seed)
        self._val_sample = path_sampler(self.space, "uniform", seed + 7919)
        self._teacher = self.net.largest_path(self.space) if distill else None

    def training_step(self, batch, batch_idx):
        if self._teacher is None:
            return super().training_step(batch, batch_idx)
        x, y = batch
        smoothing = self.hparams.label_smoothing
        t_logits = self.net(x, self._teacher)
        logits = self.net(x, self._sample(self.global_step + self.hparams.step_offset))
        soft = F.kl_div(F.log_softmax(logits, 1), F.softmax(t_logits.detach(), 1), reduction="batchmean")
        loss = F.cross_entropy(t_logits, y, label_smoothing=smoothing) + soft
        self.log("train_loss", F.cross_entropy(logits.detach(), y), on_step=False, on_epoch=True, prog_bar=True,
                 sync_dist=True)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True, prog_bar=True,
                 sync_dist=True)
        return loss

    def _logits(self, x, stage):
        if stage == "train":
            return self.net(x, self._sample(self.global_step + self.hparams.step_offset))
        arch = self._val_sample(self._val_index)
        self._val_index += 1
        with _batch_stats(self.net):
            return self.net(x, arch)

    def on_validation_epoch_start(self):
        self._val_index = 0  # the same validation paths every epoch: comparable curves

    def on_test_epoch_start(self):
        self._val_index = 0

    def configure_optimizers(self):
        return _optim_config(self, self.net.parameters(), self.hparams.optim)


class _batch_stats:
    """Run BatchNorm layers on batch statistics without touching their running statistics."""

    def __init__(self, net: nn.Module):
        self.bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def __enter__(self):
        self.saved = [(m.training, m.momentum) for m in self.bns]
        for m in self.bns:
            m.train()
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged

    def __exit__(self, *exc):
        for m, (training, momentum) in zip(self.bns, self.saved):
            m.train(training)
            m.momentum = momentum


class StandaloneModule(_Classifier):
    """Trains one architecture from scratch."""

    def __init__(self, space: dict, arch: str, kind: str, in_channels: int, num_classes: int, optim: dict,
                 augment: bool | dict = True, label_smoothing: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        sp = SearchSpace.from_dict(space, kind)
        self.arch = sp.parse(arch, check_active=False)
        self.net = build_network(sp, self.arch, kind, in_channels, num_classes)
        # a dict: Augmentation's settings (the data set's); True (checkpoints of before): a small crop, no flip
        self._augment = (augment if isinstance(augment, dict) else bool(augment)) if kind != "tabular" else False

    def forward(self, x):
        return self.net(x)

    def _logits(self, x, stage):
        if stage == "train" and self._augment:  # training batches only
            aug = (Augmentation(**self._augment) if isinstance(self._augment, dict)
                   else Augmentation(max(1, min(x.shape[2:]) // 16)))  # 1 cell on 8x8, 2 on 32x32
            x = aug(x)
        return self.net(x)

    def configure_optimizers(self):
        return _optim_config(self, self.net.parameters(), self.hparams.optim)
