"""One pass of a model over a loader into an evaluator; shared by the runner and tools/eval.py."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader


@torch.no_grad()
def run_evaluation(model: nn.Module, loader: DataLoader, evaluator, device: torch.device) -> dict[str, float]:
    """Predict every batch of `loader` and return `evaluator.compute()`. Leaves the model in eval mode."""
    model.eval()
    evaluator.reset()
    for batch in loader:
        detections = model.predict(batch.to(device, non_blocking=True))
        evaluator.process(batch.image_ids, detections)
    return evaluator.compute()
