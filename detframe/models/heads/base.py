"""What dense (per-location, per-prior) heads return and how their level outputs are flattened."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class DenseOutputs:
    """Raw predictions of a dense head for a batch, all levels concatenated."""

    cls_logits: Tensor  # [B, P, K]
    box_regression: Tensor  # [B, P, 4] encoded deltas
    feature_shapes: list[tuple[int, int]]  # (h, w) of each level, to generate the P priors


def flatten_levels(per_level: list[Tensor], channels: int) -> Tensor:
    """[B, A*K, H, W] per level -> [B, sum(H*W*A), K], ordered level, row, column, prior.

    This is the order of `SSDPriorGenerator` (and torchvision's heads), so prior p and output p match.
    """
    flat = []
    for x in per_level:
        b, _, h, w = x.shape
        flat.append(x.view(b, -1, channels, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, channels))
    return torch.cat(flat, dim=1)
