"""`build_runner`: the one place where a training config becomes a Runner of built parts.

The order matters and is kept on purpose: the config's values checked first, the process group and
seeds next (every rank builds the same initial weights), cheap builds and the checks of what is built
later (engine/preflight.py) before the datasets (a config mistake fails before a large set is parsed),
per-rank random streams after the loaders, hooks' `before_run` (the EMA copies the plain model) before
resume, and the DDP wrapper and torch.compile last.
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from omegaconf import DictConfig

from ..config import check_training
from ..data import build_dataloader, build_dataset, train_loader_options
from ..dist import get_rank, get_world_size, init_from_env
from ..errors import ConfigError
from ..evaluation import build_evaluator
from ..models import build_detector
from ..registry import HOOKS
from .budget import TimeBudget
from .ema import EMAHook
from .freeze import freeze
from .hooks import CheckpointHook, Hook
from .optim import build_optimizer, build_scheduler, describe_groups, lr_scale_for
from .preflight import check_components, check_model, check_train_loader
from .runner import Runner, run_length
from .setup import (
    configure_determinism,
    parse_amp,
    prepare_model,
    seed_everything,
    select_device,
    train_module,
)
from .state import load_weights, resume_run

log = logging.getLogger("detframe")


def build_runner(cfg: DictConfig, work_dir: str | Path) -> Runner:
    """Build model, data, optimizer, schedule, evaluator and hooks from a composed training config,
    resume if `cfg.resume` says so, and return the Runner ready to `train()`.

    Args:
        cfg: the composed config (configs/train.yaml and what the command line chose).
        work_dir: the run's output folder (checkpoints/, tb/, eval/).
    """
    check_training(cfg)
    work_dir = Path(work_dir)
    runtime = cfg.runtime
    init_from_env(runtime.dist_backend, runtime.dist_timeout_minutes)
    world_size = get_world_size()
    device = select_device(runtime.device)
    configure_determinism(runtime.deterministic, runtime.cudnn_benchmark)
    seed_everything(cfg.seed)  # the same on every rank: identical initial weights
    amp = parse_amp(runtime.amp, device)
    resume = _resume_path(cfg.get("resume"), work_dir / "checkpoints")

    hooks = build_hooks(cfg.hooks)
    model = build_detector(cfg.model)
    if cfg.get("load_from") and not resume:
        load_weights(model, cfg.load_from, cfg.model, work_dir / "load_from.txt" if get_rank() == 0 else None)
    freeze(model, list(cfg.train.freeze), list(cfg.train.freeze_norm))
    model = prepare_model(model, device, runtime.channels_last, runtime.sync_bn)
    check_model(cfg, model, world_size)
    check_components(cfg)  # built after the datasets: their arguments are checked now

    data = cfg.data
    train_set = build_dataset(data, "train", cfg.pipeline.train)
    val_set = build_dataset(data, "val", cfg.pipeline.val)
    train_loader = build_dataloader(train_set, data.batch_size, data.num_workers, train=True,
                                    size_divisor=data.size_divisor, seed=cfg.seed, distributed=world_size > 1,
                                    **train_loader_options(cfg))
    check_train_loader(cfg, train_loader, model, world_size)
    val_loader = build_dataloader(val_set, data.val_batch_size, data.num_workers, train=False,
                                  size_divisor=data.size_divisor, distributed=world_size > 1)
    if world_size > 1:
        seed_everything(cfg.seed + get_rank())  # per-rank random streams from here on

    accumulate = max(1, int(cfg.train.accumulate))
    train = cfg.train
    iters_per_epoch, _, max_iters = run_length(len(train_loader), accumulate, train.max_epochs,
                                               train.max_iters)
    if iters_per_epoch == 0:
        raise ConfigError(f"data.batch_size={data.batch_size}: the training set gives no batch")
    total_batch_size = int(data.batch_size) * world_size * accumulate
    lr_scale = lr_scale_for(total_batch_size, cfg.train.base_batch_size)
    optimizer = build_optimizer(cfg.optimizer, model, lr_scale)
    scheduler = build_scheduler(cfg.scheduler, optimizer, iters_per_epoch, max_iters)
    if lr_scale != 1.0:
        log.info("optimizer.lr scaled x%.3g: total batch %d vs train.base_batch_size %d",
                 lr_scale, total_batch_size, cfg.train.base_batch_size)
    log.info("optimizer %s: %s", type(optimizer).__name__, describe_groups(optimizer))
    evaluator = build_evaluator(cfg.evaluator, val_set)

    budget = None
    if train.max_minutes is not None:
        schedule_for = partial(build_scheduler, cfg.scheduler, optimizer, iters_per_epoch)
        budget = TimeBudget(train.max_minutes, schedule_for)
    runner = Runner(
        model, train_loader, optimizer, scheduler, work_dir=work_dir, max_epochs=train.max_epochs,
        max_iters=train.max_iters, val_loader=val_loader, evaluator=evaluator, hooks=hooks,
        val_interval=train.val_interval, device=device, accumulate=accumulate,
        clip_grad_norm=train.clip_grad_norm, amp=amp, nonfinite=train.nonfinite,
        max_skipped=train.max_skipped, channels_last=runtime.channels_last, config=cfg, budget=budget,
    )
    runner.call_hooks("before_run")
    if resume:
        resume_run(runner, resume)
    runner.train_module = train_module(model, device, runtime.compile, runtime.find_unused_parameters)
    return runner


def build_hooks(cfg: DictConfig) -> dict[str, Hook]:
    """The `hooks` section as name -> Hook, in its order (a name set to null is dropped)."""
    hooks = {str(name): HOOKS.build(node) for name, node in cfg.items() if node is not None}
    order = list(hooks)
    ema = [n for n, h in hooks.items() if isinstance(h, EMAHook)]
    checkpoints = [n for n, h in hooks.items() if isinstance(h, CheckpointHook)]
    if ema and checkpoints and order.index(ema[0]) > order.index(checkpoints[0]):
        raise ConfigError(f"hooks: '{ema[0]}' (EMAHook) must come before '{checkpoints[0]}' "
                          "(CheckpointHook), or a checkpoint would hold the EMA of the step before; hooks "
                          "run in the order of the hooks section")
    return hooks


def _resume_path(resume: str | None, ckpt_dir: Path) -> str | None:
    """`resume=auto`: this run folder's last.pt if there is one (tools/train.py points the run folder at
    the experiment's newest run), else a fresh start."""
    if resume != "auto":
        return resume
    path = ckpt_dir / "last.pt"
    if path.is_file():
        return str(path)
    log.info("resume=auto: no checkpoint in %s: starting from the beginning", ckpt_dir)
    return None

