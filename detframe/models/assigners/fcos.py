"""FCOS's assignment of points to objects: inside the box (near its centre), at the level whose range
holds the object's size, the smallest object when several qualify (Tian et al. 2019, sec. 3.1-3.2)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

import torch
from torch import Tensor

from ...registry import ASSIGNERS
from ...rules import Each, PositiveFloat, Rule
from .max_iou import IGNORED, NEGATIVE, Assignment


class LevelRange(Rule):
    """[low, high] with 0 <= low < high, low finite; high may be infinite (the coarsest level's)."""

    text = "[low, high] with 0 <= low < high (high may be .inf)"

    def allows(self, value: Any) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
            return False
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            return False
        low, high = value
        return math.isfinite(low) and 0 <= low < high


# Per level, the [low, high] of the largest point-to-side distance its points regress.
RegressRanges = Annotated[
    Sequence[Sequence[float]],
    Each(LevelRange(), text="[[low, high] per level], 0 <= low < high (high may be .inf)"),
]
FCOS_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, float("inf")))


@ASSIGNERS.register()
class FCOSAssigner:
    """A point is positive for an object when

    1. it lies strictly inside the box and, with `center_sampling`, within `center_radius` strides of
       its centre in x and in y (the "centre sampling" improvement of FCOS; torchvision's FCOS,
       mmdetection's center_sampling=True, radius 1.5);
    2. the largest of its four distances to the box sides, m, is in its level's range:
       low < m <= high (FCOS: 0, 64, 128, 256, 512, inf at P3-P7), so that each level regresses
       objects of one scale;
    3. of the objects passing 1 and 2, this one has the smallest area (the paper's rule for ambiguous
       points).

    All other points are negatives, except that a point won by an ignored object (VOC difficult,
    COCO crowd) is ignored. Computed on [points x objects] tensors at once (no loop over objects).
    The level of a point is the rank of its stride among the distinct strides, finest first.

    Args:
        regress_ranges: per level, finest first, [low, high] of m (`.inf` in YAML for no bound).
        center_sampling: require condition 1's centre region, not only the box.
        center_radius: half-size of the centre region, in strides of the point's level.
    """

    def __init__(self, regress_ranges: RegressRanges = FCOS_RANGES, center_sampling: bool = True,
                 center_radius: PositiveFloat = 1.5) -> None:
        self.regress_ranges = torch.tensor([[float(low), float(high)] for low, high in regress_ranges])
        self.center_sampling, self.center_radius = center_sampling, center_radius

    def __call__(self, points: Tensor, strides: Tensor, gt_boxes: Tensor,
                 gt_ignore: Tensor | None = None) -> Assignment:
        """Args:
            points: [P, 2] (x, y) in input pixels.
            strides: [P] stride of each point's level.
            gt_boxes: [G, 4] xyxy in input pixels.
            gt_ignore: bool [G].

        Returns:
            `Assignment` whose `gt_index` is the object of each point or NEGATIVE / IGNORED; FCOS has no
            IoU with a prior, so `max_iou` is all zeros.
        """
        num_points = points.shape[0]
        gt_index = torch.full((num_points,), NEGATIVE, dtype=torch.long, device=points.device)
        if gt_boxes.numel() == 0:
            return Assignment(gt_index, points.new_zeros(num_points))
        candidate = self._candidates(points, strides, gt_boxes)  # [P, G]
        areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        cost = torch.where(candidate, areas[None], torch.full_like(areas, float("inf"))[None])
        smallest, best = cost.min(dim=1)
        matched = torch.isfinite(smallest)
        gt_index[matched] = best[matched]
        if gt_ignore is not None and gt_ignore.any():
            gt_index[matched & gt_ignore[best]] = IGNORED
        return Assignment(gt_index, points.new_zeros(num_points))

    def _candidates(self, points: Tensor, strides: Tensor, gt_boxes: Tensor) -> Tensor:
        """bool [P, G]: conditions 1 and 2 of the class docstring."""
        x, y = points[:, 0:1], points[:, 1:2]  # [P, 1]
        distances = torch.stack((x - gt_boxes[:, 0], y - gt_boxes[:, 1],
                                 gt_boxes[:, 2] - x, gt_boxes[:, 3] - y), dim=-1)  # [P, G, 4]
        candidate = distances.amin(dim=-1) > 0
        if self.center_sampling:
            centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
            offset = (points[:, None] - centres[None]).abs().amax(dim=-1)  # [P, G]
            candidate &= offset < self.center_radius * strides[:, None]
        levels = strides.unique(sorted=True)
        if len(levels) != len(self.regress_ranges):
            raise ValueError(f"FCOSAssigner has {len(self.regress_ranges)} regression ranges but the points "
                             f"come from {len(levels)} levels")
        low, high = self.regress_ranges.to(points.device)[torch.searchsorted(levels, strides)].unbind(dim=1)
        largest = distances.amax(dim=-1)
        return candidate & (largest > low[:, None]) & (largest <= high[:, None])
