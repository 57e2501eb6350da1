"""The training loop. It is given built parts (model, loaders, optimizer, schedule, evaluator, hooks)
and builds nothing itself: `engine/build.py` wires them from a config, a test hands in its own.

The loop fits on a screen: epochs of optimizer steps, an evaluation every `val_interval` epochs, hooks
around both. The optimizer step (AMP, accumulation, clipping, non-finite losses) is `_optimizer_step`;
saving and resuming are the plain functions of `engine/state.py`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from tqdm.contrib.logging import logging_redirect_tqdm

from ..data import set_epoch, skip_batches
from ..dist import any_rank, get_rank, get_world_size
from ..errors import UserError
from ..evaluation import run_evaluation, tensorboard_writer
from ..structures import Batch
from .budget import TimeBudget
from .ema import ModelEMA
from .hooks import Hook
from .schedules import current_lr
from .signals import GracefulStop, TrainingInterrupted
from .state import save_run

log = logging.getLogger("detframe")


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss or gradient became NaN/inf and `nonfinite` is `error` (or too many were skipped)."""


def run_length(num_batches: int, accumulate: int, max_epochs: int,
               max_iters: int | None) -> tuple[int, int, int]:
    """(iterations per epoch, epochs, iterations in all); `max_iters` wins over `max_epochs` when set."""
    iters_per_epoch = math.ceil(num_batches / max(1, accumulate))
    if max_iters:
        return iters_per_epoch, math.ceil(max_iters / max(iters_per_epoch, 1)), int(max_iters)
    return iters_per_epoch, int(max_epochs), int(max_epochs) * iters_per_epoch


