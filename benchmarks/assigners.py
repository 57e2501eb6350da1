"""The assigner's share of a training step: a dynamic assigner (task-aligned, SimOTA) must stay a small
part of the step even with many objects. Target: under 15% on CPU with 50 objects per image.

    python benchmarks/assigners.py                              # tal_cspnext_nano, batch 8 at 320, 50 objects
    python benchmarks/assigners.py --model yolox_nano --size 640 --objects 50 --runs 7

Any model config whose head has an `assigner` works: the head's assigner is wrapped by a timer during
real training steps (loss, backward, optimizer step) on random images with `--objects` random boxes per
image, so the time counted is every call the head makes to it in a step (one per batch for the batched
task-aligned assigner, one per image for per-image ones). Medians over `--runs` steps after a warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detframe.config import compose  # noqa: E402
from detframe.models import build_detector  # noqa: E402
from detframe.structures import Batch, Instances  # noqa: E402

TARGET = 0.15


class TimedAssigner:
    """Calls the wrapped assigner and adds its wall time to `seconds`."""

    def __init__(self, assigner) -> None:
        self.assigner, self.seconds = assigner, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        result = self.assigner(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        return result


def random_batch(batch: int, size: int, objects: int, num_classes: int, seed: int) -> Batch:
    """`batch` random uint8 images of size x size, each with `objects` random boxes (8 px to half the
    image wide and high)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator)
    targets = []
    for _ in range(batch):
        wh = 8 + torch.rand(objects, 2, generator=generator) * (size / 2 - 8)
        xy = torch.rand(objects, 2, generator=generator) * (size - wh)
        labels = torch.randint(0, num_classes, (objects,), generator=generator)
        targets.append(Instances(torch.cat((xy, xy + wh), 1), labels, torch.zeros(objects, dtype=torch.bool)))
    return Batch(images, targets, [(size, size)] * batch, [(size, size)] * batch, list(range(batch)))


def measure(model_name: str, data: str, batch: int, size: int, objects: int,
            runs: int) -> tuple[float, float]:
    """(median step seconds, median assigner seconds per step) over `runs` steps after one warm-up."""
    cfg = compose([f"model={model_name}", f"data={data}"])
    model = build_detector(cfg.model).train()
    timed = TimedAssigner(model.head.assigner)
    model.head.assigner = timed
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    steps, assigns = [], []
    for run in range(runs + 1):
        inputs = random_batch(batch, size, objects, cfg.data.num_classes, seed=run)
        timed.seconds = 0.0
        start = time.perf_counter()
        losses = model.loss(inputs)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        if run:  # the first step warms up allocators and caches
            steps.append(time.perf_counter() - start)
            assigns.append(timed.seconds)
    return statistics.median(steps), statistics.median(assigns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tal_cspnext_nano", help="a model config name (configs/model/)")
    parser.add_argument("--data", default="coco", help="data config for the class count (coco: 80 classes)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--objects", type=int, default=50, help="objects per image")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    step, assign = measure(args.model, args.data, args.batch, args.size, args.objects, args.runs)
    share = assign / step
    print(f"{args.model}: batch {args.batch} at {args.size}x{args.size}, {args.objects} objects per image, "
          f"{torch.get_num_threads()} threads; median over {args.runs} steps")
    print(f"training step {step * 1000:.0f} ms, assigner {assign * 1000:.1f} ms: {share:.1%} of the step "
          f"(target < {TARGET:.0%}: {'met' if share < TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
