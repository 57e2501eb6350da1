"""Boxes as a point's distances to their four sides (FCOS, Tian et al. 2019, eq. 1)."""
from __future__ import annotations

import torch
from torch import Tensor

from ...registry import CODERS


@CODERS.register()
class DistancePointCoder:
    """(l, t, r, b) = (x - x0, y - y0, x1 - x, y1 - y) for a point (x, y) and a box (x0, y0, x1, y1).

    With `normalize_by_stride` the distances are in units of the point's level stride (FCOS's
    "norm-on-bbox" improvement, torchvision's BoxLinearCoder(normalize_by_size=True)), so that one
    shared head predicts numbers of the same scale at every level.
    """

    def __init__(self, normalize_by_stride: bool = True) -> None:
        self.normalize_by_stride = normalize_by_stride

    def encode(self, points: Tensor, strides: Tensor, boxes: Tensor) -> Tensor:
        """points [..., 2], strides [...], boxes [..., 4] xyxy -> distances [..., 4] (l, t, r, b)."""
        x, y = points[..., 0], points[..., 1]
        distances = torch.stack(
            (x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y), dim=-1
        )
        return distances / strides[..., None] if self.normalize_by_stride else distances

    def decode(self, points: Tensor, strides: Tensor, distances: Tensor) -> Tensor:
        """points [..., 2], strides [...], distances [..., 4] (l, t, r, b) -> boxes [..., 4] xyxy."""
        if self.normalize_by_stride:
            distances = distances * strides[..., None].to(distances.dtype)
        x, y = points[..., 0].to(distances.dtype), points[..., 1].to(distances.dtype)
        return torch.stack((x - distances[..., 0], y - distances[..., 1],
                            x + distances[..., 2], y + distances[..., 3]), dim=-1)
