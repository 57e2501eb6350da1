"""The blocks of the CSP family (YOLOv4, YOLOv5, YOLOX): conv-BN-activation, the CSP block, SPP/SPPF,
the Focus stem and DropBlock.

CSP (Wang et al. 2020, "CSPNet") splits a stage into two 1x1 branches, runs bottlenecks on one only and
joins them with a concatenation and a 1x1 conv. SPP (He et al. 2015, as YOLOv4 uses it) concatenates a
map with its stride-1 max-pools of sizes 5, 9 and 13; SPPF (YOLOv5) gets the same maps by pooling
three times with a 5x5 window, since max-pooling twice with k is max-pooling once with 2k - 1.
Activations: "silu" (YOLOv5, YOLOX), "mish" (YOLOv4's backbone), "leaky_relu" (slope 0.1, Darknet).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor, nn
from torchvision.ops import drop_block2d

from ...rules import OneOf, PositiveFloat, Probability, Rule

ACTIVATIONS = ("silu", "mish", "leaky_relu")
Activation = Annotated[str, OneOf(*ACTIVATIONS)]


class OddInt(Rule):
    """A positive odd integer (DropBlock's block size: torchvision pads by half of it)."""

    text = "an odd integer >= 1"

    def allows(self, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1 and value % 2 == 1


BlockSize = Annotated[int, OddInt()]


def make_activation(name: str) -> nn.Module:
    """`name` from ACTIVATIONS as a module."""
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "mish":
        return nn.Mish(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"act={name!r}: expected one of {', '.join(ACTIVATIONS)}")


class ConvBNAct(nn.Module):
    """Conv (no bias, "same" padding) -> BatchNorm -> activation.

    YOLOX's BatchNorm settings (eps 1e-3, momentum 0.03) are the defaults.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1, act: Activation = "silu", norm_eps: PositiveFloat = 1e-3,
                 norm_momentum: Probability = 0.03) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=norm_eps, momentum=norm_momentum)
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DepthwiseConvBNAct(nn.Module):
    """A depthwise k x k ConvBNAct then a pointwise 1x1 ConvBNAct (MobileNet's separable conv)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 **kwargs) -> None:
        super().__init__()
        self.depthwise = ConvBNAct(in_channels, in_channels, kernel_size, stride, groups=in_channels,
                                   **kwargs)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


def conv_bn_act(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                depthwise: bool = False, **kwargs) -> nn.Module:
    """A ConvBNAct, or its depthwise-separable form when `depthwise` (1x1 convs stay plain)."""
    if depthwise and kernel_size > 1:
        return DepthwiseConvBNAct(in_channels, out_channels, kernel_size, stride, **kwargs)
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, **kwargs)


class Bottleneck(nn.Module):
    """1x1 conv then 3x3 conv, plus the input when `shortcut` and the channels agree."""

    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True, expansion: float = 1.0,
                 depthwise: bool = False, **kwargs) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvBNAct(in_channels, hidden, 1, **kwargs)
        self.conv2 = conv_bn_act(hidden, out_channels, 3, depthwise=depthwise, **kwargs)
        self.shortcut = shortcut and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class DropBlock(nn.Module):
    """DropBlock (Ghiasi et al. 2018) over torchvision's `drop_block2d`: zeroes `block_size` squares
    so that a fraction `p` of the activations is dropped, rescaling the rest; identity in eval mode.

    `block_size` must be odd (torchvision's rule); on a map smaller than a block the block shrinks to
    the largest odd size that fits (torchvision would shrink it to the map's side, even or odd, and fail).
    """

    def __init__(self, p: Probability = 0.1, block_size: BlockSize = 3) -> None:
        super().__init__()
        if not OddInt().allows(block_size):
            raise ValueError(f"block_size={block_size}: expected {OddInt.text}")
        self.p, self.block_size = p, block_size

    def forward(self, x: Tensor) -> Tensor:
        size = min(self.block_size, *x.shape[-2:])
        size -= 1 - size % 2
        return drop_block2d(x, self.p, size, training=self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, block_size={self.block_size}"


class CSPLayer(nn.Module):
    """The CSP block of YOLOv5/YOLOX ("C3"): two 1x1 branches to half of `out_channels`, `num_blocks`
    bottlenecks on the first, concatenation, a 1x1 conv to `out_channels`, then DropBlock when
    `drop_block_prob` > 0.

    Args:
        in_channels, out_channels: channels of the input and the output.
        num_blocks: bottlenecks on the main branch (0 leaves it a 1x1 conv).
        shortcut: residual connections inside the bottlenecks (on in backbones, off in necks).
        expansion: the branches' width as a fraction of `out_channels`.
        depthwise: depthwise-separable 3x3 convs in the bottlenecks.
        drop_block_prob, drop_block_size: DropBlock on the output (0: none).
        kwargs: `act`, `norm_eps`, `norm_momentum` for every ConvBNAct.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 1, shortcut: bool = True,
                 expansion: float = 0.5, depthwise: bool = False, drop_block_prob: float = 0.0,
                 drop_block_size: int = 3, **kwargs) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.main_conv = ConvBNAct(in_channels, hidden, 1, **kwargs)
        self.short_conv = ConvBNAct(in_channels, hidden, 1, **kwargs)
        self.blocks = nn.Sequential(*[Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, **kwargs)
                                      for _ in range(num_blocks)])
        self.final_conv = ConvBNAct(2 * hidden, out_channels, 1, **kwargs)
        # Built whenever asked for, so that an even size fails when the model is built, not in training.
        self.drop = DropBlock(drop_block_prob, drop_block_size) if drop_block_prob > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1)
        return self.drop(self.final_conv(y))


class SPP(nn.Module):
    """1x1 conv to half the channels, concatenation with its stride-1 max-pools (sizes 5, 9, 13 by
    default), 1x1 conv to `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int] = (5, 9, 13),
                 **kwargs) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = ConvBNAct(in_channels, hidden, 1, **kwargs)
        self.pools = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes])
        self.conv2 = ConvBNAct(hidden * (len(kernel_sizes) + 1), out_channels, 1, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.pools], dim=1))


class SPPF(nn.Module):
    """SPP with three chained `kernel_size` pools: with 5 the same output as SPP(5, 9, 13) (the same
    weights give the same result), at less cost."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, **kwargs) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = ConvBNAct(in_channels, hidden, 1, **kwargs)
        self.pool = nn.MaxPool2d(kernel_size, 1, kernel_size // 2)
        self.conv2 = ConvBNAct(hidden * 4, out_channels, 1, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        maps = [self.conv1(x)]
        for _ in range(3):
            maps.append(self.pool(maps[-1]))
        return self.conv2(torch.cat(maps, dim=1))


class Focus(nn.Module):
    """Space to depth, then a ConvBNAct: each 2x2 patch becomes 4 x `in_channels` channels at half the
    resolution (YOLOv5's first stems, YOLOX). Channel order: (even row, even col), (odd, even),
    (even, odd), (odd, odd), as in YOLOX, so its weights load."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, **kwargs) -> None:
        super().__init__()
        self.conv = ConvBNAct(4 * in_channels, out_channels, kernel_size, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), dim=1)
        return self.conv(x)
