"""SSD's extra feature layers: each halves (or shrinks) the previous map and adds it as a new level."""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated

from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from ...registry import NECKS
from ...rules import Each, PositiveFloat, PositiveInts, Probability, Range


@NECKS.register()
class SSDExtraLayers(nn.Module):
    """Passes the backbone's maps through and appends one map per extra block.

    Plain blocks (SSD300/512): 1x1 conv to `mid` channels, ReLU, kxk conv to `out`, ReLU.
    Separable blocks (SSDLite): 1x1 conv, depthwise 3x3/s2 conv, 1x1 conv, each with BN + ReLU6.

    Args:
        in_channels: channels of the backbone's maps; the last one feeds the first extra block.
        out_channels: channels of each extra map.
        mid_channels: bottleneck channels of each block (default out // 2).
        strides, paddings, kernel_sizes: of each block's spatial conv (default 2, 1, 3).
        separable: SSDLite blocks instead of plain ones.
        norm_eps, norm_momentum: BatchNorm settings of separable blocks.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: PositiveInts,
        mid_channels: PositiveInts | None = None,
        strides: PositiveInts | None = None,
        paddings: Annotated[Sequence[int], Each(Range(0, integer=True))] | None = None,
        kernel_sizes: PositiveInts | None = None,
        separable: bool = False,
        norm_eps: PositiveFloat = 0.001,
        norm_momentum: Probability = 0.03,
    ) -> None:
        super().__init__()
        n = len(out_channels)
        mid_channels = list(mid_channels) if mid_channels is not None else [c // 2 for c in out_channels]
        strides = list(strides) if strides is not None else [2] * n
        paddings = list(paddings) if paddings is not None else [1] * n
        kernel_sizes = list(kernel_sizes) if kernel_sizes is not None else [3] * n
        for name, values in (("mid_channels", mid_channels), ("strides", strides), ("paddings", paddings),
                             ("kernel_sizes", kernel_sizes)):
            if len(values) != n:
                raise ValueError(
                    f"SSDExtraLayers.{name}: expected {n} values (one per out_channels), got {len(values)}"
                )
        norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=norm_momentum)
        blocks, prev = [], in_channels[-1]
        for out, mid, s, p, k in zip(out_channels, mid_channels, strides, paddings, kernel_sizes):
            if separable:
                block = nn.Sequential(
                    Conv2dNormActivation(prev, mid, 1, norm_layer=norm, activation_layer=nn.ReLU6),
                    Conv2dNormActivation(mid, mid, k, stride=s, padding=p, groups=mid, norm_layer=norm,
                                         activation_layer=nn.ReLU6),
                    Conv2dNormActivation(mid, out, 1, norm_layer=norm, activation_layer=nn.ReLU6),
                )
            else:
                block = nn.Sequential(
                    nn.Conv2d(prev, mid, 1), nn.ReLU(inplace=True),
                    nn.Conv2d(mid, out, k, stride=s, padding=p), nn.ReLU(inplace=True),
                )
            blocks.append(block)
            prev = out
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = list(in_channels) + list(out_channels)
        self._init(separable)

    def _init(self, separable: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if separable:  # torchvision's SSDLite init
                    nn.init.normal_(m.weight, mean=0.0, std=0.03)
                else:  # SSD's Caffe model: Xavier
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        outs = list(features)
        x = outs[-1]
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs
