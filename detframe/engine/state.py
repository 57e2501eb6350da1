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
from torch import nn

from .. import __version__
from ..dist import all_gather_object
from ..errors import UserError
from .checkpoint import (
    inference_weights,
    link_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .schedules import restore_position

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")

# Keys that legitimately differ between a run and its resumption.
_IGNORED_CHANGES = ("resume", "load_from")


def run_state(runner: Runner) -> dict[str, Any]:
    """Everything needed to continue exactly; a collective in distributed runs (RNGs of every rank)."""
    # Mid-epoch: the batches of this epoch done so far; between epochs (after_epoch, or after train()
    # returned, when `epoch` is max_epochs): the epochs completed.
    epoch, step = ((runner.epoch, runner.step + 1) if runner.in_epoch
                   else (min(runner.epoch + 1, runner.max_epochs), 0))
    return {
        "model": runner.model.state_dict(),
        "ema": runner.ema.state_dict() if runner.ema is not None else None,
        "optimizer": runner.optimizer.state_dict(),
        "scheduler": runner.scheduler.state_dict(),
        "scaler": runner.scaler.state_dict() if runner.scaler.is_enabled() else None,
        "epoch": epoch,  # epochs completed
        "step": step,  # batches of the next epoch already trained on
        "iter": runner.iter,
        "skipped": runner.skipped,
        "hooks": {name: h.state_dict() for name, h in runner.hooks.items()},
        "metrics": dict(runner.metrics),
        "rng": all_gather_object(rng_state()),  # one entry per rank
        "config": OmegaConf.to_yaml(runner.config, resolve=True) if runner.config is not None else None,
        "meta": {"detframe": __version__, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "world_size": runner.world_size, "batch_size": runner.batch_size,
                 "accumulate": runner.accumulate},
    }


def save_run(runner: Runner, name: str, *also: str) -> Path | None:
    """Write `checkpoints/<name>` (and hard links or copies named `also`); rank 0 only, but every rank
    must call it. Returns the path on rank 0, None elsewhere."""
    state = run_state(runner)
    if not runner.is_main:
        return None
    path = save_checkpoint(state, runner.ckpt_dir / name)
    for other in also:
        link_checkpoint(path, runner.ckpt_dir / other)
    return path


def resume_run(runner: Runner, path: str | Path) -> None:
    """Restore weights, EMA, optimizer, scaler, schedule position, data position, hooks and RNGs."""
    state = load_checkpoint(path)
    missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "iter") if k not in state]
    if missing:
        raise UserError(f"resume={path}: not a training checkpoint (no {', '.join(missing)}); "
                        "use load_from= for weights only")
    if runner.config is not None:
        _report_config_changes(state.get("config"), runner.config)
    try:
        runner.model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise UserError(f"resume={path}: the saved weights do not fit this model "
                        f"({str(e).splitlines()[1].strip()}); was it trained with another model config? "
                        "Use load_from= to fine-tune from it") from None
    _restore_optimization(runner, state, path)
    if runner.ema is not None:
        if state.get("ema"):
            runner.ema.load_state_dict(state["ema"])
        else:
            log.warning("resume=%s: the checkpoint has no EMA weights; the EMA starts from the current "
                        "weights", path)
            runner.ema.module.load_state_dict(runner.model.state_dict())
    runner.epoch, runner.iter, runner.skipped = (int(state["epoch"]), int(state["iter"]),
                                                 int(state.get("skipped", 0)))
    runner.start_step = _convert_step(runner, int(state.get("step", 0)), state.get("meta", {}))
    runner.metrics = dict(state.get("metrics", {}))
    for name, hook_state in state.get("hooks", {}).items():
        if name in runner.hooks:
            runner.hooks[name].load_state_dict(hook_state)
    _restore_rng(runner, state.get("rng"))
    log.info("resumed from %s: %d epochs and %d iterations done%s", path, runner.epoch, runner.iter,
             f" (+{runner.start_step} batches of epoch {runner.epoch + 1})" if runner.start_step else "")
    if runner.iter >= runner.max_iters:
        log.warning("the checkpoint has already done %d of %d iterations (train.max_epochs=%d): nothing left "
                    "to train; raise train.max_epochs to continue", runner.iter, runner.max_iters,
                    runner.max_epochs)


def _restore_optimization(runner: Runner, state: dict[str, Any], path: str | Path) -> None:
    optimizer = runner.optimizer
    settings = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    try:
        optimizer.load_state_dict(state["optimizer"])
    except ValueError as e:
        raise UserError(f"resume={path}: the optimizer's parameter groups differ from the checkpoint's "
                        f"({e}); were optimizer.paramwise or train.freeze changed? Use load_from= to start "
                        "a new optimizer") from None
    for group, setting in zip(optimizer.param_groups, settings):
        group.update(setting)  # settings (lr, weight decay, betas ...) come from the config
    restore_position(runner.scheduler, state["scheduler"])
    if runner.scaler.is_enabled() and state.get("scaler"):
        runner.scaler.load_state_dict(state["scaler"])


def _convert_step(runner: Runner, step: int, meta: dict[str, Any]) -> int:
    """The saved mid-epoch position in batches of this run (it differs if batch or world size changed)."""
    old = int(meta.get("batch_size", runner.batch_size)) * int(meta.get("world_size", runner.world_size))
    new = runner.batch_size * runner.world_size
    if step == 0 or old == new:
        return step
    converted = step * old // new
    log.warning("resume: %d images per step before, %d now: the partial epoch restarts at batch %d of %d "
                "(not an exact continuation)", old, new, converted, len(runner.train_loader))
    return converted


def _restore_rng(runner: Runner, saved: Any) -> None:
    if isinstance(saved, dict):  # a single-process checkpoint of the first format
        saved = [saved]
    if saved and len(saved) == runner.world_size:
        set_rng_state(saved[runner.rank])
    elif saved:
        log.warning("resume: the checkpoint has random states of %d processes, this run has %d: fresh seeds "
                    "(not an exact continuation)", len(saved), runner.world_size)
        seed = int(runner.config.seed) if runner.config is not None else 0
        torch.manual_seed(seed + 7919 * runner.iter + runner.rank)


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load model weights only (fine-tuning, `load_from=`); the EMA's when the checkpoint has them.
    Tensors whose shape differs (another number of classes) are listed and skipped."""
    state = load_checkpoint(path)
    weights = inference_weights(state)
    own = model.state_dict()
    skipped = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
    result = model.load_state_dict({k: v for k, v in weights.items() if k not in skipped}, strict=False)
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
               if before.get(k, "<unset>") != after.get(k, "<unset>")
               and k.split(".")[0] not in _IGNORED_CHANGES]
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
