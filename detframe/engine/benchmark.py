"""Measuring a detector: parameters, FLOPs, inference latency of the full `predict` and the speed of a
training step, on synthetic batches. `cli/benchmark.py` is the command-line face of these functions.

Only the detector contract is used (`predict(batch)`, `loss(batch)`, the `nn.Module` interface), so
every family in the registry is measured the same way. The forward pass alone is timed through
forward hooks on the detector: the calls `predict` makes to the module itself, whatever `forward`'s
signature is; a family whose `predict` never calls the module reports no forward time.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer
from torch.utils.flop_counter import FlopCounterMode

from ..structures import Batch, Instances

# FlopCounterMode counts a multiply-add as 2 FLOPs (a conv's FLOPs = 2 * Cin * Cout * k * k * Hout * Wout
# / groups): the convention of most papers' "FLOPs" that report GFLOPs; GMACs are half of it.
FLOPS_NOTE = "FLOPs as torch.utils.flop_counter counts them: a multiply-add is 2 FLOPs (GMACs = GFLOPs / 2)"


@dataclass
class Timing:
    """Times of repeated calls on one batch.

    Attributes:
        batch_size: images per call.
        median_ms, p90_ms: the median and 90th percentile of the calls' wall times, milliseconds.
        images_per_s: batch_size / median time.
        forward_median_ms: the median time of the detector's own forward inside the call, or None.
        detections_per_image: the mean number of detections `predict` returned (None for training):
            post-processing costs more when more candidates pass the score threshold.
    """

    batch_size: int
    median_ms: float
    p90_ms: float
    images_per_s: float
    forward_median_ms: float | None = None
    detections_per_image: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, those with `requires_grad`), counted in elements."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def count_flops(fn: Callable[..., object], *args: object) -> int:
    """FLOPs of one call `fn(*args)`, counted by FlopCounterMode (a multiply-add is 2 FLOPs; ops it has
    no formula for, such as NMS or elementwise ops, count 0)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn(*args)
    return int(counter.get_total_flops())


def synthetic_batch(batch_size: int, size: tuple[int, int], num_classes: int, size_divisor: int = 1,
                    seed: int = 0, with_masks: bool = False) -> Batch:
    """A batch as `data.collate` makes it: random uint8 images of `size` (h, w), padded to a multiple of
    `size_divisor`, each with 1 to 8 random boxes (xyxy px, at least 8 px wide and high) of random
    classes, and with `with_masks` each box's filled rectangle as its instance mask (uint8 [n, h, w], for
    a model that `requires_masks`). A private generator: the global random state is left alone."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    ph, pw = (-(-h // size_divisor) * size_divisor, -(-w // size_divisor) * size_divisor)
    images = torch.zeros(batch_size, 3, ph, pw, dtype=torch.uint8)
    images[:, :, :h, :w] = torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8, generator=gen)
    targets = []
    for _ in range(batch_size):
        n = int(torch.randint(1, 9, (), generator=gen))
        x1y1 = torch.rand(n, 2, generator=gen) * torch.tensor([w - 8.0, h - 8.0])
        wh = 8 + torch.rand(n, 2, generator=gen) * (torch.tensor([w, h]) - 8 - x1y1)
        boxes = torch.cat([x1y1, x1y1 + wh], 1)
        labels = torch.randint(0, num_classes, (n,), generator=gen)
        masks = _box_masks(boxes, h, w) if with_masks else None
        targets.append(Instances(boxes, labels, torch.zeros(n, dtype=torch.bool), masks))
    return Batch(images, targets, [size] * batch_size, [size] * batch_size, list(range(batch_size)),
                 scales=[(1.0, 1.0)] * batch_size, offsets=[(0.0, 0.0)] * batch_size)


def _box_masks(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """uint8 [n, h, w]: 1 inside each box (pixels whose centre it covers)."""
    ys, xs = torch.arange(h) + 0.5, torch.arange(w) + 0.5
    inside_x = (xs >= boxes[:, 0, None]) & (xs < boxes[:, 2, None])  # [n, w]
    inside_y = (ys >= boxes[:, 1, None]) & (ys < boxes[:, 3, None])  # [n, h]
    return (inside_y[:, :, None] & inside_x[:, None, :]).to(torch.uint8)


def to_device(batch: Batch, device: torch.device, channels_last: bool) -> Batch:
    batch = batch.to(device)
    if channels_last:
        batch = replace(batch, images=batch.images.contiguous(memory_format=torch.channels_last))
    return batch


def autocast(device: torch.device, amp: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=amp, enabled=amp is not None)


def time_predict(model: nn.Module, batch: Batch, device: torch.device, amp: torch.dtype | None,
                 warmup: int, rounds: int) -> Timing:
    """`model.predict(batch)` (eval mode, no gradients, `amp` autocast): `warmup` calls untimed, then
    `rounds` timed ones."""
    model.eval()
    detections: list[int] = []

    def call() -> None:
        with torch.no_grad(), autocast(device, amp):
            out = model.predict(batch)
        detections.append(sum(len(d.scores) for d in out))

    with _forward_times(model, device) as forward:
        times = _time_calls(call, device, warmup, rounds)
    # one forward per predict call, or the family's predict does something else: no forward time then
    forward = forward[warmup:] if len(forward) == warmup + rounds else []
    timing = _timing(len(batch), times)
    timing.forward_median_ms = float(np.median(forward)) * 1e3 if forward else None
    timing.detections_per_image = float(np.mean(detections[-rounds:])) / len(batch)
    return timing


def time_train_step(model: nn.Module, optimizer: Optimizer, batch: Batch, device: torch.device,
                    amp: torch.dtype | None, warmup: int, rounds: int) -> Timing:
    """One training iteration as the runner does it: `loss(batch)` under autocast, the sum's backward
    (through a GradScaler with fp16), the optimizer step. Changes the model's weights."""
    model.train()
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)

    def step() -> None:
        with autocast(device, amp):
            losses = model.loss(batch)
        scaler.scale(torch.stack(list(losses.values())).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return _timing(len(batch), _time_calls(step, device, warmup, rounds))


def _time_calls(fn: Callable[[], None], device: torch.device, warmup: int, rounds: int) -> list[float]:
    """Wall times in seconds of `rounds` calls after `warmup` untimed ones; GPU work finished before
    each clock reading."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _timing(batch_size: int, times: list[float]) -> Timing:
    median = float(np.median(times))
    return Timing(batch_size, median * 1e3, float(np.percentile(times, 90)) * 1e3, batch_size / median)


@contextlib.contextmanager
def _forward_times(model: nn.Module, device: torch.device) -> Iterator[list[float]]:
    """Collects the wall time of every call of `model` itself (its forward) while open."""
    times: list[float] = []
    start: list[float] = []

    def before(*_: object) -> None:
        _sync(device)
        start.append(time.perf_counter())

    def after(*_: object) -> None:
        _sync(device)
        times.append(time.perf_counter() - start.pop())

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        yield times
    finally:
        for handle in handles:
            handle.remove()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
