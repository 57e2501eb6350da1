"""Learning-rate schedules: warmup (linear or exponential) followed by multistep, cosine, poly, or the
YOLOX warm-cosine.

Every schedule is a multiplicative factor of the iteration (one optimizer step), applied through
torch's LambdaLR and stepped once per iteration. The factor is a closure over the config, so a
checkpoint stores only the position (`last_epoch`, i.e. the iteration): resuming with a longer
schedule in the config follows the new schedule from the saved iteration (see `restore_position`).

`by_epoch`: milestones are epochs and the main curve moves once per epoch (mmdetection's default for
step schedules); otherwise milestones are iterations and curves move every iteration. Warmup always
counts iterations.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from omegaconf import DictConfig
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ..errors import ConfigError
from ..registry import SCHEDULERS, to_plain
from ..rules import Each, NonNegativeFloat, NonNegativeInt, PositiveFloat, Probability


def build_scheduler(cfg: DictConfig | Mapping, optimizer: Optimizer, iters_per_epoch: int,
                    total_iters: int) -> LambdaLR:
    """The `scheduler` config; every schedule gets the optimizer and the length of training.

    Args:
        iters_per_epoch: optimizer steps per epoch.
        total_iters: optimizer steps of the whole run (`train.max_iters`, or epochs x iters_per_epoch).
    """
    return SCHEDULERS.build(cfg, optimizer=optimizer, iters_per_epoch=iters_per_epoch,
                            total_iters=total_iters)


def check_scheduler(cfg: DictConfig | Mapping) -> None:
    """Check the `scheduler` config before the optimizer and the run length are known: its type, the
    names and values of its arguments, and `warmup`."""
    SCHEDULERS.check(cfg)
    warmup = (to_plain(cfg) or {}).get("warmup")
    if warmup is not None:
        warmup_factor(0, warmup, 1, 1.0)  # raises for an unknown kind


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


def _schedule(optimizer: Optimizer, main: Callable[[int], float], iters_per_epoch: int, by_epoch: bool,
              warmup: str, warmup_iters: int, warmup_ratio: float) -> LambdaLR:
    """LambdaLR with factor warmup(it) x main(position), position = it, or the epoch's first iteration."""
    warmup_factor(0, warmup, warmup_iters, warmup_ratio)  # validates `warmup` now, not at the first step
    ipe = max(1, iters_per_epoch)

    def factor(it: int) -> float:
        position = (it // ipe) * ipe if by_epoch else it
        return warmup_factor(it, warmup, warmup_iters, warmup_ratio) * main(position)

    return LambdaLR(optimizer, factor)


@SCHEDULERS.register()
def WarmupMultiStepLR(
    optimizer: Optimizer,
    iters_per_epoch: int,
    total_iters: int,
    milestones: Annotated[Sequence[int], Each(NonNegativeInt)],
    gamma: PositiveFloat = 0.1,
    warmup: str = "linear",
    warmup_iters: NonNegativeInt = 500,
    warmup_ratio: Probability = 0.001,
    by_epoch: bool = True,
) -> LambdaLR:
    """Warmup, then multiply the LR by `gamma` at each milestone (epochs if `by_epoch`, else iterations)."""
    steps = sorted(int(m) * (iters_per_epoch if by_epoch else 1) for m in milestones)
    return _schedule(optimizer, lambda it: gamma ** sum(1 for s in steps if it >= s), iters_per_epoch, False,
                     warmup, warmup_iters, warmup_ratio)


@SCHEDULERS.register()
def WarmupCosineLR(
    optimizer: Optimizer,
    iters_per_epoch: int,
    total_iters: int,
    min_ratio: Probability = 0.01,
    warmup: str = "linear",
    warmup_iters: NonNegativeInt = 500,
    warmup_ratio: Probability = 0.001,
    by_epoch: bool = False,
) -> LambdaLR:
    """Warmup, then cosine decay from the base LR to `min_ratio` x base LR at the last iteration."""
    total = max(1, total_iters)

    def cosine(it: int) -> float:
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(it, total) / total))

    return _schedule(optimizer, cosine, iters_per_epoch, by_epoch, warmup, warmup_iters, warmup_ratio)


@SCHEDULERS.register()
def WarmupPolyLR(
    optimizer: Optimizer,
    iters_per_epoch: int,
    total_iters: int,
    power: NonNegativeFloat = 0.9,
    min_ratio: Probability = 0.0,
    warmup: str = "linear",
    warmup_iters: NonNegativeInt = 500,
    warmup_ratio: Probability = 0.001,
    by_epoch: bool = False,
) -> LambdaLR:
    """Warmup, then (1 - t/T)^power from the base LR down to `min_ratio` x base LR (mmdetection's PolyLR)."""
    total = max(1, total_iters)

    def poly(it: int) -> float:
        return min_ratio + (1 - min_ratio) * (1 - min(it, total) / total) ** power

    return _schedule(optimizer, poly, iters_per_epoch, by_epoch, warmup, warmup_iters, warmup_ratio)


@SCHEDULERS.register()
def YOLOXCosineLR(
    optimizer: Optimizer,
    iters_per_epoch: int,
    total_iters: int,
    warmup_epochs: NonNegativeFloat = 5,
    no_aug_epochs: NonNegativeInt = 15,
    min_ratio: Probability = 0.05,
    warmup_ratio: Probability = 0.0,
) -> LambdaLR:
    """YOLOX's "yoloxwarmcos" (yolox/utils/lr_scheduler.py): quadratic warmup from `warmup_ratio` over
    `warmup_epochs`, cosine down to `min_ratio` until the last `no_aug_epochs`, which stay at `min_ratio`
    (the epochs YOLOX trains without mosaic and mixup)."""
    warm = int(round(warmup_epochs * iters_per_epoch))
    flat = no_aug_epochs * iters_per_epoch
    if warm + flat >= total_iters:
        raise ConfigError(f"scheduler: warmup_epochs ({warmup_epochs}) + no_aug_epochs ({no_aug_epochs}) "
                          f"leave no cosine phase in {total_iters} iterations; shorten them or train longer")

    def factor(it: int) -> float:
        if it < warm:
            return (1 - warmup_ratio) * (it / warm) ** 2 + warmup_ratio
        if it >= total_iters - flat:
            return min_ratio
        t = (it - warm) / (total_iters - warm - flat)
        return min_ratio + 0.5 * (1 - min_ratio) * (1 + math.cos(math.pi * t))

    return LambdaLR(optimizer, factor)


def restore_position(scheduler: LambdaLR, state: dict[str, Any]) -> None:
    """Move a freshly built schedule to the iteration saved in `state` (a LambdaLR state_dict).

    Only the position is taken from the checkpoint: the base LRs and the shape of the schedule come from
    the current config, so `resume=... train.max_epochs=36` (or a new `optimizer.lr`) takes effect from
    the saved iteration on. The optimizer's `lr` is set to what the schedule gives there.
    """
    scheduler.last_epoch = int(state["last_epoch"])
    # silences LambdaLR's order warning
    scheduler._step_count = int(state.get("_step_count", scheduler.last_epoch + 1))
    for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs,
                                   scheduler.lr_lambdas):
        group["initial_lr"] = base
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]


def current_lr(optimizer: Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
