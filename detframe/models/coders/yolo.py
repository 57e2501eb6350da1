"""The YOLOv3 box parameterisation: a sigmoid offset inside the grid cell and a log size ratio to the
prior."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ...registry import CODERS
from ...rules import PositiveFloat


@CODERS.register()
class YOLOCoder:
    """bx = (sigmoid(tx) + cx) * stride, by = (sigmoid(ty) + cy) * stride, bw = pw exp(tw), bh = ph exp(th)
    (Redmon & Farhadi 2018, sec. 2.1), where (cx, cy) is the top-left corner of the prior's cell in
    cell units and (pw, ph) the prior's size.

    `encode` gives the targets the loss compares the raw outputs with: the centre's offset inside the
    cell in (0, 1) (the target of sigmoid(tx), for a BCE term) and log(w / pw), log(h / ph).

    Args:
        eps: offsets are clamped to [eps, 1 - eps] and sizes to >= eps pixels, so targets stay finite.
        clip_log: upper bound on decoded log-size ratios, so that exp() cannot overflow.
    """

    def __init__(self, eps: PositiveFloat = 1e-6, clip_log: PositiveFloat = math.log(1000.0 / 16)) -> None:
        self.eps = eps
        self.clip_log = clip_log

    def encode(self, priors: Tensor, gt_boxes: Tensor, strides: Tensor) -> Tensor:
        """Args:
            priors: [N, 4] xyxy absolute, centred in their cells.
            gt_boxes: [N, 4] matched boxes, xyxy absolute.
            strides: [N] stride of each prior.

        Returns:
            [N, 4]: (offset x, offset y) in (0, 1) and (log w / pw, log h / ph).
        """
        pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
        cell_x = (priors[:, 0] + priors[:, 2]) * 0.5 - 0.5 * strides  # top-left corner of the cell
        cell_y = (priors[:, 1] + priors[:, 3]) * 0.5 - 0.5 * strides
        gx, gy = (gt_boxes[:, 0] + gt_boxes[:, 2]) * 0.5, (gt_boxes[:, 1] + gt_boxes[:, 3]) * 0.5
        gw = (gt_boxes[:, 2] - gt_boxes[:, 0]).clamp(min=self.eps)
        gh = (gt_boxes[:, 3] - gt_boxes[:, 1]).clamp(min=self.eps)
        tx = ((gx - cell_x) / strides).clamp(self.eps, 1 - self.eps)
        ty = ((gy - cell_y) / strides).clamp(self.eps, 1 - self.eps)
        return torch.stack((tx, ty, torch.log(gw / pw), torch.log(gh / ph)), dim=-1)

    def decode(self, priors: Tensor, raw: Tensor, strides: Tensor) -> Tensor:
        """Args:
            priors: [N, 4] xyxy absolute.
            raw: [..., N, 4] raw network outputs (tx, ty, tw, th), before any sigmoid.
            strides: [N].

        Returns:
            [..., N, 4] boxes, xyxy absolute (not clipped).
        """
        pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
        px, py = (priors[:, 0] + priors[:, 2]) * 0.5, (priors[:, 1] + priors[:, 3]) * 0.5
        cx = px + (torch.sigmoid(raw[..., 0]) - 0.5) * strides
        cy = py + (torch.sigmoid(raw[..., 1]) - 0.5) * strides
        w = pw * torch.exp(raw[..., 2].clamp(max=self.clip_log))
        h = ph * torch.exp(raw[..., 3].clamp(max=self.clip_log))
        return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)
