"""Anchors of several sizes and aspect ratios per location (Faster R-CNN's RPN, RetinaNet).

Written here rather than calling torchvision's AnchorGenerator because that one takes an `ImageList`,
derives each level's stride as image size // feature size (which is not the nominal stride when the
input is not a multiple of the coarsest stride) and recomputes every call; this one is a plain,
cached function of (feature shapes, image size). tests/models/test_priors.py checks that both give
identical boxes where they are meant to agree.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ...registry import PRIORS
from ...rules import PositiveFloat, PositiveFloats, PositiveInt, PositiveInts, Probability
from .tracing import cached, check_strides


@PRIORS.register()
class AnchorGenerator:
    """Anchors centred on a grid of `strides[k]` pixels at level k.

    Sizes at level k are `octave_base_scale * strides[k] * 2 ** (i / scales_per_octave)` for
    i < scales_per_octave (RetinaNet: 4 * stride * {2^0, 2^(1/3), 2^(2/3)}), or the explicit `sizes[k]`.
    An anchor of size s and aspect ratio r (= h / w) has w = s / sqrt(r), h = s * sqrt(r). At each
    location the anchors are ordered ratio by ratio, sizes within a ratio (torchvision's and
    mmdetection's order).

    Args:
        strides: stride in pixels of each level.
        aspect_ratios: h / w ratios, the same at every level.
        octave_base_scale: size of the smallest anchor in units of the level's stride.
        scales_per_octave: sizes per level, spaced by 2^(1/scales_per_octave).
        sizes: explicit per-level sizes in pixels instead of the two above.
        center_offset: anchor centres at (i + center_offset) * stride; 0 for RetinaNet as in
            torchvision and mmdetection, 0.5 for the centre of the cell.
        round_base: round the anchor corners relative to the centre to integers (torchvision does).

    Returns (from `__call__`): [P, 4] anchors, xyxy absolute pixels, ordered level, row, column, anchor.
    """

    def __init__(
        self,
        strides: PositiveInts,
        aspect_ratios: PositiveFloats = (0.5, 1.0, 2.0),
        octave_base_scale: PositiveFloat = 4.0,
        scales_per_octave: PositiveInt = 3,
        sizes: Sequence[Sequence[float]] | None = None,
        center_offset: Probability = 0.0,
        round_base: bool = False,
    ) -> None:
        self.strides = [float(s) for s in strides]
        if sizes is None:
            octave = [2 ** (i / scales_per_octave) for i in range(scales_per_octave)]
            sizes = [[octave_base_scale * s * o for o in octave] for s in self.strides]
        if len(sizes) != len(self.strides):
            raise ValueError(f"AnchorGenerator: {len(self.strides)} strides but {len(sizes)} lists of sizes")
        self.sizes = [[float(s) for s in level] for level in sizes]
        self.aspect_ratios = [float(r) for r in aspect_ratios]
        self.center_offset = center_offset
        self._base = [self._base_anchors(level, round_base) for level in self.sizes]
        self._cache: dict[tuple, Tensor] = {}

    def _base_anchors(self, sizes: list[float], round_base: bool) -> Tensor:
        """[A, 4] anchors centred on (0, 0)."""
        h_ratios = torch.tensor([math.sqrt(r) for r in self.aspect_ratios])
        w_ratios = 1.0 / h_ratios
        scales = torch.tensor(sizes)
        ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
        base = torch.stack((-ws, -hs, ws, hs), dim=1) / 2
        return base.round() if round_base else base

    @property
    def num_anchors(self) -> list[int]:
        """Anchors per location at each level."""
        return [len(b) for b in self._base]

    def __call__(self, feature_shapes: Sequence[tuple[int, int]], image_size: tuple[int, int],
                 device: torch.device | None = None) -> Tensor:
        if len(feature_shapes) != len(self._base):
            raise ValueError(
                f"AnchorGenerator has {len(self._base)} levels but got {len(feature_shapes)} feature maps"
            )
        check_strides(type(self).__name__, self.strides, feature_shapes, image_size)
        return cached(self._cache, lambda: self._grid(feature_shapes), device, feature_shapes)

    def _grid(self, feature_shapes: Sequence[tuple[int, int]]) -> Tensor:
        """[P, 4] anchors of every level; the sizes may be ints or traced 0-dim tensors."""
        return torch.cat([grid_boxes(base, stride, shape, self.center_offset)
                          for base, stride, shape in zip(self._base, self.strides, feature_shapes)])


def grid_boxes(base: Tensor, stride: float, shape: tuple[int, int], center_offset: float) -> Tensor:
    """Base boxes [A, 4] (centred on 0) shifted to every cell of an (h, w) grid: [h * w * A, 4].

    `shape` may hold traced 0-dim tensors (see tracing.py): `arange` over them is recorded with a
    dynamic end."""
    h, w = shape
    xs = (torch.arange(w, dtype=torch.float32) + center_offset) * stride
    ys = (torch.arange(h, dtype=torch.float32) + center_offset) * stride
    ys, xs = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack((xs, ys, xs, ys), dim=-1).reshape(-1, 1, 4)
    return (shifts + base[None]).reshape(-1, 4)
