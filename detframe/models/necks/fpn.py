"""Feature Pyramid Network (Lin et al. 2017) over torchvision.ops.FeaturePyramidNetwork."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Annotated

from torch import Tensor, nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from ...errors import ConfigError
from ...registry import NECKS
from ...rules import OneOf, PositiveInt

_EXTRA = ("p6p7", "maxpool", None)


@NECKS.register()
class FPN(nn.Module):
    """Top-down pathway with lateral 1x1 convs, nearest upsampling and 3x3 smoothing convs, all at
    `out_channels`, plus extra coarser levels.

    RetinaNet (Lin et al. 2017b): the backbone's C3-C5 give P3-P5, and `extra: p6p7` adds P6 (3x3/s2
    conv) and P7 (ReLU, 3x3/s2 conv): five levels, strides 8-128.

    Args:
        in_channels: channels of the backbone's maps, finest first.
        out_channels: channels of every output level (256 in the papers).
        extra: "p6p7" (RetinaNet), "maxpool" (a stride-2 max-pool of the last level, Faster R-CNN's P6) or
            None.
        extra_source: what P6 is computed from: "c5", the last backbone map (the RetinaNet paper,
            mmdetection, torchvision's retinanet_resnet50_fpn_v2), or "p5" (torchvision's
            retinanet_resnet50_fpn).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: PositiveInt = 256,
                 extra: Annotated[str, OneOf("p6p7", "maxpool")] | None = "p6p7",
                 extra_source: Annotated[str, OneOf("c5", "p5")] = "c5") -> None:
        super().__init__()
        if extra not in _EXTRA:
            raise ConfigError(f"FPN.extra: expected one of p6p7, maxpool, null; got '{extra}'")
        if extra_source not in ("c5", "p5"):
            raise ConfigError(f"FPN.extra_source: expected c5 or p5, got '{extra_source}'")
        blocks = None
        if extra == "p6p7":
            blocks = LastLevelP6P7(in_channels[-1] if extra_source == "c5" else out_channels, out_channels)
            blocks.use_P5 = extra_source == "p5"  # torchvision decides by channel counts; say it outright
        elif extra == "maxpool":
            blocks = LastLevelMaxPool()
        self.fpn = FeaturePyramidNetwork(list(in_channels), out_channels, extra_blocks=blocks)
        num_out = len(in_channels) + {"p6p7": 2, "maxpool": 1, None: 0}[extra]
        self.out_channels = [out_channels] * num_out

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        named = OrderedDict((str(i), f) for i, f in enumerate(features))
        return list(self.fpn(named).values())
