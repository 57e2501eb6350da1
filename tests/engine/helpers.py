"""Building a Runner in-process on the tiny shapes set, and a hook that records what each step did."""
from __future__ import annotations

import copy

import torch

from detframe.engine import Runner, build_runner
from detframe.engine.hooks import Hook

from ..conftest import FAST, compose

# No evaluation, no best.pt (it needs metrics), no plots: these tests are about the training loop.
LOOP = [*FAST, "train.val_interval=0", "hooks.checkpoint.save_best=null", "scheduler.warmup_iters=2",
        "data.batch_size=2", "hooks.logger.plots=false"]


class Recorder(Hook):
    """Keeps the loss terms of every step; optionally asks the runner to stop after iteration `stop_at`."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.losses: list[dict[str, float]] = []
        self.lrs: list[float] = []
        self.steps: list[int] = []  # batch index within the epoch at each optimizer step
        self.params: list[list[tuple[str, torch.Tensor]]] = []
        self.keep_params = False
        self.stop_at = stop_at

    def after_step(self, runner, losses):
        self.losses.append(dict(losses))
        self.lrs.append(runner.lr)
        self.steps.append(runner.step)
        if self.keep_params:
            self.params.append([(k, p.detach().clone()) for k, p in runner.model.named_parameters()])
        if self.stop_at is not None and runner.iter == self.stop_at:
            runner.request_stop("test")


def make_runner(tmp_path, data_root, *overrides: str, name: str = "run",
                stop_at: int | None = None) -> tuple[Runner, Recorder]:
    cfg = compose([f"data.root={data_root}", *LOOP, *overrides])
    runner = build_runner(cfg, tmp_path / name)
    recorder = Recorder(stop_at)
    runner.hooks["recorder"] = recorder
    return runner, recorder


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in copy.deepcopy(module.state_dict()).items()}
