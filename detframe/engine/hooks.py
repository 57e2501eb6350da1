"""Hooks: what happens around the training loop (checkpoints, the pipeline switch; logging and the
progress bar in logging_hooks.py, EMA in ema.py). A hook subclasses `Hook`, is registered in HOOKS and
listed under `hooks:` in the config. The runner calls each stage on every hook in the order of that
mapping (configs/train.yaml lists them in the order they run):

    before_run      everything is built, before resume/load (create state that a checkpoint restores)
    before_train    before_epoch    before_step
    after_step      (after each optimizer step; `losses` holds the step's loss terms as floats)
    before_eval     after_eval (`metrics`: each evaluation, also one you call yourself)
    after_epoch     (`metrics`: this epoch's evaluation, {} when none ran; the runner evaluates every
                     train.val_interval epochs before calling it)
    after_train     (also after an interruption)

In distributed runs every rank calls every stage (so hooks may use collectives); a hook that writes
files checks `runner.is_main`. A hook with state that must survive a resume (the best metric so far)
implements `state_dict`/`load_state_dict`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from ..data import set_skip
from ..data.transforms import Compose, transform_name
from ..errors import ConfigError, choices_text, did_you_mean
from ..registry import HOOKS
from ..rules import NonNegativeInt, OneOf, PositiveInt
from .checkpoint import prune
from .state import save_run

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")


class Hook:
    """Base class: every stage is a no-op."""

    def before_run(self, runner: Runner) -> None: ...
    def before_train(self, runner: Runner) -> None: ...
    def before_epoch(self, runner: Runner) -> None: ...
    def before_step(self, runner: Runner) -> None: ...
    def after_step(self, runner: Runner, losses: dict[str, float]) -> None: ...
    def before_eval(self, runner: Runner) -> None: ...
    def after_eval(self, runner: Runner, metrics: dict[str, float]) -> None: ...
    def after_epoch(self, runner: Runner, metrics: dict[str, float]) -> None: ...
    def after_train(self, runner: Runner) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@HOOKS.register()
class CheckpointHook(Hook):
    """Save `last.pt` every `interval` epochs (and every `iter_interval` iterations), `best.pt` when the
    metric `save_best` improves, and keep `epoch_N.pt` of the last `max_keep` saves.

    Args:
        interval: epochs between saves of last.pt (the last epoch is always saved).
        iter_interval: also save last.pt every this many iterations, mid-epoch (0: never). For long
            epochs: after a crash or kill -9, `resume=auto` then loses at most this many iterations.
        save_best: metric deciding best.pt (e.g. "coco/AP"), or None for no best.pt.
        rule: "greater" or "less": which direction of `save_best` is better.
        max_keep: keep epoch_N.pt for the last this many epoch saves (0: none).
    """

    def __init__(self, interval: PositiveInt = 1, iter_interval: NonNegativeInt = 0,
                 save_best: str | None = "coco/AP",
                 rule: Annotated[str, OneOf("greater", "less")] = "greater",
                 max_keep: NonNegativeInt = 0) -> None:
        if rule not in ("greater", "less"):  # built from Python, not from a config
            raise ConfigError(f"CheckpointHook.rule: expected 'greater' or 'less', got '{rule}'")
        self.interval, self.iter_interval = max(1, interval), max(0, iter_interval)
        self.save_best, self.rule, self.max_keep = save_best, rule, max(0, max_keep)
        self.best_value: float | None = None
        self.best_epoch: int | None = None

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        if self.iter_interval and runner.iter % self.iter_interval == 0:
            save_run(runner, "last.pt")

    def after_epoch(self, runner: Runner, metrics: dict[str, float]) -> None:
        done = runner.epoch + 1
        improved = self._update_best(metrics, done)
        last = done == runner.max_epochs or runner.iter >= runner.max_iters
        if not (done % self.interval == 0 or last or improved):
            return
        also = (["best.pt"] if improved else []) + ([f"epoch_{done}.pt"] if self.max_keep else [])
        path = save_run(runner, "last.pt", *also)
        if path is None:  # not rank 0
            return
        if improved:
            log.info("new best %s = %.4f at epoch %d -> %s", self.save_best, self.best_value, done,
                     path.parent / "best.pt")
        if self.max_keep:
            prune(runner.ckpt_dir, "epoch_", self.max_keep)

    def _update_best(self, metrics: dict[str, float], done: int) -> bool:
        if not (self.save_best and metrics):
            return False
        if self.save_best not in metrics:
            raise ConfigError(f"hooks.checkpoint.save_best: no metric '{self.save_best}' in the evaluation; "
                              f"it gave {sorted(metrics)}")
        value = metrics[self.save_best]
        if self.best_value is None or (value > self.best_value if self.rule == "greater"
                                       else value < self.best_value):
            self.best_value, self.best_epoch = value, done
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch = state.get("best_value"), state.get("best_epoch")


@HOOKS.register()
class PipelineSwitchHook(Hook):
    """Leave the transforms named in `disable` out of the training pipeline for the last
    `num_last_epochs` epochs (YOLOX: the last 15 epochs on plain images let the model adapt to the image
    statistics it will be tested on). The names travel with every sample's key (data/samplers.py), so
    persistent workers follow at once, and a resumed run switches at the same epoch.

        hooks:
          pipeline_switch: {type: PipelineSwitchHook, num_last_epochs: 15,
                            disable: [Mosaic, RandomAffine, MixUp], enable: [use_l1]}

    `enable` names boolean attributes set True, for those epochs, on every module of the model that has
    them (YOLOX's head adds its L1 loss then: `use_l1`). Going through `model.modules()` keeps the hook
    off the model's structure (a DDP wrapper, a head under any name). Like the pipeline, the flags
    follow the epoch, not the hook's history, so a run resumed after the switch has them on. With
    `train.max_minutes` the last epochs are counted from the length fitted so far.

    Args:
        num_last_epochs: how many final epochs run without them.
        disable: transform names (the `type`, or an albumentations name for `Albu` entries).
        enable: module attributes switched on with them; at least one module must have each.
    """

    def __init__(self, num_last_epochs: NonNegativeInt = 15,
                 disable: Sequence[str] = ("Mosaic", "RandomAffine", "MixUp"),
                 enable: Sequence[str] = ()) -> None:
        if num_last_epochs < 0:
            raise ConfigError(f"PipelineSwitchHook.num_last_epochs: expected >= 0, got {num_last_epochs}")
        self.num_last_epochs = num_last_epochs
        self.disable, self.enable = tuple(disable), tuple(enable)
        self.switched = False

    def before_train(self, runner: Runner) -> None:
        pipeline = getattr(getattr(runner.train_loader, "dataset", None), "transforms", None)
        present = [transform_name(t) for t in pipeline.transforms] if isinstance(pipeline, Compose) else []
        for name in self.disable:
            if name not in present:
                raise ConfigError(f"hooks.pipeline_switch.disable: '{name}' is not in pipeline.train."
                                  f"{did_you_mean(name, present)} Transforms there: {choices_text(present)}")
        for name in self.enable:
            if not self._flagged(runner, name):
                raise ConfigError(f"hooks.pipeline_switch.enable: no module of the model has an attribute "
                                  f"'{name}' (YOLOXHead has use_l1)")

    def before_epoch(self, runner: Runner) -> None:
        # Once switched, the run stays switched: a time budget (train.max_minutes) that later finds room
        # for another epoch adds it on plain images rather than going back to mosaics.
        switch = self.switched or runner.epoch >= runner.max_epochs - self.num_last_epochs
        if switch != self.switched:
            set_skip(runner.train_loader, self.disable if switch else ())
            for name in self.enable:
                for module in self._flagged(runner, name):
                    setattr(module, name, switch)
            self.switched = switch
            if switch:
                log.info("epoch %d: training without %s for the last %d epochs", runner.epoch + 1,
                         ", ".join(self.disable), runner.max_epochs - runner.epoch)

    @staticmethod
    def _flagged(runner: Runner, name: str) -> list:
        """The modules of the runner's model that have attribute `name`."""
        return [m for m in runner.model.modules() if hasattr(m, name)]
