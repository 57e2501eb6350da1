"""Exponential moving average of the model weights, with the decay ramped up over the first updates.

    ema = decay_t * ema + (1 - decay_t) * weights,   decay_t = decay * (1 - exp(-t / tau))

after every optimizer step t = 1, 2, ... (YOLOX's ModelEMA and ultralytics: decay 0.9998, tau 2000),
so the average follows the fast-moving early weights closely and smooths more as training settles.
Floating-point buffers (BatchNorm running statistics) are averaged the same way; integer buffers
(`num_batches_tracked`) are copied.

Written here rather than with `torch.optim.swa_utils.AveragedModel`: that one applies the float
average to integer buffers too, and its update count is not part of a plain state dict; we need both
the raw and the averaged weights, and the count, to resume exactly.
"""
from __future__ import annotations

import copy
import logging
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..registry import HOOKS
from ..rules import Decay, NonNegativeFloat, NonNegativeInt
from ..weights import load_weights_into
from .hooks import Hook

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")


class ModelEMA:
    """An averaged copy of `model`, kept in eval mode, on the model's device.

    Args:
        model: the (unwrapped) model whose weights are averaged.
        decay: the decay once the ramp is over.
        tau: ramp length: after `tau` updates the decay is at 63% of `decay`, after 5 tau at 99%.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, tau: float = 2000.0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.tau = decay, tau
        self.updates = 0
        self._pairs: tuple[int, list[torch.Tensor], list[torch.Tensor],
                           list[tuple[torch.Tensor, torch.Tensor]]] | None = None

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.tau)) if self.tau > 0 else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards `model`'s current weights (call after each optimizer step)."""
        self.updates += 1
        ema_float, model_float, others = self._tensors(model)
        # ema += (1 - d)(w - ema), fused
        torch._foreach_lerp_(ema_float, model_float, 1.0 - self.current_decay())
        for ema_t, t in others:
            ema_t.copy_(t)

    def _tensors(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                                  list[tuple[torch.Tensor, torch.Tensor]]]:
        """(EMA floats, model floats, integer pairs), matched by name once per model (state_dict() is
        not free)."""
        if self._pairs is None or self._pairs[0] != id(model):
            own, theirs = self.module.state_dict(), model.state_dict()
            if list(own) != list(theirs):
                raise RuntimeError("ModelEMA: the model's parameters and buffers differ from the "
                                   "averaged copy's")
            pairs = [(own[k], theirs[k].detach()) for k in own]
            floats = [p for p in pairs if p[0].dtype.is_floating_point]
            self._pairs = (id(model), [a for a, _ in floats], [b for _, b in floats],
                           [p for p in pairs if not p[0].dtype.is_floating_point])
        return self._pairs[1], self._pairs[2], self._pairs[3]

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "updates": self.updates, "decay": self.decay,
                "tau": self.tau}

    def load_state_dict(self, state: dict[str, Any], source: str = "ema") -> None:
        """Restore `state_dict()`'s content; `source` names the file in a mismatch message."""
        load_weights_into(self.module, state["model"], source)
        self.updates = int(state["updates"])


@HOOKS.register()
class EMAHook(Hook):
    """Keep an EMA of the weights; evaluation, best.pt and tools/eval.py then use the averaged weights.
    List it before the checkpoint hook (configs/train.yaml does), so a checkpoint holds this step's EMA.

    The runner saves both the raw and the averaged weights (`model` and `ema` in the checkpoint) and
    restores both on resume, so a resumed run continues exactly where the uninterrupted one would be.

    Args:
        decay: the decay after the ramp (0.9998 in YOLOX and ultralytics).
        tau: ramp length in updates (2000 there); 0 turns the ramp off.
        start_iter: start averaging at this iteration (before it the EMA copies the weights).
    """

    def __init__(self, decay: Decay = 0.9998, tau: NonNegativeFloat = 2000.0,
                 start_iter: NonNegativeInt = 0) -> None:
        self.decay, self.tau, self.start_iter = decay, tau, start_iter

    def before_run(self, runner: Runner) -> None:
        runner.ema = ModelEMA(runner.model, self.decay, self.tau)

    def after_step(self, runner: Runner, losses: dict[str, float]) -> None:
        if runner.ema is None or not runner.stepped:
            return
        if runner.iter <= self.start_iter:
            runner.ema.module.load_state_dict(runner.model.state_dict())
            return
        runner.ema.update(runner.model)
