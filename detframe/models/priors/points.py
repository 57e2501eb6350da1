"""Points, one per feature-map location: the priors of anchor-free heads (FCOS, and the YOLOX and
task-aligned heads to come), which predict boxes relative to a location rather than to an anchor box."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ...registry import PRIORS
from ...rules import PositiveInts, Probability
from .tracing import cached, check_strides


@PRIORS.register()
class PointGenerator:
    """The point of cell (i, j) of level k is ((j + offset) * strides[k], (i + offset) * strides[k]).

    `offset` 0 puts the points on the cells' top-left corners (torchvision's FCOS, whose anchors of
    size `stride` are centred there), 0.5 on their centres (mmdetection's MlvlPointGenerator; the FCOS
    paper's floor(s / 2) + x s is the same for even strides).

    Args:
        strides: stride in pixels of each level, finest first.
        offset: where in its cell each point lies, in units of the stride.

    Returns (from `__call__`): [P, 2] (x, y) points in input pixels, ordered level, row, column;
    `strides_of` gives the stride of each point, in the same order.
    """

    num_anchors_per_location = 1

    def __init__(self, strides: PositiveInts, offset: Probability = 0.0) -> None:
        self.strides = [float(s) for s in strides]
        self.offset = offset
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def _build(self, feature_shapes: Sequence[tuple[int, int]],
               device: torch.device | None) -> tuple[Tensor, Tensor]:
        if len(feature_shapes) != len(self.strides):
            raise ValueError(f"PointGenerator has {len(self.strides)} levels but got "
                             f"{len(feature_shapes)} feature maps")
        return cached(self._cache, lambda: self._grid(feature_shapes), device, feature_shapes)

    def _grid(self, feature_shapes: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """([P, 2] points, [P] strides) of every level; the sizes may be ints or traced 0-dim tensors
        (`full_like` takes the count of points from a tensor, so a traced graph follows it)."""
        points, strides = [], []
        for stride, (h, w) in zip(self.strides, feature_shapes):
            xs = (torch.arange(w, dtype=torch.float32) + self.offset) * stride
            ys = (torch.arange(h, dtype=torch.float32) + self.offset) * stride
            ys, xs = torch.meshgrid(ys, xs, indexing="ij")
            level = torch.stack((xs, ys), dim=-1).reshape(-1, 2)
            points.append(level)
            strides.append(torch.full_like(level[:, 0], stride))
        return torch.cat(points), torch.cat(strides)

    def __call__(self, feature_shapes: Sequence[tuple[int, int]], image_size: tuple[int, int],
                 device: torch.device | None = None) -> Tensor:
        check_strides(type(self).__name__, self.strides, feature_shapes, image_size)
        return self._build(feature_shapes, device)[0]

    def strides_of(self, feature_shapes: Sequence[tuple[int, int]],
                   device: torch.device | None = None) -> Tensor:
        """[P] stride in pixels of each point, in the order of `__call__`."""
        return self._build(feature_shapes, device)[1]
