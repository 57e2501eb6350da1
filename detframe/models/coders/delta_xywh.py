"""The R-CNN / SSD box parameterisation: centre offsets in prior units and log size ratios."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor

from ...registry import CODERS
from ...rules import Each, PositiveFloat, Range


@CODERS.register()
class DeltaXYWHCoder:
    """tx = (x - xa) / wa, ty = (y - ya) / ha, tw = log(w / wa), th = log(h / ha), each then (t - mean) / std.

    Args:
        stds: per-coordinate divisors; SSD and Faster R-CNN use (0.1, 0.1, 0.2, 0.2), which is
            torchvision's BoxCoder weights (10, 10, 5, 5).
        means: per-coordinate offsets subtracted before dividing (usually 0).
        clip_log: upper bound on the decoded log-size ratios, so that exp() cannot overflow.
    """

    def __init__(
        self,
        stds: Annotated[Sequence[float], Each(Range(0, lo_open=True), length=4)] = (0.1, 0.1, 0.2, 0.2),
        means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        clip_log: PositiveFloat = math.log(1000.0 / 16),
    ) -> None:
        self.stds = tuple(float(s) for s in stds)
        self.means = tuple(float(m) for m in means)
        self.clip_log = clip_log

    def encode(self, priors: Tensor, gt_boxes: Tensor) -> Tensor:
        """Turn the ground-truth box matched to each prior into a regression target.

        Args:
            priors: [N, 4] priors (anchors), xyxy absolute.
            gt_boxes: [N, 4] boxes matched to `priors` row by row, xyxy absolute.

        Returns:
            [N, 4] deltas (dx, dy, dw, dh), normalised by `means` and `stds`.
        """
        pw, ph = priors[..., 2] - priors[..., 0], priors[..., 3] - priors[..., 1]
        px, py = priors[..., 0] + 0.5 * pw, priors[..., 1] + 0.5 * ph
        gw, gh = gt_boxes[..., 2] - gt_boxes[..., 0], gt_boxes[..., 3] - gt_boxes[..., 1]
        gx, gy = gt_boxes[..., 0] + 0.5 * gw, gt_boxes[..., 1] + 0.5 * gh
        deltas = torch.stack(((gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)), dim=-1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, priors: Tensor, deltas: Tensor) -> Tensor:
        """Inverse of `encode`.

        Args:
            priors: [N, 4] xyxy absolute.
            deltas: [..., N, 4] normalised deltas (leading batch dimensions broadcast).

        Returns:
            [..., N, 4] boxes, xyxy absolute (not clipped to the image).
        """
        d = deltas * deltas.new_tensor(self.stds) + deltas.new_tensor(self.means)
        pw, ph = priors[..., 2] - priors[..., 0], priors[..., 3] - priors[..., 1]
        px, py = priors[..., 0] + 0.5 * pw, priors[..., 1] + 0.5 * ph
        cx, cy = d[..., 0] * pw + px, d[..., 1] * ph + py
        w = torch.exp(d[..., 2].clamp(max=self.clip_log)) * pw
        h = torch.exp(d[..., 3].clamp(max=self.clip_log)) * ph
        return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)
