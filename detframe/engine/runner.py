"""The training/evaluation loop. Everything around it (evaluation schedule, checkpoints, logging,
progress) is a hook; the loop itself fits on a screen."""
from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.contrib.logging import logging_redirect_tqdm

from .. import __version__, evaluation  # noqa: F401  (registers the evaluators)
from ..data import build_dataloader, build_dataset
from ..errors import ConfigError, UserError
from ..evaluation import build_evaluator, is_main_process, tensorboard_writer
from ..models import build_detector
from ..models.losses import loss_sum
from ..registry import HOOKS
from .checkpoint import load_checkpoint, save_checkpoint
from .evaluate import run_evaluation
from .hooks import Hook
from .optim import build_optimizer, build_scheduler, current_lr

log = logging.getLogger("detframe")


def select_device(name: str) -> torch.device:
    """`auto`: CUDA when available, else CPU; otherwise the named device, checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device: '{name}' asked for, but CUDA is not available here (use auto or cpu)")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Runner:
    """Builds data, model, optimizer, schedule, evaluator and hooks from `cfg`, then trains.

    Args:
        cfg: the composed config (see configs/train.yaml).
        work_dir: the run's output folder (checkpoints/, tb/, config.yaml).
    """

    def __init__(self, cfg: DictConfig, work_dir: str | Path) -> None:
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.ckpt_dir = self.work_dir / "checkpoints"
        self.device = select_device(cfg.runtime.device)
        seed_everything(cfg.seed)
        self.max_epochs = int(cfg.train.max_epochs)

        # Cheap builds first, so that a config mistake fails before a large dataset is parsed.
        self.hooks: dict[str, Hook] = {name: HOOKS.build(h) for name, h in cfg.hooks.items() if h is not None}
        self.model = build_detector(cfg.model).to(self.device)

        from ..data import train_loader_options

        data = cfg.data
        self.train_set = build_dataset(data, "train", cfg.pipeline.train)
        self.val_set = build_dataset(data, "val", cfg.pipeline.val)
        self.train_loader = build_dataloader(self.train_set, data.batch_size, data.num_workers, train=True,
                                             size_divisor=data.size_divisor, seed=cfg.seed, **train_loader_options(cfg))
        self.val_loader = build_dataloader(self.val_set, data.val_batch_size, data.num_workers, train=False,
                                           size_divisor=data.size_divisor)
        self.iters_per_epoch = len(self.train_loader)

        self.optimizer = build_optimizer(cfg.optimizer, self.model)
        self.scheduler = build_scheduler(cfg.scheduler, self.optimizer, self.iters_per_epoch, self.max_epochs)
        self.evaluator = build_evaluator(cfg.evaluator, self.val_set)

        self.epoch = 0  # index of the current epoch; after resume, the first epoch still to run
        self.iter = 0  # optimizer steps done
        self.step = 0  # step within the current epoch
        self.data_time = self.step_time = 0.0
        self.metrics: dict[str, float] = {}
        if cfg.get("resume"):
            self.resume(cfg.resume)
        elif cfg.get("load_from"):
            self.load_weights(cfg.load_from)

    @property
    def lr(self) -> float:
        return current_lr(self.optimizer)

    def call_hooks(self, stage: str, **kwargs: Any) -> None:
        for hook in self.hooks.values():
            getattr(hook, stage)(self, **kwargs)

    def train(self) -> dict[str, float]:
        """Train from the current position to `train.max_epochs`; returns the last metrics."""
        log.info("training %s on %s: %d epochs x %d iterations, output %s",
                 type(self.model).__name__, self.device, self.max_epochs, self.iters_per_epoch, self.work_dir)
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):
            self.call_hooks("before_train")
            start = self.epoch
            for self.epoch in range(start, self.max_epochs):
                self.call_hooks("before_epoch")
                self.train_one_epoch()
                self.call_hooks("after_epoch")
            self.epoch = self.max_epochs
            self.call_hooks("after_train")
        return self.metrics

    def train_one_epoch(self) -> None:
        self.model.train()
        # The shuffle order of epoch e depends on (seed, e) only, so a resumed run sees the same order.
        self.train_loader.generator.manual_seed(int(self.cfg.seed) * 1000 + self.epoch)
        end = time.perf_counter()
        for self.step, batch in enumerate(self.train_loader):
            batch = batch.to(self.device, non_blocking=True)
            self.data_time = time.perf_counter() - end
            losses = self.model.loss(batch)
            total = loss_sum(losses)
            if not torch.isfinite(total):
                values = {k: v.item() for k, v in losses.items()}
                raise FloatingPointError(f"epoch {self.epoch + 1} iteration {self.iter + 1}: non-finite loss {values}")
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.iter += 1
            values = {k: v.item() for k, v in losses.items()}
            values["loss"] = total.item()
            self.step_time = time.perf_counter() - end
            self.call_hooks("after_step", losses=values)
            end = time.perf_counter()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Predict on the whole val set and compute the evaluator's metrics."""
        start = time.perf_counter()
        self.metrics = run_evaluation(self.model, self.val_loader, self.evaluator, self.device)
        log.info("evaluation after epoch %d (%d images, %.1fs):\n%s\n%s", self.epoch + 1, len(self.val_set),
                 time.perf_counter() - start, format_metrics(self.metrics), self.evaluator.text())
        if is_main_process():  # tables and TensorBoard curves each time; PNG plots after the last epoch
            self.evaluator.write_reports(self.work_dir / "eval", {"epoch": self.epoch + 1, "iteration": self.iter},
                                         tensorboard_writer(self), self.iter, plots=self.epoch + 1 >= self.max_epochs)
        self.call_hooks("after_eval", metrics=self.metrics)
        self.model.train()
        return self.metrics

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch + 1,  # epochs completed
            "iter": self.iter,
            "hooks": {name: h.state_dict() for name, h in self.hooks.items()},
            "metrics": dict(self.metrics),
            "rng": {
                "python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
                "numpy": np.random.get_state()[1].tolist(), "numpy_pos": int(np.random.get_state()[2]),
                "torch": torch.get_rng_state(),
            },
            "config": OmegaConf.to_yaml(self.cfg, resolve=True),
            "meta": {"detframe": __version__, "time": time.strftime("%Y-%m-%d %H:%M:%S")},
        }

    def save_checkpoint(self, name: str) -> Path:
        return save_checkpoint(self.state_dict(), self.ckpt_dir / name)

    def resume(self, path: str) -> None:
        """Restore model, optimizer, schedule, position, hook state and RNGs from a checkpoint."""
        state = load_checkpoint(path)
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "iter") if k not in state]
        if missing:
            raise UserError(f"resume={path}: not a training checkpoint (no {', '.join(missing)}); use load_from= for weights only")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.iter = int(state["epoch"]), int(state["iter"])
        self.metrics = dict(state.get("metrics", {}))
        for name, hook_state in state.get("hooks", {}).items():
            if name in self.hooks:
                self.hooks[name].load_state_dict(hook_state)
        rng = state.get("rng")
        if rng:
            random.setstate((3, tuple(rng["python"]), rng["python_pos"]))
            np.random.set_state(("MT19937", np.array(rng["numpy"], dtype=np.uint32), rng["numpy_pos"], 0, 0.0))
            torch.set_rng_state(rng["torch"])
        log.info("resumed from %s: %d epochs and %d iterations done", path, self.epoch, self.iter)
        if self.epoch >= self.max_epochs:
            log.warning("the checkpoint has already done %d of train.max_epochs=%d: nothing left to train; "
                        "raise train.max_epochs to continue", self.epoch, self.max_epochs)

    def load_weights(self, path: str) -> None:
        """Load model weights only (fine-tuning); tensors whose shape differs are listed and skipped."""
        state = load_checkpoint(path)
        weights = state.get("model", state)
        own = self.model.state_dict()
        skipped = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
        result = self.model.load_state_dict({k: v for k, v in weights.items() if k not in skipped}, strict=False)
        log.info("load_from=%s: %d tensors loaded, %d skipped for shape, %d missing, %d unexpected", path,
                 len(own) - len(result.missing_keys), len(skipped), len(result.missing_keys), len(result.unexpected_keys))
        for k in skipped:
            log.info("  skipped %s: checkpoint %s, model %s", k, tuple(weights[k].shape), tuple(own[k].shape))


def format_metrics(metrics: dict[str, float]) -> str:
    """A two-column table of metric name and value."""
    width = max((len(k) for k in metrics), default=0)
    return "\n".join(f"  {k:<{width}}  {v:.4f}" for k, v in metrics.items())
