"""YOLOv3's top-down path (Redmon & Farhadi 2018, sec. 2.3; the layers of Darknet's yolov3.cfg)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import NECKS
from ...rules import PositiveFloat, PositiveInts, Probability
from ..backbones.darknet import ConvBNAct


class DetectionBlock(nn.Module):
    """Five convs alternating 1x1 to `channels` and 3x3 to 2 x `channels` (ending on 1x1)."""

    def __init__(self, in_channels: int, channels: int, **norm) -> None:
        super().__init__()
        layers, prev = [], in_channels
        for i in range(5):
            out, k = (channels, 1) if i % 2 == 0 else (channels * 2, 3)
            layers.append(ConvBNAct(prev, out, k, **norm))
            prev = out
        self.convs = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.convs(x)


@NECKS.register()
class YOLOv3Neck(nn.Module):
    """From the coarsest map down: a detection block gives the stride-32 output; a 1x1 conv halves
    its channels, it is upsampled x2 and concatenated with the next finer backbone map, and a detection
    block over that gives the stride-16 output; the same again for stride 8.

    Args:
        in_channels: channels of the backbone's maps, finest first (Darknet-53: 256, 512, 1024).
        out_channels: channels of each output, finest first (YOLOv3: 128, 256, 512).
        norm_eps, norm_momentum: BatchNorm settings.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: PositiveInts = (128, 256, 512),
                 norm_eps: PositiveFloat = 1e-5, norm_momentum: Probability = 0.1) -> None:
        super().__init__()
        if len(in_channels) != len(out_channels):
            raise ConfigError(
                f"YOLOv3Neck: {len(in_channels)} backbone maps but {len(out_channels)} out_channels"
            )
        norm = {"norm_eps": norm_eps, "norm_momentum": norm_momentum}
        ins, outs = list(in_channels)[::-1], list(out_channels)[::-1]  # coarsest first, the order of the path
        self.detect = nn.ModuleList([DetectionBlock(ins[0], outs[0], **norm)])
        self.lateral = nn.ModuleList()
        for i in range(1, len(ins)):
            self.lateral.append(ConvBNAct(outs[i - 1], outs[i], 1, **norm))
            self.detect.append(DetectionBlock(ins[i] + outs[i], outs[i], **norm))
        self.out_channels = list(out_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        feats = features[::-1]
        x = self.detect[0](feats[0])
        outs = [x]
        for lateral, detect, skip in zip(self.lateral, self.detect[1:], feats[1:]):
            up = F.interpolate(lateral(x), size=skip.shape[-2:], mode="nearest")
            x = detect(torch.cat((up, skip), dim=1))
            outs.append(x)
        return outs[::-1]
