"""Hooks: what happens around the training loop (evaluation, checkpoints, logging, progress bar; EMA
in ema.py). A hook subclasses `Hook`, is registered in HOOKS and listed under `hooks:` in the config.

The runner calls each stage on every hook, by `priority` (lower first: EMA 10, evaluation 40, others 50,
checkpoints 60, logging 70, progress bar 80), then in the order of the `hooks` config mapping:

    before_run      everything is built, before resume/load (create state that a checkpoint restores)
    before_train    before_epoch    before_step
    after_step      (after each optimizer step; `losses` holds the step's loss terms as floats)
    after_epoch     before_eval     after_eval (`metrics`)     after_train (also after an interruption)

In distributed runs every rank calls every stage (so hooks may use collectives); a hook that writes
files checks `runner.is_main`. A hook with state that must survive a resume (the best metric so far)
implements `state_dict`/`load_state_dict`.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from ..errors import ConfigError
from ..registry import HOOKS
from .checkpoint import prune
from ..dist import reduce_mean

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")


class Hook:
    """Base class: every stage is a no-op."""

    priority = 50

    def before_run(self, runner: Runner) -> None: ...
    def before_train(self, runner: Runner) -> None: ...
    def before_epoch(self, runner: Runner) -> None: ...
    def before_step(self, runner: Runner) -> None: ...
    def after_step(self, runner: Runner, losses: dict[str, float]) -> None: ...
    def after_epoch(self, runner: Runner) -> None: ...
    def before_eval(self, runner: Runner) -> None: ...
    def after_eval(self, runner: Runner, metrics: dict[str, float]) -> None: ...
    def after_train(self, runner: Runner) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@HOOKS.register()
class EvalHook(Hook):
    """Evaluate on the val set every `interval` epochs and after the last epoch."""

    priority = 40

    def __init__(self, interval: int = 1) -> None:
        self.interval = max(1, interval)

    def after_epoch(self, runner: Runner) -> None:
        done = runner.epoch + 1
        if done % self.interval == 0 or done == runner.max_epochs or runner.iter >= runner.max_iters:
            runner.evaluate()


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

    priority = 60  # after the EMA update and the evaluation of the same step/epoch

    def __init__(self, interval: int = 1, iter_interval: int = 0, save_best: str | None = "coco/AP",
                 rule: str = "greater", max_keep: int = 0) -> None:
        if rule not in ("greater", "less"):
            raise ConfigError(f"CheckpointHook.rule: expected 'greater' or 'less', got '{rule}'")
        self.interval, self.iter_interval = max(1, interval), max(0, iter_interval)
        self.save_best, self.rule, self.max_keep = save_best, rule, max(0, max_keep)
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self._fresh_metrics: dict[str, float] = {}

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        if self.iter_interval and runner.iter % self.iter_interval == 0:
            runner.save_checkpoint("last.pt")

    def after_eval(self, runner: Runner, metrics: dict[str, float]) -> None:
        self._fresh_metrics = metrics

    def after_epoch(self, runner: Runner) -> None:
        done = runner.epoch + 1
        metrics, self._fresh_metrics = self._fresh_metrics, {}
        improved = self._update_best(metrics, done)
        last = done == runner.max_epochs or runner.iter >= runner.max_iters
        if not (done % self.interval == 0 or last or improved):
            return
        also = (["best.pt"] if improved else []) + ([f"epoch_{done}.pt"] if self.max_keep else [])
        path = runner.save_checkpoint("last.pt", *also)
        if path is None:  # not rank 0
            return
        if improved:
            log.info("new best %s = %.4f at epoch %d -> %s", self.save_best, self.best_value, done, path.parent / "best.pt")
        if self.max_keep:
            prune(runner.ckpt_dir, "epoch_", self.max_keep)

    def _update_best(self, metrics: dict[str, float], done: int) -> bool:
        if not (self.save_best and metrics):
            return False
        if self.save_best not in metrics:
            raise ConfigError(f"hooks.checkpoint.save_best: no metric '{self.save_best}' in the evaluation; it gave {sorted(metrics)}")
        value = metrics[self.save_best]
        if self.best_value is None or (value > self.best_value if self.rule == "greater" else value < self.best_value):
            self.best_value, self.best_epoch = value, done
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_value, self.best_epoch = state.get("best_value"), state.get("best_epoch")


@HOOKS.register()
class LoggerHook(Hook):
    """Text log lines every `interval` iterations and TensorBoard: every loss term (averaged over the
    interval and over ranks), the total, the learning rate, gradient norm, data and iteration time, GPU
    memory, skipped steps, the evaluation metrics, and at each evaluation the first `images` val images
    with ground truth (green) and predictions above `image_score_threshold` (red) drawn on them."""

    priority = 70

    def __init__(self, interval: int = 10, tensorboard: bool = True, images: int = 4, image_score_threshold: float = 0.3) -> None:
        self.interval = max(1, interval)
        self.tensorboard = tensorboard
        self.images, self.image_score_threshold = images, image_score_threshold
        self.writer = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self._t0 = 0.0
        self._start_iter = 0

    def before_train(self, runner: Runner) -> None:
        if self.tensorboard and runner.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(runner.work_dir / "tb"), purge_step=runner.iter + 1 if runner.iter else None)
        self._t0 = time.perf_counter()
        self._start_iter = runner.iter

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        values = {**losses, "grad_norm": runner.grad_norm, "time_data": runner.data_time, "time_iter": runner.step_time}
        for k, v in values.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1
        if runner.iter % self.interval and runner.step + 1 != len(runner.train_loader):
            return
        means = self._reduced_means(runner)
        if runner.is_main:
            self._write(runner, means)

    def _reduced_means(self, runner: Runner) -> dict[str, float]:
        keys = list(self._sums)
        local = torch.tensor([self._sums[k] / self._count for k in keys], dtype=torch.float64, device=runner.device)
        self._sums, self._count = {}, 0
        return dict(zip(keys, reduce_mean(local).tolist()))  # the mean over ranks (a collective when distributed)

    def _write(self, runner: Runner, means: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self._t0
        done = runner.iter - self._start_iter
        eta = elapsed / max(done, 1) * (runner.max_iters - runner.iter)
        memory = torch.cuda.max_memory_allocated(runner.device) / 2**20 if runner.device.type == "cuda" else None
        losses = {k: v for k, v in means.items() if k not in ("grad_norm", "time_data", "time_iter")}
        log.info(
            "epoch %d/%d iter %d/%d  lr %.3g  %s  grad_norm %.3g  %.2f it/s  data %.3fs%s%s  eta %s",
            runner.epoch + 1, runner.max_epochs, runner.step + 1, len(runner.train_loader), runner.lr,
            "  ".join(f"{k} {v:.4f}" for k, v in losses.items()), means["grad_norm"], done / max(elapsed, 1e-9),
            means["time_data"], f"  mem {memory:.0f}MB" if memory is not None else "",
            f"  skipped {runner.skipped}" if runner.skipped else "", _format_seconds(eta),
        )
        if self.writer is None:
            return
        it = runner.iter
        for k, v in losses.items():
            self.writer.add_scalar(f"train/{k}", v, it)
        for i, group in enumerate(runner.optimizer.param_groups):
            self.writer.add_scalar("train/lr" if i == 0 else f"train/lr_group{i}", group["lr"], it)
        self.writer.add_scalar("train/grad_norm", means["grad_norm"], it)
        self.writer.add_scalar("time/data", means["time_data"], it)
        self.writer.add_scalar("time/iter", means["time_iter"], it)
        self.writer.add_scalar("train/skipped_steps", runner.skipped, it)
        if runner.scaler.is_enabled():
            self.writer.add_scalar("train/amp_scale", runner.scaler.get_scale(), it)
        if memory is not None:
            self.writer.add_scalar("memory/max_allocated_mb", memory, it)
            torch.cuda.reset_peak_memory_stats(runner.device)

    def after_eval(self, runner: Runner, metrics: dict[str, float]) -> None:
        if self.writer is None:
            return
        for k, v in metrics.items():
            self.writer.add_scalar(f"val/{k}", v, runner.iter)
        if self.images:
            from .visualize import draw_val_images

            for i, image in enumerate(draw_val_images(runner, self.images, self.image_score_threshold)):
                self.writer.add_image(f"val_images/{i}", image, runner.iter)
        self.writer.flush()

    def after_train(self, runner: Runner) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@HOOKS.register()
class ProgressBarHook(Hook):
    """A tqdm bar per epoch with ETA, speed and running losses (rank 0, on an interactive terminal)."""

    priority = 80

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: tqdm | None = None

    def before_epoch(self, runner: Runner) -> None:
        if self.enabled and runner.is_main:
            self.bar = tqdm(total=runner.iters_per_epoch, initial=runner.start_step // runner.accumulate,
                            desc=f"epoch {runner.epoch + 1}/{runner.max_epochs}", dynamic_ncols=True, leave=False)

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in losses.items()}, refresh=False)
            self.bar.update(1)

    def after_epoch(self, runner: Runner) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    after_train = after_epoch


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"
