"""One pass of a model over a loader into an evaluator; shared by the runner and tools/eval.py."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..dist import all_gather_object, is_distributed


@torch.no_grad()
def run_evaluation(model: nn.Module, loader: DataLoader, evaluator, device: torch.device) -> dict[str, float]:
    """Predict every batch of `loader` and return `evaluator.compute()`. Leaves the model in eval mode.

    In a distributed run each rank predicts its shard of the val set. An evaluator that gathers across
    ranks itself says so with `gathers_across_ranks = True`; for the others, the detections of all ranks
    are collected here and every rank's evaluator processes all of them.
    """
    model.eval()
    evaluator.reset()
    gather = is_distributed() and not getattr(evaluator, "gathers_across_ranks", False)
    pending = []
    for batch in loader:
        detections = model.predict(batch.to(device, non_blocking=True))
        if gather:
            pending.append((list(batch.image_ids), [d.to("cpu") for d in detections]))
        else:
            evaluator.process(batch.image_ids, detections)
    if gather:
        # Minimal stand-in until the evaluators gather themselves (issue 4). The val sampler gives rank r
        # the images r, r + W, r + 2W, ...: interleaving the ranks' lists restores the dataset order, so
        # the evaluator sees the sequence a single process would (score ties then break the same way).
        per_rank = [[(i, d) for ids, dets in batches for i, d in zip(ids, dets)] for batches in all_gather_object(pending)]
        seen: set[int] = set()
        for k in range(max(map(len, per_rank), default=0)):
            for images in per_rank:
                if k < len(images) and images[k][0] not in seen:
                    seen.add(images[k][0])
                    evaluator.process([images[k][0]], [images[k][1]])
    return evaluator.compute()
