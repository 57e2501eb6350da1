"""YOLOX's box parametrisation: the centre as an offset from the cell's corner and the size as a log,
both in units of the level's stride (Ge et al. 2021; YOLOX's `decode_outputs`)."""
from __future__ import annotations

import torch
from torch import Tensor

from ...registry import CODERS


@CODERS.register()
class YOLOXCoder:
    """(tx, ty, tw, th) with centre = point + (tx, ty) x stride and size = exp(tw, th) x stride, for
    points on the cells' top-left corners (`PointGenerator` offset 0, YOLOX's grid).

    Unlike YOLOv3's coder there is no sigmoid on the offset: a point may predict a centre outside its
    cell, which SimOTA's 2.5-stride centre prior relies on."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def encode(self, points: Tensor, strides: Tensor, boxes: Tensor) -> Tensor:
        """points [..., 2], strides [...], boxes [..., 4] xyxy -> [..., 4] (tx, ty, tw, th): the targets of
        YOLOX's L1 loss on the raw outputs."""
        stride = strides[..., None]
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        size = boxes[..., 2:] - boxes[..., :2]
        return torch.cat(((centre - points) / stride, torch.log(size / stride + self.eps)), dim=-1)

    def decode(self, points: Tensor, strides: Tensor, deltas: Tensor) -> Tensor:
        """points [..., 2], strides [...], deltas [..., 4] (tx, ty, tw, th) -> boxes [..., 4] xyxy."""
        stride = strides[..., None].to(deltas.dtype)
        centre = points.to(deltas.dtype) + deltas[..., :2] * stride
        half = torch.exp(deltas[..., 2:]) * stride / 2
        return torch.cat((centre - half, centre + half), dim=-1)
