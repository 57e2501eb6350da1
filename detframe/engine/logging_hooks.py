"""Hooks that report progress: the text log and TensorBoard (LoggerHook), the progress bar."""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from ..dist import reduce_mean
from ..registry import HOOKS
from ..rules import NonNegativeInt, PositiveInt, Probability
from ..vis import draw_val_images
from ..vis.curves import SCALARS_FILE, read_scalars, run_figures
from .hooks import Hook

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")


@HOOKS.register()
class LoggerHook(Hook):
    """Text log lines every `interval` iterations and TensorBoard: every loss term (averaged over the
    interval and over ranks), the total, the learning rate, gradient norm, data and iteration time, GPU
    memory, skipped steps, the evaluation metrics, and at each evaluation the first `images` val images
    with ground truth (green) and predictions above `image_score_threshold` (red) drawn on them.

    The same scalars (but memory and skipped steps) also go to `<run>/scalars.jsonl`, one JSON line per
    logging step and per evaluation, with TensorBoard on or off; at the end of the run (`plots`) they are
    drawn as `<run>/plots/train.png` and `val.png` (vis/curves.py). A resumed run first cuts the file
    back to the iteration it resumes from, so curves never double back."""

    def __init__(self, interval: PositiveInt = 10, tensorboard: bool = True, images: NonNegativeInt = 4,
                 image_score_threshold: Probability = 0.3, plots: bool = True) -> None:
        self.interval = max(1, interval)
        self.tensorboard, self.plots = tensorboard, plots
        self.scalars_path: Path | None = None
        self.images, self.image_score_threshold = images, image_score_threshold
        self.writer = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self._t0 = 0.0
        self._start_iter = 0

    def before_train(self, runner: Runner) -> None:
        if runner.is_main:
            self.scalars_path = runner.work_dir / SCALARS_FILE
            runner.work_dir.mkdir(parents=True, exist_ok=True)
            cut_scalars(self.scalars_path, runner.iter)
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
        scalars = {f"train/{k}": v for k, v in losses.items()}
        for i, group in enumerate(runner.optimizer.param_groups):
            scalars["train/lr" if i == 0 else f"train/lr_group{i}"] = group["lr"]
        scalars.update({"train/grad_norm": means["grad_norm"], "time/data": means["time_data"],
                        "time/iter": means["time_iter"]})
        self._append(runner, scalars)
        if self.writer is None:
            return
        it = runner.iter
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, it)
        self.writer.add_scalar("train/skipped_steps", runner.skipped, it)
        if runner.scaler.is_enabled():
            self.writer.add_scalar("train/amp_scale", runner.scaler.get_scale(), it)
        if memory is not None:
            self.writer.add_scalar("memory/max_allocated_mb", memory, it)
            torch.cuda.reset_peak_memory_stats(runner.device)

    def _append(self, runner: Runner, scalars: dict[str, float]) -> None:
        if self.scalars_path is not None and scalars:
            record = {"iter": runner.iter, "epoch": runner.epoch + 1, **scalars}
            with open(self.scalars_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def after_eval(self, runner: Runner, metrics: dict[str, float]) -> None:
        if runner.is_main:
            self._append(runner, {f"val/{k}": v for k, v in metrics.items()
                                  if isinstance(v, (int, float)) and math.isfinite(v)})
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
        if self.plots and self.scalars_path is not None and self.scalars_path.is_file():
            try:
                paths = write_run_plots(runner.work_dir / "plots", {runner.work_dir.name: self.scalars_path})
            except Exception as e:  # a finished run must not fail on its pictures
                log.warning("plots of %s not drawn: %s: %s", self.scalars_path, type(e).__name__, e)
            else:
                log.info("plots: %s", ", ".join(str(p) for p in paths))


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


def cut_scalars(path: Path, last_iter: int) -> None:
    """Keep the records of `path` up to iteration `last_iter` (the position a run starts or resumes
    from: 0 empties it), dropping those of iterations that are about to be redone; a half-written line
    goes too. Rewritten atomically."""
    if not path.is_file():
        return
    kept = [r for r in read_scalars(path) if r["iter"] <= last_iter]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, path)


def write_run_plots(out: Path, runs: Mapping[str, Path]) -> list[Path]:
    """Draw the `scalars.jsonl` of each run (label -> file) into `out` (train.png, val.png); the paths
    written."""
    from ..evaluation.report import atomic_save_figure

    figures = run_figures({label: read_scalars(path) for label, path in runs.items()})
    return [atomic_save_figure(fig, out / name, dpi=100, tight=False) for name, fig in figures.items()]