class Runner:
    """Trains `model` with `optimizer` on the batches of `train_loader`, evaluating on `val_loader`.

    Hooks reach everything through the runner: `model` (unwrapped), `ema`, `optimizer`, `scheduler`,
    `scaler`, `train_loader` (a hook may change its sampler), `val_loader`, `evaluator`, `epoch`,
    `max_epochs`, `iter`, `max_iters`, `step`, `iters_per_epoch`, `metrics`, `rank`, `is_main`.

    Args:
        model: a detector (`loss(batch) -> dict`, `predict(batch) -> list[Detections]`) or any module
            with a `loss` method returning named loss tensors.
        train_loader: an iterable of batches with a length (a DataLoader, or a list in a test).
        optimizer, scheduler: built over `model`'s parameters; the schedule steps once per iteration.
        work_dir: the run's output folder (checkpoints/, eval/).
        max_epochs, max_iters: the run's length (`max_iters`, when set, wins).
        val_loader, evaluator: what `evaluate` runs on (both or neither).
        hooks: name -> Hook, called in this order at every stage.
        val_interval: evaluate every this many epochs and after the last (0: never).
        device: where batches go (the model is already there).
        accumulate: batches per optimizer step.
        clip_grad_norm: clip the global gradient norm to this (None: no clipping).
        amp: autocast dtype (torch.float16 adds a GradScaler, torch.bfloat16) or None.
        nonfinite: a NaN/inf loss or gradient: "error" stops, "skip" drops the step.
        max_skipped: with "skip": stop after this many non-finite steps in a row.
        channels_last: give the model NHWC images.
        train_module: what computes a batch's losses when it is not `model.loss`: a DDP wrapper around it
            (engine/setup.py `train_module`), whose `no_sync` spares the gradient all-reduce inside an
            accumulation group.
        config: the run's config, saved in every checkpoint (tools rebuild the model from it).
        budget: a wall-clock budget that refits the run's length after every epoch (engine/budget.py).
    """

    def __init__(
        self, model: nn.Module, train_loader: Iterable, optimizer: torch.optim.Optimizer, scheduler: Any, *,
        work_dir: str | Path, max_epochs: int = 1, max_iters: int | None = None,
        val_loader: Iterable | None = None, evaluator: Any = None, hooks: Mapping[str, Hook] | None = None,
        val_interval: int = 1, device: torch.device | str = "cpu", accumulate: int = 1,
        clip_grad_norm: float | None = None, amp: torch.dtype | None = None, nonfinite: str = "error",
        max_skipped: int = 50, channels_last: bool = False,
        train_module: Callable[[Any], dict[str, torch.Tensor]] | None = None,
        config: DictConfig | None = None, budget: TimeBudget | None = None,
    ) -> None:
        self.model, self.train_loader = model, train_loader
        self.optimizer, self.scheduler = optimizer, scheduler
        self.val_loader, self.evaluator = val_loader, evaluator
        self.hooks: dict[str, Hook] = dict(hooks or {})
        self.work_dir = Path(work_dir)
        self.ckpt_dir = self.work_dir / "checkpoints"
        self.device = torch.device(device)
        self.config = config
        self.rank, self.world_size = get_rank(), get_world_size()
        self.is_main = self.rank == 0
        self.accumulate = max(1, int(accumulate))
        self.iters_per_epoch, self.max_epochs, self.max_iters = run_length(len(train_loader), self.accumulate,
                                                                           max_epochs, max_iters)
        self.budget = budget
        self.val_interval, self.clip_grad_norm = int(val_interval), clip_grad_norm
        self.channels_last = channels_last
        if nonfinite not in ("error", "skip"):
            raise ValueError(f"nonfinite: expected 'error' or 'skip', got {nonfinite!r}")
        self.nonfinite, self.max_skipped = nonfinite, int(max_skipped)
        self.amp_dtype = amp
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp is torch.float16)
        if self.scaler.is_enabled():  # the scaler skips steps with inf gradients by design; torch warns
            warnings.filterwarnings(
                "ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.train_module = train_module if train_module is not None else model.loss
        self.batch_size = _batch_size(train_loader)
        self.total_batch_size = self.batch_size * self.world_size * self.accumulate

        self.epoch = 0  # index of the current epoch; after resume, the first epoch still to run
        self.iter = 0  # optimizer steps done
        self.step = 0  # batch index within the current epoch
        self.start_step = 0  # batches of `epoch` already done (mid-epoch resume)
        self.in_epoch = False
        self.data_time = self.step_time = self.grad_norm = 0.0
        self.skipped = self._skipped_in_row = 0  # non-finite steps dropped (nonfinite="skip")
        self.stepped = False  # whether the last iteration updated the weights
        self.metrics: dict[str, float] = {}
        self.ema: ModelEMA | None = None
        self.stop = GracefulStop()

    @property
    def lr(self) -> float:
        return current_lr(self.optimizer)

    @property
    def eval_model(self) -> nn.Module:
        """What evaluation and inference use: the EMA weights when EMAHook is on."""
        return self.ema.module if self.ema is not None else self.model

    def call_hooks(self, stage: str, **kwargs: Any) -> None:
        for hook in self.hooks.values():
            getattr(hook, stage)(self, **kwargs)

    def request_stop(self, reason: str = "request") -> None:
        """Stop after the current iteration, save, and raise `TrainingInterrupted` (as on SIGTERM)."""
        self.stop.requested = self.stop.requested or reason

    # -- the loop ---------------------------------------------------------------------------------

    def train(self) -> dict[str, float]:
        """Train from the current position to the end; returns the last metrics.

        Raises:
            TrainingInterrupted: SIGTERM/SIGINT (or `request_stop`) arrived; a checkpoint was saved.
        """
        log.info("training %s on %s x%d: %d epochs x %d iterations (%d in all), batch %d x %d processes x %d "
                 "accumulated = %d, output %s", type(self.model).__name__, self.device, self.world_size,
                 self.max_epochs, self.iters_per_epoch, self.max_iters, self.batch_size, self.world_size,
                 self.accumulate, self.total_batch_size, self.work_dir)
        with logging_redirect_tqdm(loggers=[logging.getLogger()]), self.stop:
            self.call_hooks("before_train")
            if self.budget is not None:
                self.budget.start(self)
            while self.epoch < self.max_epochs:  # a time budget may change max_epochs after any epoch
                self.call_hooks("before_epoch")
                self.in_epoch = True
                if not self.train_one_epoch():
                    self._interrupted()  # saves the mid-epoch position
                self.in_epoch = False
                if self.budget is not None:
                    self.budget.fit(self)
                metrics = self.evaluate() if self._evaluation_due() else {}
                self.call_hooks("after_epoch", metrics=metrics)
                if self.iter >= self.max_iters:
                    break
                self.epoch += 1
            self.epoch = self.max_epochs
            self.call_hooks("after_train")
        return self.metrics

    def _evaluation_due(self) -> bool:
        if self.evaluator is None or self.val_loader is None or self.val_interval <= 0:
            return False
        done = self.epoch + 1
        return done % self.val_interval == 0 or done == self.max_epochs or self.iter >= self.max_iters

    def train_one_epoch(self) -> bool:
        """The current epoch from `start_step` on; False when a stop was requested mid-way."""
        self.model.train()
        set_epoch(self.train_loader, self.epoch)
        start, self.start_step = self.start_step, 0
        num_batches = len(self.train_loader)
        group_begin, group_losses = start, []
        end = time.perf_counter()
        for self.step, batch in enumerate(skip_batches(self.train_loader, start), start):
            group_size = min(self.accumulate, num_batches - group_begin)
            if self.step == group_begin:
                self.call_hooks("before_step")
                self.data_time, iter_start = 0.0, end
            batch = self._to_device(batch)
            self.data_time += time.perf_counter() - end
            last = self.step + 1 == group_begin + group_size
            group_losses.append(self._forward_backward(batch, group_size, last=last))
            if len(group_losses) == group_size:
                values = self._optimizer_step(group_losses)
                self.iter += 1
                self.step_time = time.perf_counter() - iter_start
                group_begin, group_losses = self.step + 1, []
                self.call_hooks("after_step", losses=values)
                if any_rank(self.stop.requested is not None, self.device):
                    return False
                if self.budget is not None and any_rank(self.budget.over(), self.device):
                    self.budget.end_now(self)
                if self.iter >= self.max_iters:
                    return True
            end = time.perf_counter()
        return True

    def _to_device(self, batch: Any) -> Any:
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last and isinstance(batch, Batch):
            batch = replace(batch, images=batch.images.contiguous(memory_format=torch.channels_last))
        return batch

    def _forward_backward(self, batch: Any, group_size: int, last: bool) -> dict[str, torch.Tensor]:
        """Loss of one batch and its gradient, scaled by 1/group_size; DDP syncs only on the group's last."""
        no_sync = getattr(self.train_module, "no_sync", None)
        with no_sync() if no_sync is not None and not last else contextlib.nullcontext():
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                losses = self.train_module(batch)
            total = torch.stack(list(losses.values())).sum()
            self.scaler.scale(total / group_size if group_size > 1 else total).backward()
        return losses

    def _optimizer_step(self, group_losses: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Clip, check, step, schedule; returns the loss terms (mean over the group) and their total."""
        self.scaler.unscale_(self.optimizer)
        if self.clip_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(self.params, float(self.clip_grad_norm))
        else:
            norm = total_norm([p.grad for p in self.params if p.grad is not None])
        names = list(group_losses[0])
        means = torch.stack([torch.stack([losses[k].detach().float() for k in names])
                             for losses in group_losses]).mean(0)
        # One device-to-host copy for the loss terms and the gradient norm together.
        norm = norm.detach().float().reshape(1).to(means.device)
        *terms, self.grad_norm = torch.cat([means, norm]).tolist()
        values = dict(zip(names, terms))
        values["loss"] = sum(terms)
        # With fp16 the GradScaler handles inf gradients (it skips the step and lowers its scale).
        bad = not all(map(math.isfinite, terms)) or (
            not self.scaler.is_enabled() and not math.isfinite(self.grad_norm))
        self.stepped = not (bad and self._handle_nonfinite(values))
        if self.stepped:
            self._skipped_in_row = 0
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return values

    def _handle_nonfinite(self, values: dict[str, float]) -> bool:
        """Raise (nonfinite="error") or count the step as skipped; True when skipped."""
        where = f"epoch {self.epoch + 1} iteration {self.iter + 1} (batch {self.step + 1} of the epoch)"
        terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        if self.nonfinite != "skip":
            raise NonFiniteLossError(f"{where}: non-finite loss or gradient: {terms}, "
                                     f"grad_norm={self.grad_norm:.4g}. Lower optimizer.lr, set "
                                     "train.clip_grad_norm, check the data, or set train.nonfinite=skip")
        self.skipped += 1
        self._skipped_in_row += 1
        log.warning("%s: non-finite %s, grad_norm=%.4g: step skipped (%d so far)", where, terms,
                    self.grad_norm, self.skipped)
        if self._skipped_in_row > self.max_skipped:
            raise NonFiniteLossError(f"{where}: {self._skipped_in_row} non-finite steps in a row "
                                     f"(train.max_skipped={self.max_skipped}): training has diverged")
        return True

    def _interrupted(self) -> None:
        path = save_run(self, "last.pt")
        self.call_hooks("after_train")
        hint = f"resume=auto (or resume={path})" if path is not None else "resume=auto"
        raise TrainingInterrupted(
            f"stopped by {self.stop.requested} at epoch {self.epoch + 1}, iteration {self.iter} "
            f"(batch {self.step + 1} of {len(self.train_loader)}); checkpoint saved. "
            f"To continue, run the same command with {hint}",
            self.stop.exit_code)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Predict on the whole val set and compute the evaluator's metrics (hooks get them in
        `after_eval`)."""
        start = time.perf_counter()
        self.call_hooks("before_eval")
        self.metrics = run_evaluation(self.eval_model, self.val_loader, self.evaluator, self.device)
        text = self.evaluator.text() if hasattr(self.evaluator, "text") else ""
        log.info("evaluation after epoch %d (%d images, %.1fs):\n%s\n%s", self.epoch + 1,
                 len(getattr(self.val_loader, "dataset", self.val_loader)), time.perf_counter() - start,
                 format_metrics(self.metrics), text)
        if self.is_main and hasattr(self.evaluator, "write_reports"):  # tables, curves; PNG plots at the end
            info = {"epoch": self.epoch + 1, "iteration": self.iter}
            self.evaluator.write_reports(self.work_dir / "eval", info, tensorboard_writer(self), self.iter,
                                         plots=self.epoch + 1 >= self.max_epochs)
        self.call_hooks("after_eval", metrics=self.metrics)
        self.model.train()
        return self.metrics


def _batch_size(loader: Any) -> int:
    """Images per batch of a DataLoader (its batch sampler's size when it has one), else 1."""
    for source in (loader, getattr(loader, "batch_sampler", None)):
        size = getattr(source, "batch_size", None)
        if isinstance(size, int):
            return size
    return 1


def total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all gradients together (fused over tensors where torch has it)."""
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


def format_metrics(metrics: dict[str, float]) -> str:
    """A two-column table of metric name and value."""
    width = max((len(k) for k in metrics), default=0)
    return "\n".join(f"  {k:<{width}}  {v:.4f}" for k, v in metrics.items())
