"""Hooks that report progress: the text log and TensorBoard (LoggerHook), the progress bar."""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from ..dist import reduce_mean
from ..registry import HOOKS
from ..rules import NonNegativeInt, PositiveInt, Probability
from ..vis import draw_val_images
from .hooks import Hook

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")


@HOOKS.register()
class LoggerHook(Hook):
    """Text log lines every `interval` iterations and TensorBoard: every loss term (averaged over the
    interval and over ranks), the total, the learning rate, gradient norm, data and iteration time, GPU
    memory, skipped steps, the evaluation metrics, and at each evaluation the first `images` val images
    with ground truth (green) and predictions above `image_score_threshold` (red) drawn on them."""

    def __init__(self, interval: PositiveInt = 10, tensorboard: bool = True, images: NonNegativeInt = 4,
                 image_score_threshold: Probability = 0.3) -> None:
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

            self.writer = SummaryWriter(log_dir=str(runner.work_dir / "tb"),
                                        purge_step=runner.iter + 1 if runner.iter else None)
        self._t0 = time.perf_counter()
        self._start_iter = runner.iter

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        values = {**losses, "grad_norm": runner.grad_norm, "time_data": runner.data_time,
                  "time_iter": runner.step_time}
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
        local = torch.tensor([self._sums[k] / self._count for k in keys], dtype=torch.float64,
                             device=runner.device)
        self._sums, self._count = {}, 0
        # the mean over ranks (a collective when distributed)
        return dict(zip(keys, reduce_mean(local).tolist()))

    def _write(self, runner: Runner, means: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self._t0
        done = runner.iter - self._start_iter
        eta = elapsed / max(done, 1) * (runner.max_iters - runner.iter)
        memory = (torch.cuda.max_memory_allocated(runner.device) / 2**20 if runner.device.type == "cuda"
                  else None)
        losses = {k: v for k, v in means.items() if k not in ("grad_norm", "time_data", "time_iter")}
        log.info(
            "epoch %d/%d iter %d/%d  lr %.3g  %s  grad_norm %.3g  %.2f it/s  data %.3fs%s%s  eta %s",
            runner.epoch + 1, runner.max_epochs, runner.step + 1, len(runner.train_loader), runner.lr,
            "  ".join(f"{k} {v:.4f}" for k, v in losses.items()), means["grad_norm"],
            done / max(elapsed, 1e-9), means["time_data"],
            f"  mem {memory:.0f}MB" if memory is not None else "",
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
            for i, image in enumerate(draw_val_images(runner.eval_model, runner.val_loader, runner.device,
                                                      self.images, self.image_score_threshold)):
                self.writer.add_image(f"val_images/{i}", image, runner.iter)
        self.writer.flush()

    def after_train(self, runner: Runner) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@HOOKS.register()
class ProgressBarHook(Hook):
    """A tqdm bar per epoch with ETA, speed and running losses (rank 0, on an interactive terminal)."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: tqdm | None = None

    def before_epoch(self, runner: Runner) -> None:
        if self.enabled and runner.is_main:
            self.bar = tqdm(total=runner.iters_per_epoch, initial=runner.start_step // runner.accumulate,
                            desc=f"epoch {runner.epoch + 1}/{runner.max_epochs}", dynamic_ncols=True,
                            leave=False)

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in losses.items()},
                                 refresh=False)
            self.bar.update(1)

    def after_epoch(self, runner: Runner, metrics: dict[str, float]) -> None:
        self.after_train(runner)

    def after_train(self, runner: Runner) -> None:
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
