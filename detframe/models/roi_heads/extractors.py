"""RoI feature extractors: each RoI pooled to a fixed grid from the FPN level its size maps to."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import roi_pool

from ...errors import ConfigError
from ...ops.roi_align import roi_align
from ...registry import ROI_EXTRACTORS
from ...rules import NonNegativeInt, PositiveFloat, PositiveInt, PositiveInts


def fpn_levels(rois: Tensor, k_min: int, k_max: int, canonical_size: float = 224.0,
               canonical_level: int = 4) -> Tensor:
    """The FPN level of each RoI (Lin et al. 2017, eq. 1): k = floor(k0 + log2(sqrt(w h) / 224)),
    clamped to [k_min, k_max], returned as int64 [N] offsets from k_min (the index of the feature map).

    A 224-pixel RoI (the ImageNet size) maps to P4, one half as large to P3. A tiny epsilon keeps a
    size of exactly 2^k x 224 from flooring to the level below, as in torchvision.

    Args:
        rois: [N, 4] xyxy in input pixels.
    """
    size = ((rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1])).sqrt()
    level = torch.floor(canonical_level + torch.log2(size / canonical_size) + 1e-6)
    return (level.clamp(k_min, k_max) - k_min).long()


class LevelRoIExtractor(nn.Module):
    """Pools each RoI from one level of the pyramid, chosen by `fpn_levels`, to [C, S, S].

    Args:
        strides: strides of the levels used (the first len(strides) feature maps; powers of two,
            consecutive: FPN's P2-P5 are 4, 8, 16, 32; P6 is only for the RPN).
        output_size: S.
        canonical_size, canonical_level: the mapping's 224 and k0 = 4.
    """

    def __init__(self, strides: PositiveInts = (4, 8, 16, 32), output_size: PositiveInt = 7,
                 canonical_size: PositiveFloat = 224.0, canonical_level: PositiveInt = 4) -> None:
        super().__init__()
        levels = [math.log2(s) for s in strides]
        if levels != [levels[0] + i for i in range(len(levels))] or levels[0] != int(levels[0]):
            raise ConfigError(f"{type(self).__name__}.strides: expected consecutive powers of two, "
                              f"got {list(strides)}")
        self.strides = [int(s) for s in strides]
        self.k_min, self.k_max = int(levels[0]), int(levels[-1])
        self.output_size = output_size
        self.canonical_size, self.canonical_level = canonical_size, canonical_level

    def forward(self, features: Sequence[Tensor], rois: list[Tensor]) -> Tensor:
        """Args:
            features: the neck's maps, finest first, [B, C, H_l, W_l].
            rois: per image, [n_i, 4] xyxy in input pixels (finite, positive area).

        Returns:
            [sum n_i, C, S, S], RoIs in image order.
        """
        boxes = torch.cat(rois)
        image_index = torch.cat([torch.full((len(r),), i, dtype=boxes.dtype, device=boxes.device)
                                 for i, r in enumerate(rois)])
        indexed = torch.cat([image_index[:, None], boxes], dim=1)  # torchvision's [K, 5] RoI format
        levels = fpn_levels(boxes, self.k_min, self.k_max, self.canonical_size, self.canonical_level)
        first = features[0]
        # Not zeroed (torchvision zeroes it): every RoI has exactly one level, so each row is written
        # once below; zeroing 2000 RoIs x 256 x 7 x 7 would cost a 100 MB fill per prediction.
        out = first.new_empty((len(boxes), first.shape[1], self.output_size, self.output_size))
        for level, stride in enumerate(self.strides):
            chosen = torch.where(levels == level)[0]
            out[chosen] = self.pool(features[level], indexed[chosen], 1.0 / stride).to(out.dtype)
        return out

    def pool(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        """[K, C, S, S] from one map [B, C, H, W] for RoIs [K, 5] (image index, xyxy input pixels)."""
        raise NotImplementedError


@ROI_EXTRACTORS.register()
class MultiScaleRoIAlign(LevelRoIExtractor):
    """RoIAlign (He et al. 2017) on the mapped level: bilinear samples, `sampling_ratio` per bin side,
    no quantisation of the RoI (torchvision's `MultiScaleRoIAlign`, 7x7, sampling ratio 2). The op is
    torchvision's, with a faster CPU backward giving the same gradient (`detframe.ops.roi_align`).

    Args:
        sampling_ratio: samples per bin side (0: adaptive, ceil(roi size / S)).
        aligned: shift the box by half a pixel (Detectron2's RoIAlignV2); False as torchvision.
    """

    def __init__(self, strides: PositiveInts = (4, 8, 16, 32), output_size: PositiveInt = 7,
                 sampling_ratio: NonNegativeInt = 2, aligned: bool = False,
                 canonical_size: PositiveFloat = 224.0, canonical_level: PositiveInt = 4) -> None:
        super().__init__(strides, output_size, canonical_size, canonical_level)
        self.sampling_ratio, self.aligned = sampling_ratio, aligned

    def pool(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        return roi_align(feature, rois.to(feature.dtype), self.output_size, scale, self.sampling_ratio,
                         self.aligned)


@ROI_EXTRACTORS.register()
class RoIPool(LevelRoIExtractor):
    """RoI max pooling (Girshick 2015, Fast R-CNN's layer): the RoI rounded to the feature grid, each
    bin's maximum (`torchvision.ops.roi_pool`), on the level `fpn_levels` picks."""

    def pool(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        return roi_pool(feature, rois.to(feature.dtype), self.output_size, scale)
