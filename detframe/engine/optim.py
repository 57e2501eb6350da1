"""Optimizers and learning-rate schedules selected from config.

Schedules are multiplicative factors of the iteration, applied through torch's LambdaLR and stepped
once per iteration. The factor is a closure over the config, so a checkpoint stores only the position
(`last_epoch`, i.e. the iteration) and the base learning rates: resuming with a longer schedule in the
config follows the new schedule from the saved iteration.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ..errors import ConfigError
from ..registry import OPTIMIZERS, SCHEDULERS

OPTIMIZERS.register("SGD")(torch.optim.SGD)
OPTIMIZERS.register("Adam")(torch.optim.Adam)
OPTIMIZERS.register("AdamW")(torch.optim.AdamW)


def build_optimizer(cfg: DictConfig, model: nn.Module) -> Optimizer:
    """The `optimizer` config over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    return OPTIMIZERS.build(cfg, params=params)


def build_scheduler(cfg: DictConfig, optimizer: Optimizer, iters_per_epoch: int, max_epochs: int) -> LambdaLR:
    """The `scheduler` config; every schedule gets the optimizer and the length of training."""
    return SCHEDULERS.build(cfg, optimizer=optimizer, iters_per_epoch=iters_per_epoch, max_epochs=max_epochs)


def warmup_factor(it: int, kind: str, iters: int, ratio: float) -> float:
    """LR multiplier during warmup: `linear` from `ratio` to 1, `exp` geometric from `ratio` to 1."""
    if kind == "none" or iters <= 0 or it >= iters:
        return 1.0
    t = it / iters
    if kind == "linear":
        return ratio + (1.0 - ratio) * t
    if kind == "exp":
        return ratio ** (1.0 - t)
    raise ConfigError(f"scheduler.warmup: expected linear, exp or none, got '{kind}'")


@SCHEDULERS.register()
def WarmupMultiStepLR(
    optimizer: Optimizer,
    iters_per_epoch: int,
    max_epochs: int,
    milestones: Sequence[int],
    gamma: float = 0.1,
    warmup: str = "linear",
    warmup_iters: int = 500,
    warmup_ratio: float = 0.001,
    by_epoch: bool = True,
) -> LambdaLR:
    """Warmup, then multiply the LR by `gamma` at each milestone.

    Args:
        milestones: epochs (by_epoch) or iterations at which the LR drops.
        gamma: the drop factor.
        warmup, warmup_iters, warmup_ratio: see `warmup_factor`; warmup counts iterations.
    """
    steps = sorted(int(m) * (iters_per_epoch if by_epoch else 1) for m in milestones)
    warmup_factor(0, warmup, warmup_iters, warmup_ratio)  # validates `warmup` now, not at the first step

    def factor(it: int) -> float:
        drops = sum(1 for s in steps if it >= s)
        return warmup_factor(it, warmup, warmup_iters, warmup_ratio) * gamma**drops

    return LambdaLR(optimizer, factor)


@SCHEDULERS.register()
def WarmupCosineLR(
    optimizer: Optimizer,
    iters_per_epoch: int,
    max_epochs: int,
    min_ratio: float = 0.01,
    warmup: str = "linear",
    warmup_iters: int = 500,
    warmup_ratio: float = 0.001,
) -> LambdaLR:
    """Warmup, then cosine decay from the base LR to `min_ratio` x base LR at the last iteration."""
    total = max(1, iters_per_epoch * max_epochs)
    warmup_factor(0, warmup, warmup_iters, warmup_ratio)

    def factor(it: int) -> float:
        cosine = min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
        return warmup_factor(it, warmup, warmup_iters, warmup_ratio) * cosine

    return LambdaLR(optimizer, factor)


def current_lr(optimizer: Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


__all__: Sequence[str] = ["build_optimizer", "build_scheduler", "current_lr", "warmup_factor"]
