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
from ..weights import (
    FEW,
    WeightMatch,
    describe_model,
    describe_partial,
    load_weights_into,
    state_dict_in,
)
from .checkpoint import (
    link_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    saved_model,
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
        "budget": runner.budget.state_dict(runner) if runner.budget is not None else None,
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
    state = load_checkpoint(path, "resume")
    missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "iter") if k not in state]
    if missing:
        raise UserError(f"resume={path}: not a training checkpoint (no {', '.join(missing)}); "
                        "use load_from= for weights only")
    if runner.config is not None:
        _report_config_changes(state.get("config"), runner.config)
    source = f"resume={path}"
    hint = (f"The checkpoint is of {_models(state, runner)}; to start from another model's weights, use "
            "load_from=")
    load_weights_into(runner.model, state_dict_in(state["model"], source), source, hint=hint)
    _restore_optimization(runner, state, path)
    if runner.ema is not None:
        if state.get("ema"):
            runner.ema.load_state_dict(state["ema"], source=f"{source} (EMA weights)")
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
    if runner.budget is not None and state.get("budget"):
        runner.budget.load_state_dict(runner, state["budget"])
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


def load_weights(model: nn.Module, path: str | Path, model_cfg: Any = None,
                 report: Path | None = None) -> WeightMatch:
    """Load model weights only (fine-tuning, `load_from=`); the EMA's when the checkpoint has them.

    Tensors that fit by name and shape are loaded; the others (another number of classes, another
    neck) keep their initialisation. One line goes to the terminal and train.log; the list per tensor
    goes to `report` (`<run>/load_from.txt`), or to the log at DEBUG level without one.

    Args:
        model: the freshly built detector.
        path: the checkpoint (or a bare state dict).
        model_cfg: the `model` config the detector was built from, to name both architectures.
        report: the file for the per-tensor list.

    Raises:
        WeightsError: the file is not a checkpoint, or none of the model's parameters is in it.
    """
    source = f"load_from={path}"
    state = load_checkpoint(path, "load_from")
    saved = saved_model(state)
    ours = describe_model(model_cfg) if model_cfg is not None else "this model"
    hint = f"The checkpoint is of {saved}, this run builds {ours}" if saved else ""
    match = load_weights_into(model, state_dict_in(state, source), source, strict=False, hint=hint)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(f"# {source}\n# {describe_partial(match, source)}\n{match.table()}")
        where = f"the list per tensor: {report}"
    else:
        log.debug("%s: per tensor:\n%s", source, match.table())
        where = "the list per tensor is logged at DEBUG level"
    if match.params_fraction < FEW:
        log.warning("%s; only %.0f%% of the parameters come from the checkpoint%s, the rest train from their "
                    "initialisation; %s", describe_partial(match, source), 100 * match.params_fraction,
                    f" (it is of {saved}, this run builds {ours})" if saved else "", where)
    else:
        log.info("%s; %s", describe_partial(match, source), where)
    return match


def _models(state: dict[str, Any], runner: Runner) -> str:
    """"X, this run builds Y" for a message, from the checkpoint's config and the run's."""
    saved = saved_model(state) or "an unknown model"
    ours = describe_model(runner.config.get("model")) if runner.config is not None else None
    return f"{saved}, this run builds {ours}" if ours else saved


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
