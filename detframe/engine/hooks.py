"""Hooks: what happens around the training loop (evaluation, checkpoints, logging, progress bar).

The runner calls each stage on every hook, in the order of the `hooks` config mapping. A hook with
state that must survive a resume (the best metric so far) implements `state_dict`/`load_state_dict`.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from ..errors import ConfigError
from ..registry import HOOKS

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")


class Hook:
    """Base class: every stage is a no-op."""

    def before_train(self, runner: Runner) -> None: ...
    def before_epoch(self, runner: Runner) -> None: ...
    def after_step(self, runner: Runner, losses: dict[str, float]) -> None: ...
    def after_epoch(self, runner: Runner) -> None: ...
    def after_eval(self, runner: Runner, metrics: dict[str, float]) -> None: ...
    def after_train(self, runner: Runner) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@HOOKS.register()
class EvalHook(Hook):
    """Evaluate on the val set every `interval` epochs and after the last epoch."""

    def __init__(self, interval: int = 1) -> None:
        self.interval = max(1, interval)

    def after_epoch(self, runner: Runner) -> None:
        done = runner.epoch + 1
        if done % self.interval == 0 or done == runner.max_epochs:
            runner.evaluate()


@HOOKS.register()
class CheckpointHook(Hook):
    """Save `last.pt` every `interval` epochs, `best.pt` when the metric `save_best` improves, and
    `epoch_N.pt` files when `keep_epochs` asks for them.

    Args:
        interval: epochs between saves of last.pt (the last epoch is always saved).
        save_best: metric deciding best.pt (e.g. "coco/AP"), or None for no best.pt.
        rule: "greater" or "less": which direction of `save_best` is better.
        keep_epochs: also keep epoch_N.pt for the last this many saves (0: none).
    """

    def __init__(self, interval: int = 1, save_best: str | None = "coco/AP", rule: str = "greater", keep_epochs: int = 0) -> None:
        if rule not in ("greater", "less"):
            raise ConfigError(f"CheckpointHook.rule: expected 'greater' or 'less', got '{rule}'")
        self.interval, self.save_best, self.rule, self.keep_epochs = max(1, interval), save_best, rule, keep_epochs
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self._fresh_metrics: dict[str, float] = {}

    def after_eval(self, runner: Runner, metrics: dict[str, float]) -> None:
        self._fresh_metrics = metrics

    def after_epoch(self, runner: Runner) -> None:
        done = runner.epoch + 1
        metrics, self._fresh_metrics = self._fresh_metrics, {}
        improved = False
        if self.save_best and metrics:
            if self.save_best not in metrics:
                raise ConfigError(
                    f"hooks.checkpoint.save_best: no metric '{self.save_best}' in the evaluation; it gave {sorted(metrics)}"
                )
            value = metrics[self.save_best]
            if self.best_value is None or (value > self.best_value if self.rule == "greater" else value < self.best_value):
                self.best_value, self.best_epoch, improved = value, done, True
        if done % self.interval == 0 or done == runner.max_epochs or improved:
            path = runner.save_checkpoint("last.pt")
            if improved:
                runner.save_checkpoint("best.pt")
                log.info("new best %s = %.4f at epoch %d -> %s", self.save_best, self.best_value, done, path.parent / "best.pt")
            if self.keep_epochs > 0:
                runner.save_checkpoint(f"epoch_{done}.pt")
                old = runner.ckpt_dir / f"epoch_{done - self.keep_epochs * self.interval}.pt"
                old.unlink(missing_ok=True)

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch = state.get("best_value"), state.get("best_epoch")


@HOOKS.register()
class LoggerHook(Hook):
    """Text log lines every `interval` iterations and TensorBoard scalars: every loss term, the total,
    the learning rate, data/step time and the evaluation metrics."""

    def __init__(self, interval: int = 10, tensorboard: bool = True) -> None:
        self.interval = max(1, interval)
        self.tensorboard = tensorboard
        self.writer = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self._t0 = 0.0

    def before_train(self, runner: Runner) -> None:
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(runner.work_dir / "tb"))
        self._t0 = time.perf_counter()
        self._start_iter = runner.iter

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1
        if runner.iter % self.interval and runner.step + 1 != runner.iters_per_epoch:
            return
        means = {k: v / self._count for k, v in self._sums.items()}
        self._sums, self._count = {}, 0
        lr = runner.lr
        elapsed = time.perf_counter() - self._t0
        done = runner.iter - self._start_iter
        remaining = runner.max_epochs * runner.iters_per_epoch - runner.iter
        eta = elapsed / max(done, 1) * remaining
        log.info(
            "epoch %d/%d iter %d/%d  lr %.3g  %s  %.2f it/s  data %.3fs  eta %s",
            runner.epoch + 1, runner.max_epochs, runner.step + 1, runner.iters_per_epoch, lr,
            "  ".join(f"{k} {v:.4f}" for k, v in means.items()), done / max(elapsed, 1e-9), runner.data_time,
            _format_seconds(eta),
        )
        if self.writer is not None:
            for k, v in means.items():
                self.writer.add_scalar(f"train/{k}", v, runner.iter)
            self.writer.add_scalar("train/lr", lr, runner.iter)
            self.writer.add_scalar("time/data", runner.data_time, runner.iter)
            self.writer.add_scalar("time/step", runner.step_time, runner.iter)

    def after_eval(self, runner: Runner, metrics: dict[str, float]) -> None:
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(f"val/{k}", v, runner.iter)
            self.writer.flush()

    def after_train(self, runner: Runner) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@HOOKS.register()
class ProgressBarHook(Hook):
    """A tqdm bar per epoch with ETA, speed and running losses (only on an interactive terminal)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: tqdm | None = None

    def before_epoch(self, runner: Runner) -> None:
        if self.enabled:
            self.bar = tqdm(total=runner.iters_per_epoch, desc=f"epoch {runner.epoch + 1}/{runner.max_epochs}",
                            dynamic_ncols=True, leave=False)

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in losses.items()}, refresh=False)
            self.bar.update(1)

    def after_epoch(self, runner: Runner) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"
