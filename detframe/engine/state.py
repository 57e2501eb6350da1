"""Saving and restoring a run: what goes into a checkpoint, and how `resume` and `load_from` read it.

Resume rule: the checkpoint restores *state* (weights, EMA, optimizer moments, scaler, position,
RNGs, the best metric); the config you run with decides *settings* (LR, schedule shape and length,
weight decay, hooks). So `resume=auto train.max_epochs=36` continues a finished 24-epoch run with the
schedule of a 36-epoch one from iteration 24 x iters_per_epoch, and every changed setting is logged.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from .. import __version__
from ..errors import UserError
from .checkpoint import inference_weights, link_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..dist import all_gather_object
from .schedules import restore_position

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")

# Keys that legitimately differ between a run and its resumption.
_IGNORED_CHANGES = ("resume", "load_from")


class RunState:
    """Checkpoint methods of the Runner (a mixin: they use the runner's attributes)."""

    def state_dict(self: Runner) -> dict[str, Any]:
        """Everything needed to continue exactly; a collective in distributed runs (RNGs of every rank)."""
        epoch, step = (self.epoch, self.step + 1) if self.in_epoch else (self.epoch + 1, 0)
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": epoch,  # epochs completed
            "step": step,  # batches of the next epoch already trained on
            "iter": self.iter,
            "skipped": self.skipped,
            "hooks": {name: h.state_dict() for name, h in self.hooks.items()},
            "metrics": dict(self.metrics),
            "rng": all_gather_object(rng_state()),  # one entry per rank
            "config": OmegaConf.to_yaml(self.cfg, resolve=True),
            "meta": {"detframe": __version__, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "world_size": self.world_size,
                     "batch_size": int(self.cfg.data.batch_size), "accumulate": self.accumulate},
        }

    def save_checkpoint(self: Runner, name: str, *also: str) -> Path | None:
        """Write `checkpoints/<name>` (and hard links or copies named `also`); rank 0 only, but every rank
        must call it. Returns the path on rank 0, None elsewhere."""
        state = self.state_dict()
        if not self.is_main:
            return None
        path = save_checkpoint(state, self.ckpt_dir / name)
        for other in also:
            link_checkpoint(path, self.ckpt_dir / other)
        return path

    def resume(self: Runner, path: str) -> None:
        """Restore weights, EMA, optimizer, scaler, schedule position, data position, hooks and RNGs."""
        state = load_checkpoint(path)
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "iter") if k not in state]
        if missing:
            raise UserError(f"resume={path}: not a training checkpoint (no {', '.join(missing)}); use load_from= for weights only")
        _report_config_changes(state.get("config"), self.cfg)
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise UserError(f"resume={path}: the saved weights do not fit this model ({str(e).splitlines()[1].strip()}); "
                            "was it trained with another model config? Use load_from= to fine-tune from it") from None
        self._restore_optimization(state, path)
        if self.ema is not None:
            if state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            else:
                log.warning("resume=%s: the checkpoint has no EMA weights; the EMA starts from the current weights", path)
                self.ema.module.load_state_dict(self.model.state_dict())
        self.epoch, self.iter, self.skipped = int(state["epoch"]), int(state["iter"]), int(state.get("skipped", 0))
        self.start_step = self._convert_step(int(state.get("step", 0)), state.get("meta", {}))
        self.metrics = dict(state.get("metrics", {}))
        for name, hook_state in state.get("hooks", {}).items():
            if name in self.hooks:
                self.hooks[name].load_state_dict(hook_state)
        self._restore_rng(state.get("rng"))
        log.info("resumed from %s: %d epochs and %d iterations done%s", path, self.epoch, self.iter,
                 f" (+{self.start_step} batches of epoch {self.epoch + 1})" if self.start_step else "")
        if self.iter >= self.max_iters:
            log.warning("the checkpoint has already done %d of %d iterations (train.max_epochs=%d): nothing left to train; "
                        "raise train.max_epochs to continue", self.iter, self.max_iters, self.max_epochs)

    def _restore_optimization(self: Runner, state: dict[str, Any], path: str) -> None:
        settings = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as e:
            raise UserError(f"resume={path}: the optimizer's parameter groups differ from the checkpoint's ({e}); "
                            "were optimizer.paramwise or train.freeze changed? Use load_from= to start a new optimizer") from None
        for group, setting in zip(self.optimizer.param_groups, settings):
            group.update(setting)  # settings (lr, weight decay, betas ...) come from the config
        restore_position(self.scheduler, state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def _convert_step(self: Runner, step: int, meta: dict[str, Any]) -> int:
        """The saved mid-epoch position in batches of this run (it differs if batch or world size changed)."""
        old = int(meta.get("batch_size", self.cfg.data.batch_size)) * int(meta.get("world_size", self.world_size))
        new = int(self.cfg.data.batch_size) * self.world_size
        if step == 0 or old == new:
            return step
        converted = step * old // new
        log.warning("resume: %d images per step before, %d now: the partial epoch restarts at batch %d of %d "
                    "(not an exact continuation)", old, new, converted, len(self.train_loader))
        return converted

    def _restore_rng(self: Runner, saved: Any) -> None:
        if isinstance(saved, dict):  # a single-process checkpoint of the first format
            saved = [saved]
        if saved and len(saved) == self.world_size:
            set_rng_state(saved[self.rank])
        elif saved:
            log.warning("resume: the checkpoint has random states of %d processes, this run has %d: fresh seeds "
                        "(not an exact continuation)", len(saved), self.world_size)
            torch.manual_seed(int(self.cfg.seed) + 7919 * self.iter + self.rank)

    def load_weights(self: Runner, path: str) -> None:
        """Load model weights only (fine-tuning); the EMA's when the checkpoint has them. Tensors whose
        shape differs (another number of classes) are listed and skipped."""
        state = load_checkpoint(path)
        weights = inference_weights(state)
        own = self.model.state_dict()
        skipped = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
        result = self.model.load_state_dict({k: v for k, v in weights.items() if k not in skipped}, strict=False)
        log.info("load_from=%s: %d tensors loaded, %d skipped for shape, %d missing, %d unexpected", path,
                 len(own) - len(result.missing_keys) - len(skipped), len(skipped), len(result.missing_keys),
                 len(result.unexpected_keys))
        for k in skipped:
            log.info("  skipped %s: checkpoint %s, model %s", k, tuple(weights[k].shape), tuple(own[k].shape))
        for k in result.missing_keys:
            log.info("  missing %s (keeps its initialisation)", k)


def _report_config_changes(saved: str | None, cfg: DictConfig) -> None:
    """Log every setting that differs from the checkpoint's config (they take effect from now on)."""
    if not isinstance(saved, str):
        return
    before = _flatten(OmegaConf.to_container(OmegaConf.create(saved), resolve=False))
    after = _flatten(OmegaConf.to_container(cfg, resolve=True))
    changed = [k for k in sorted(set(before) | set(after))
               if before.get(k, "<unset>") != after.get(k, "<unset>") and k.split(".")[0] not in _IGNORED_CHANGES]
    if changed:
        log.info("resume: settings changed since the checkpoint (they apply from here on): %s",
                 "; ".join(f"{k}: {before.get(k, '<unset>')} -> {after.get(k, '<unset>')}" for k in changed))


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: node}
