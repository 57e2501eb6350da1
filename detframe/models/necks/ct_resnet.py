"""CenterNet's upsampling neck (Zhou et al. 2019, "Objects as points", sec. 4 and its ResNet variant;
mmdetection's CTResNetNeck): the backbone's last map (C5, stride 32) brought back to stride 4 by three
(3x3 conv, 4x4 transposed conv of stride 2) stages, so that one fine map carries every object's centre."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ...registry import NECKS
from ...rules import PositiveInts


def bilinear_kernel(size: int) -> Tensor:
    """[size, size] weights of bilinear interpolation for a transposed conv of stride size // 2 (the FCN /
    CenterNet `fill_up_weights` formula): a 4x4 kernel of stride 2 doubles a map by linear interpolation."""
    factor = math.ceil(size / 2)
    centre = (2 * factor - 1 - factor % 2) / (2.0 * factor)
    ramp = 1 - (torch.arange(size, dtype=torch.float32) / factor - centre).abs()
    return ramp[:, None] * ramp[None, :]


def _upsample_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv + BN + ReLU (mmdetection: a modulated deformable conv; a plain conv here, as in
    CenterNet's no-DCN ResNet), then a 4x4 transposed conv of stride 2 + BN + ReLU, which doubles the map."""
    deconv = nn.ConvTranspose2d(out_channels, out_channels, 4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        # Each channel upsampled on its own by bilinear interpolation, no mixing across channels: the neck
        # starts as a plain 8x upsampler of what the convs make. (CenterNet's fill_up_weights writes the
        # kernel into weight[:, 0] and leaves the rest randomly initialised; the diagonal form is the
        # one that is bilinear upsampling.)
        deconv.weight.zero_()
        deconv.weight[range(out_channels), range(out_channels)] = bilinear_kernel(4)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True), deconv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
    )


@NECKS.register()
class CTResNetNeck(nn.Module):
    """C5 -> len(`channels`) upsampling stages (each x2) -> one map; with three stages from stride 32,
    stride 4 (CenterNet's 128x128 output for a 512x512 input).

    Args:
        in_channels: channels of the backbone's maps; only the last (C5: 512 for ResNet-18) is used.
        channels: output channels of each stage (256, 128, 64 in CenterNet).
    """

    def __init__(self, in_channels: Sequence[int], channels: PositiveInts = (256, 128, 64)) -> None:
        super().__init__()
        widths = [int(in_channels[-1]), *(int(c) for c in channels)]
        self.stages = nn.Sequential(*(_upsample_stage(a, b) for a, b in zip(widths, widths[1:])))
        self.out_channels = [widths[-1]]

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [self.stages(features[-1])]
