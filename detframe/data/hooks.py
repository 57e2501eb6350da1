"""PipelineSwitchHook: train the last epochs without mosaic and mixup (YOLOX: the last 15 epochs
on plain images let the model adapt to the image statistics it will be tested on).

    hooks:
      pipeline_switch: {type: PipelineSwitchHook, num_last_epochs: 15, disable: [Mosaic, RandomAffine, MixUp]}

The names travel with every sample's key (see data/samplers.py), so persistent workers follow at
once, and a resumed run switches at the same epoch.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..engine.hooks import Hook
from ..errors import ConfigError, choices_text, did_you_mean
from ..registry import HOOKS
from .build import set_skip
from .transforms import Compose, transform_name

if TYPE_CHECKING:
    from ..engine.runner import Runner

log = logging.getLogger("detframe")


@HOOKS.register()
class PipelineSwitchHook(Hook):
    """Leave the transforms named in `disable` out of the training pipeline for the last
    `num_last_epochs` epochs.

    Args:
        num_last_epochs: how many final epochs run without them.
        disable: transform names (the `type`, or an albumentations name for `Albu` entries).
    """

    def __init__(self, num_last_epochs: int = 15, disable: Sequence[str] = ("Mosaic", "RandomAffine", "MixUp")) -> None:
        if num_last_epochs < 0:
            raise ConfigError(f"PipelineSwitchHook.num_last_epochs: expected >= 0, got {num_last_epochs}")
        self.num_last_epochs = num_last_epochs
        self.disable = tuple(disable)
        self.switched = False

    def before_train(self, runner: Runner) -> None:
        pipeline = runner.train_set.transforms
        present = [transform_name(t) for t in pipeline.transforms] if isinstance(pipeline, Compose) else []
        for name in self.disable:
            if name not in present:
                raise ConfigError(f"hooks.pipeline_switch.disable: '{name}' is not in pipeline.train.{did_you_mean(name, present)} "
                                  f"Transforms there: {choices_text(present)}")

    def before_epoch(self, runner: Runner) -> None:
        switch = runner.epoch >= runner.max_epochs - self.num_last_epochs
        if switch != self.switched:
            set_skip(runner.train_loader, self.disable if switch else ())
            self.switched = switch
            if switch:
                log.info("epoch %d: training without %s for the last %d epochs", runner.epoch + 1,
                         ", ".join(self.disable), runner.max_epochs - runner.epoch)
