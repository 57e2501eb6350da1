"""SSD default boxes (Liu et al. 2016, sec. 2.2), the same boxes as torchvision's DefaultBoxGenerator.

Written here rather than calling torchvision's generator because that one takes an `ImageList` and
recomputes every call; this one is a plain function of (feature shapes, image size) and caches.
tests/models/test_priors.py checks that both give identical boxes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor

from ...registry import PRIORS
from ...rules import Each, PositiveFloats, Range
from .tracing import cached


@PRIORS.register()
class SSDPriorGenerator:
    """Default boxes for each location of each feature map.

    At level k of m the box scale is s_k = min_ratio + (max_ratio - min_ratio) * k / (m - 1) (or the
    given `scales`, m + 1 values); each location has a box of scale s_k and one of sqrt(s_k s_{k+1})
    at aspect 1, and two boxes (w = s_k sqrt(a), h = s_k / sqrt(a) and transposed) per aspect ratio a.

    Args:
        aspect_ratios: per level, the ratios besides 1, e.g. [[2], [2, 3], ...].
        min_ratio, max_ratio: smallest and largest scale relative to the image side.
        scales: explicit m + 1 scales instead of min/max ratio (SSD300 uses 0.07 ... 1.05).
        steps: per level, the stride in pixels used to place box centres; default: the feature grid.
        clip: clamp box width and height (relative) to [0, 1] before converting to corners.

    Returns (from `__call__`): [P, 4] boxes, xyxy absolute pixels, ordered level, location (row-major),
    then box, which is the order the heads flatten their outputs in.
    """

    def __init__(
        self,
        aspect_ratios: Annotated[Sequence[Sequence[float]], Each(PositiveFloats)],
        min_ratio: Annotated[float, Range(0, 1, lo_open=True)] = 0.15,
        max_ratio: Annotated[float, Range(0, 1, lo_open=True)] = 0.9,
        scales: PositiveFloats | None = None,
        steps: PositiveFloats | None = None,
        clip: bool = True,
    ) -> None:
        self.aspect_ratios = [list(r) for r in aspect_ratios]
        m = len(self.aspect_ratios)
        if scales is None:
            scales = ([min_ratio + (max_ratio - min_ratio) * k / (m - 1.0) for k in range(m)] + [1.0]
                      if m > 1 else [min_ratio, max_ratio])
        if len(scales) != m + 1:
            raise ValueError(f"SSDPriorGenerator: {m} levels need {m + 1} scales, got {len(scales)}")
        if steps is not None and len(steps) != m:
            raise ValueError(f"SSDPriorGenerator: {m} levels need {m} steps, got {len(steps)}")
        self.scales = [float(s) for s in scales]
        self.steps = None if steps is None else [float(s) for s in steps]
        self.clip = clip
        self._wh = [self._wh_pairs(k) for k in range(m)]
        self._cache: dict[tuple, Tensor] = {}

    def _wh_pairs(self, k: int) -> Tensor:
        s_k = self.scales[k]
        s_prime = math.sqrt(self.scales[k] * self.scales[k + 1])
        pairs = [[s_k, s_k], [s_prime, s_prime]]
        for ar in self.aspect_ratios[k]:
            r = math.sqrt(ar)
            pairs += [[s_k * r, s_k / r], [s_k / r, s_k * r]]
        wh = torch.tensor(pairs, dtype=torch.float32)
        return wh.clamp(0, 1) if self.clip else wh

    @property
    def num_anchors(self) -> list[int]:
        """Boxes per location at each level."""
        return [2 + 2 * len(r) for r in self.aspect_ratios]

    def __call__(self, feature_shapes: Sequence[tuple[int, int]], image_size: tuple[int, int],
                 device: torch.device | None = None) -> Tensor:
        if len(feature_shapes) != len(self._wh):
            raise ValueError(
                f"SSDPriorGenerator has {len(self._wh)} levels but got {len(feature_shapes)} feature maps"
            )
        return cached(self._cache, lambda: self._grid(feature_shapes, image_size), device, feature_shapes,
                      tuple(image_size))

    def _grid(self, feature_shapes: Sequence[tuple[int, int]], image_size: tuple[int, int]) -> Tensor:
        """[P, 4] boxes of every level. Both the feature sizes and the image size are scales here (the
        centres are relative to the grid or to `steps`, the boxes to the image side), so when traced
        both are 0-dim tensors and the pixel scale is stacked from them, not a constant."""
        h, w = image_size
        boxes = []
        for k, (fh, fw) in enumerate(feature_shapes):
            y_f, x_f = (h / self.steps[k], w / self.steps[k]) if self.steps is not None else (fh, fw)
            cx = ((torch.arange(fw) + 0.5) / x_f).float()
            cy = ((torch.arange(fh) + 0.5) / y_f).float()
            cy, cx = torch.meshgrid(cy, cx, indexing="ij")
            centres = torch.stack((cx.reshape(-1), cy.reshape(-1)), dim=-1)  # [HW, 2]
            wh = self._wh[k]
            a = len(wh)
            centres = centres[:, None, :].expand(-1, a, 2).reshape(-1, 2)
            sizes = wh[None].expand(fh * fw, a, 2).reshape(-1, 2)
            boxes.append(torch.cat((centres - 0.5 * sizes, centres + 0.5 * sizes), dim=1))
        scale = (torch.stack([w, h, w, h]).to(torch.float32) if isinstance(w, Tensor)
                 else torch.tensor([w, h, w, h], dtype=torch.float32))
        return torch.cat(boxes) * scale
