"""Gathering predictions across distributed ranks before evaluation.

Every rank predicts its shard of the val set (a DistributedSampler); metrics need all of them. A
DistributedSampler pads the shards to equal length by repeating images, so an image can arrive from two
ranks: the first rank that saw it wins and the repeat is dropped, otherwise mAP would count it twice.
"""
from __future__ import annotations

import numpy as np

from ..dist import all_gather_object, get_world_size
from .predictions import Predictions


def gather_predictions(image_ids: np.ndarray, preds: Predictions) -> tuple[np.ndarray, Predictions]:
    """All ranks' processed image ids and predictions, on every rank; a no-op without torch.distributed.

    Args:
        image_ids: int64 [I] the images this rank processed (with or without detections).
        preds: this rank's predictions.

    Returns:
        (the union of processed image ids, rank order; the predictions with repeated images dropped).
    """
    if get_world_size() == 1:
        return image_ids, preds
    # all_gather_object pickles through the default group; it works with gloo (CPU) and NCCL (the objects
    # go through CUDA tensors there, so each rank must have set its device, as torchrun setups do).
    return merge_rank_predictions(all_gather_object((image_ids, preds)))


def merge_rank_predictions(parts: list[tuple[np.ndarray, Predictions]]) -> tuple[np.ndarray, Predictions]:
    """Concatenate per-rank (image ids, predictions) in rank order, keeping each image from its first rank."""
    seen = np.zeros(0, np.int64)
    ids_out, preds_out = [], []
    for image_ids, preds in parts:
        new = np.setdiff1d(np.unique(image_ids), seen)
        ids_out.append(image_ids[np.isin(image_ids, new)])
        preds_out.append(preds.select(np.isin(preds.image_id, new)))
        seen = np.union1d(seen, new)
    return np.concatenate(ids_out) if ids_out else seen, Predictions.concat(preds_out)
