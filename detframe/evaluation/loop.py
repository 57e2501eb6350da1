"""One pass of a model over a loader into an evaluator: what the runner and tools/eval.py share."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


@torch.no_grad()
def run_evaluation(model: nn.Module, loader: Iterable, evaluator: Any,
                   device: torch.device) -> dict[str, float]:
    """Predict every batch of `loader` into `evaluator` and return `evaluator.compute()`. Leaves the model
    in eval mode.

    Args:
        model: a detector; only its `predict(batch) -> list[Detections]` is used.
        loader: batches (`Batch`) of this process's share of the images (every rank its shard under
            torchrun: the evaluator gathers them, see EvaluatorGroup).
        evaluator: `reset()`, `process(image_ids, detections)`, `compute() -> dict`.
        device: where the batches go.
    """
    model.eval()
    evaluator.reset()
    for batch in loader:
        evaluator.process(batch.image_ids, model.predict(batch.to(device, non_blocking=True)))
    return evaluator.compute()
