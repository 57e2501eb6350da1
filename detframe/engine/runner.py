"""The training/evaluation loop. Everything around it (evaluation schedule, checkpoints, logging, EMA,
progress) is a hook; the loop itself fits on a screen, the optimizer step (AMP, accumulation,
clipping, non-finite losses) in `_optimizer_step`. Saving and resuming live in `RunState`."""
from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm.contrib.logging import logging_redirect_tqdm

from .. import evaluation  # noqa: F401  (registers the evaluators)
from ..data import build_dataloader, build_dataset, set_epoch
from ..errors import ConfigError, UserError
from ..evaluation import build_evaluator, is_main_process, tensorboard_writer
from ..models import build_detector
from ..registry import HOOKS
from ..structures import Batch
from ..dist import any_rank, get_rank, get_world_size, init_from_env
from .ema import ModelEMA
from .evaluate import run_evaluation
from .freeze import freeze
from .hooks import Hook
from .optim import build_optimizer, build_scheduler, current_lr, describe_groups, lr_scale_for
from .sampling import deterministic_loader, skip_batches
from .setup import configure_determinism, parse_amp, prepare_model, seed_everything, select_device, wrap_model
from .signals import GracefulStop, TrainingInterrupted
from .state import RunState

log = logging.getLogger("detframe")


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss or gradient became NaN/inf and `train.nonfinite` is `error` (or too many were skipped)."""


class Runner(RunState):
    """Builds data, model, optimizer, schedule, evaluator and hooks from `cfg`, then trains.

    Hooks reach everything through the runner: `model` (unwrapped), `ema`, `optimizer`, `scheduler`,
    `train_set`, `train_loader` (a hook may replace it, e.g. to switch augmentation off), `val_set`,
    `epoch`, `max_epochs`, `iter`, `max_iters`, `step`, `iters_per_epoch`, `metrics`, `rank`, `is_main`.

    Args:
        cfg: the composed config (see configs/train.yaml).
        work_dir: the run's output folder (checkpoints/, tb/, config.yaml).
    """

    def __init__(self, cfg: DictConfig, work_dir: str | Path) -> None:
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.ckpt_dir = self.work_dir / "checkpoints"
        init_from_env(cfg.runtime.dist_backend, cfg.runtime.dist_timeout_minutes)
        self.rank, self.world_size = get_rank(), get_world_size()
        self.is_main = self.rank == 0
        self.device = select_device(cfg.runtime.device)
        configure_determinism(cfg.runtime.deterministic, cfg.runtime.cudnn_benchmark)
        seed_everything(cfg.seed)  # the same on every rank: identical initial weights
        self.amp_dtype = parse_amp(cfg.runtime.amp, self.device)
        self.max_epochs = int(cfg.train.max_epochs)
        resume = self._resume_path(cfg.get("resume"))

        # Cheap builds first, so that a config mistake fails before a large dataset is parsed.
        hooks = [(name, HOOKS.build(h)) for name, h in cfg.hooks.items() if h is not None]
        self.hooks: dict[str, Hook] = dict(sorted(hooks, key=lambda item: getattr(item[1], "priority", 50)))
        self.model = build_detector(cfg.model)
        if cfg.get("load_from") and not resume:
            self.load_weights(cfg.load_from)
        freeze(self.model, list(cfg.train.freeze), list(cfg.train.freeze_norm))
        self.model = prepare_model(self.model, self.device, cfg.runtime.channels_last, cfg.runtime.sync_bn)

        from ..data import train_loader_options

        data = cfg.data
        self.train_set = build_dataset(data, "train", cfg.pipeline.train)
        self.val_set = build_dataset(data, "val", cfg.pipeline.val)
        self.train_loader = build_dataloader(self.train_set, data.batch_size, data.num_workers, train=True,
                                             size_divisor=data.size_divisor, seed=cfg.seed, distributed=self.world_size > 1,
                                             **train_loader_options(cfg))
        self.val_loader = build_dataloader(self.val_set, data.val_batch_size, data.num_workers, train=False,
                                           size_divisor=data.size_divisor, distributed=self.world_size > 1)
        # A keyed TrainBatchSampler (detframe.data.samplers) already seeds every sample from (seed, epoch,
        # position); other loaders get the seeded wrapper in deterministic mode.
        if cfg.runtime.deterministic and not getattr(self.train_loader.batch_sampler, "keyed", False):
            self.train_loader = deterministic_loader(self.train_loader, cfg.seed, self.rank, self.world_size)
        if self.world_size > 1:
            seed_everything(cfg.seed + self.rank)  # per-rank random streams from here on

        self._build_optimization(cfg)
        self.evaluator = build_evaluator(cfg.evaluator, self.val_set)

        self.epoch = 0  # index of the current epoch; after resume, the first epoch still to run
        self.iter = 0  # optimizer steps done
        self.step = 0  # batch index within the current epoch
        self.start_step = 0  # batches of `epoch` already done (mid-epoch resume)
        self.in_epoch = False
        self.data_time = self.step_time = self.grad_norm = 0.0
        self.skipped = self._skipped_in_row = 0  # non-finite steps dropped (train.nonfinite=skip)
        self.stepped = False  # whether the last iteration updated the weights
        self.metrics: dict[str, float] = {}
        self.ema: ModelEMA | None = None
        self.stop = GracefulStop()
        self.call_hooks("before_run")
        if resume:
            self.resume(resume)
        self.forward_model, self.ddp = wrap_model(self.model, self.device, cfg.runtime.compile,
                                                  cfg.runtime.find_unused_parameters)

    def _build_optimization(self, cfg: DictConfig) -> None:
        """Iterations per epoch, run length, LR scaling, optimizer, schedule, GradScaler."""
        self.accumulate = max(1, int(cfg.train.accumulate))
        self.iters_per_epoch = math.ceil(len(self.train_loader) / self.accumulate)
        if self.iters_per_epoch == 0:
            raise ConfigError(f"data.batch_size={cfg.data.batch_size}: the training set gives no batch")
        if cfg.train.max_iters:
            self.max_iters = int(cfg.train.max_iters)
            self.max_epochs = math.ceil(self.max_iters / self.iters_per_epoch)
        else:
            self.max_iters = self.max_epochs * self.iters_per_epoch
        self.total_batch_size = int(cfg.data.batch_size) * self.world_size * self.accumulate
        lr_scale = lr_scale_for(self.total_batch_size, cfg.train.base_batch_size)
        self.optimizer = build_optimizer(cfg.optimizer, self.model, lr_scale)
        self.scheduler = build_scheduler(cfg.scheduler, self.optimizer, self.iters_per_epoch, self.max_iters)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype is torch.float16)
        if self.scaler.is_enabled():  # the scaler skips steps with inf gradients by design; torch warns about it
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if lr_scale != 1.0:
            log.info("optimizer.lr scaled x%.3g: total batch %d vs train.base_batch_size %d",
                     lr_scale, self.total_batch_size, cfg.train.base_batch_size)
        log.info("optimizer %s: %s", type(self.optimizer).__name__, describe_groups(self.optimizer))

    def _resume_path(self, resume: str | None) -> str | None:
        """`resume=auto`: this run folder's last.pt if there is one (the CLI points the run folder at the
        experiment's newest run), else a fresh start."""
        if resume != "auto":
            return resume
        path = self.ckpt_dir / "last.pt"
        if path.is_file():
            return str(path)
        log.info("resume=auto: no checkpoint in %s: starting from the beginning", self.ckpt_dir)
        return None

    @property
    def lr(self) -> float:
        return current_lr(self.optimizer)

    @property
    def eval_model(self) -> torch.nn.Module:
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
                 "accumulated = %d, output %s", type(self.model).__name__, self.device, self.world_size, self.max_epochs,
                 self.iters_per_epoch, self.max_iters, self.cfg.data.batch_size, self.world_size, self.accumulate,
                 self.total_batch_size, self.work_dir)
        with logging_redirect_tqdm(loggers=[logging.getLogger()]), self.stop:
            self.call_hooks("before_train")
            for self.epoch in range(self.epoch, self.max_epochs):
                self.call_hooks("before_epoch")
                self.in_epoch = True
                if not self.train_one_epoch():
                    self._interrupted()  # saves the mid-epoch position
                self.in_epoch = False
                self.call_hooks("after_epoch")
                if self.iter >= self.max_iters:
                    break
            self.epoch = self.max_epochs
            self.call_hooks("after_train")
        return self.metrics

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
            group_losses.append(self._forward_backward(batch, group_size, last=self.step + 1 == group_begin + group_size))
            if len(group_losses) == group_size:
                values = self._optimizer_step(group_losses)
                self.iter += 1
                self.step_time = time.perf_counter() - iter_start
                group_begin, group_losses = self.step + 1, []
                self.call_hooks("after_step", losses=values)
                if any_rank(self.stop.requested is not None, self.device):
                    return False
                if self.iter >= self.max_iters:
                    return True
            end = time.perf_counter()
        return True

    def _to_device(self, batch: Batch) -> Batch:
        batch = batch.to(self.device, non_blocking=True)
        if self.cfg.runtime.channels_last:
            batch = replace(batch, images=batch.images.contiguous(memory_format=torch.channels_last))
        return batch

    def _forward_backward(self, batch: Batch, group_size: int, last: bool) -> dict[str, torch.Tensor]:
        """Loss of one batch and its gradient, scaled by 1/group_size; DDP syncs only on the group's last."""
        no_sync = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
        with no_sync:
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                losses = self.model.loss(batch, forward=self.forward_model)
            total = torch.stack(list(losses.values())).sum()
            self.scaler.scale(total / group_size if group_size > 1 else total).backward()
        return losses

    def _optimizer_step(self, group_losses: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Clip, check, step, schedule; returns the loss terms (mean over the group) and their total."""
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.train.clip_grad_norm
        if clip:
            norm = torch.nn.utils.clip_grad_norm_(self.params, float(clip))
        else:
            norm = total_norm([p.grad for p in self.params if p.grad is not None])
        names = list(group_losses[0])
        means = torch.stack([torch.stack([l[k].detach().float() for k in names]) for l in group_losses]).mean(0)
        *terms, self.grad_norm = torch.cat([means, norm.detach().float().reshape(1).to(means.device)]).tolist()  # one sync
        values = dict(zip(names, terms))
        values["loss"] = sum(terms)
        # With fp16 the GradScaler handles inf gradients (it skips the step and lowers its scale).
        bad = not all(map(math.isfinite, terms)) or (not self.scaler.is_enabled() and not math.isfinite(self.grad_norm))
        self.stepped = not (bad and self._handle_nonfinite(values))
        if self.stepped:
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return values

    def _handle_nonfinite(self, values: dict[str, float]) -> bool:
        """Raise (train.nonfinite=error) or count the step as skipped; True when skipped."""
        where = f"epoch {self.epoch + 1} iteration {self.iter + 1} (batch {self.step + 1} of the epoch)"
        terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        if self.cfg.train.nonfinite != "skip":
            raise NonFiniteLossError(f"{where}: non-finite loss or gradient: {terms}, grad_norm={self.grad_norm:.4g}. "
                                     "Lower optimizer.lr, set train.clip_grad_norm, check the data, or set train.nonfinite=skip")
        self.skipped += 1
        self._skipped_in_row += 1
        log.warning("%s: non-finite %s, grad_norm=%.4g: step skipped (%d so far)", where, terms, self.grad_norm, self.skipped)
        if self._skipped_in_row > self.cfg.train.max_skipped:
            raise NonFiniteLossError(f"{where}: {self._skipped_in_row} non-finite steps in a row (train.max_skipped="
                                     f"{self.cfg.train.max_skipped}): training has diverged")
        return True

    def _interrupted(self) -> None:
        path = self.save_checkpoint("last.pt")
        self.call_hooks("after_train")
        hint = f"resume=auto (or resume={path})" if path is not None else "resume=auto"
        raise TrainingInterrupted(
            f"stopped by {self.stop.requested} at epoch {self.epoch + 1}, iteration {self.iter} (batch {self.step + 1} of "
            f"{len(self.train_loader)}); checkpoint saved. To continue, run the same command with {hint}",
            self.stop.exit_code)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Predict on the whole val set and compute the evaluator's metrics."""
        start = time.perf_counter()
        self.call_hooks("before_eval")
        self.metrics = run_evaluation(self.eval_model, self.val_loader, self.evaluator, self.device)
        log.info("evaluation after epoch %d (%d images, %.1fs):\n%s\n%s", self.epoch + 1, len(self.val_set),
                 time.perf_counter() - start, format_metrics(self.metrics), self.evaluator.text())
        if is_main_process():  # tables and TensorBoard curves each time; PNG plots after the last epoch
            self.evaluator.write_reports(self.work_dir / "eval", {"epoch": self.epoch + 1, "iteration": self.iter},
                                         tensorboard_writer(self), self.iter, plots=self.epoch + 1 >= self.max_epochs)
        self.call_hooks("after_eval", metrics=self.metrics)
        self.model.train()
        return self.metrics


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
