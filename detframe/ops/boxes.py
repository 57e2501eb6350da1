"""Thin wrappers over torchvision.ops for the box operations the heads and evaluators share."""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou  # noqa: F401  (re-exported for the models)


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip xyxy boxes to an image of `size` = (h, w)."""
    h, w = size
    return torch.stack(
        (boxes[..., 0].clamp(0, w), boxes[..., 1].clamp(0, h),
         boxes[..., 2].clamp(0, w), boxes[..., 3].clamp(0, h)),
        dim=-1,
    )


def undo_resize(boxes: Tensor, scale: tuple[float, float], offset: tuple[float, float],
                orig_size: tuple[int, int]) -> Tensor:
    """Map boxes from the transformed image back to the original: orig = (x - offset) / scale, clipped."""
    sx, sy = scale
    ox, oy = offset
    factor = boxes.new_tensor([sx, sy, sx, sy])
    shift = boxes.new_tensor([ox, oy, ox, oy])
    return clip_boxes((boxes - shift) / factor, orig_size)
