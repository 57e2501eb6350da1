"""YOLOv3 priors: a few fixed anchor shapes per level, centred in each grid cell (Redmon & Farhadi 2018)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor

from ...registry import PRIORS
from ...rules import Each, PositiveInts, Range
from .anchors import grid_boxes
from .tracing import cached, check_strides

# Per level, the (w, h) of each anchor in pixels.
BaseSizes = Annotated[Sequence[Sequence[Sequence[float]]],
                      Each(Each(Each(Range(0, lo_open=True), length=2)),
                           text="[[[w, h], ...] per level], w, h > 0")]


@PRIORS.register()
class YOLOPriorGenerator:
    """Anchor shapes `base_sizes[k]` (w, h in input pixels) at the centre of every cell of level k.

    YOLOv3's COCO anchors (from k-means on the training boxes at 416 px, see tools/anchors.py) are
    (10,13) (16,30) (33,23) at stride 8, (30,61) (62,45) (59,119) at 16, (116,90) (156,198) (373,326) at 32.

    Args:
        strides: stride in pixels of each level, increasing.
        base_sizes: per level, the (w, h) of its anchors in input pixels.

    Returns (from `__call__`): [P, 4] priors, xyxy absolute pixels, ordered level, row, column, anchor;
    `strides_of` gives the stride of each prior, which the YOLO coder and assigner need.
    """

    def __init__(self, strides: PositiveInts, base_sizes: BaseSizes) -> None:
        if len(strides) != len(base_sizes):
            raise ValueError(
                f"YOLOPriorGenerator: {len(strides)} strides but {len(base_sizes)} lists of base sizes"
            )
        self.strides = [float(s) for s in strides]
        self.base_sizes = [[(float(w), float(h)) for w, h in level] for level in base_sizes]
        self._base = [torch.tensor([[-w / 2, -h / 2, w / 2, h / 2] for w, h in level])
                      for level in self.base_sizes]
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    @property
    def num_anchors(self) -> list[int]:
        return [len(level) for level in self.base_sizes]

    def _build(self, feature_shapes: Sequence[tuple[int, int]],
               device: torch.device | None) -> tuple[Tensor, Tensor]:
        if len(feature_shapes) != len(self._base):
            raise ValueError(
                f"YOLOPriorGenerator has {len(self._base)} levels "
                f"but got {len(feature_shapes)} feature maps"
            )
        return cached(self._cache, lambda: self._grid(feature_shapes), device, feature_shapes)

    def _grid(self, feature_shapes: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """([P, 4] priors, [P] strides) of every level; the sizes may be ints or traced 0-dim tensors
        (`full_like` takes the count of priors from a tensor, so a traced graph follows it)."""
        priors = [grid_boxes(b, s, shape, 0.5)
                  for b, s, shape in zip(self._base, self.strides, feature_shapes)]
        strides = [torch.full_like(p[:, 0], s) for p, s in zip(priors, self.strides)]
        return torch.cat(priors), torch.cat(strides)

    def __call__(self, feature_shapes: Sequence[tuple[int, int]], image_size: tuple[int, int],
                 device: torch.device | None = None) -> Tensor:
        check_strides(type(self).__name__, self.strides, feature_shapes, image_size)
        return self._build(feature_shapes, device)[0]

    def strides_of(self, feature_shapes: Sequence[tuple[int, int]],
                   device: torch.device | None = None) -> Tensor:
        """[P] stride in pixels of each prior, in the order of `__call__`."""
        return self._build(feature_shapes, device)[1]
