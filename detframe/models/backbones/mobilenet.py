"""MobileNetV3 from torchvision, cut where SSDLite taps it."""
from __future__ import annotations

from functools import partial

from torch import Tensor, nn
from torchvision.models import MobileNet_V3_Large_Weights, MobileNet_V3_Small_Weights, mobilenet_v3_large, mobilenet_v3_small

from ...errors import ConfigError
from ...registry import BACKBONES
from .pretrained import load_pretrained

_ARCHS = {"large": (mobilenet_v3_large, MobileNet_V3_Large_Weights), "small": (mobilenet_v3_small, MobileNet_V3_Small_Weights)}


@BACKBONES.register()
class MobileNetV3(nn.Module):
    """torchvision's MobileNetV3 returning two maps, as SSDLite uses them (MobileNetV3 paper, sec. 6.3):
    the expansion output of the first stride-32 block (stride 16) and the last layer (stride 32).

    Args:
        arch: "large" or "small".
        width_mult: channel multiplier.
        reduced_tail: halve the channels of the last blocks (torchvision does when training SSDLite
            without ImageNet weights).
        pretrained: None, a local state-dict file, or a torchvision weight name (see pretrained.py).
        norm_eps, norm_momentum: BatchNorm settings (torchvision's SSDLite: 0.001, 0.03).
    """

    def __init__(
        self,
        arch: str = "large",
        width_mult: float = 1.0,
        reduced_tail: bool = False,
        pretrained: str | None = None,
        norm_eps: float = 0.001,
        norm_momentum: float = 0.03,
    ) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ConfigError(f"MobileNetV3.arch: expected one of {sorted(_ARCHS)}, got '{arch}'")
        build, weights_enum = _ARCHS[arch]
        norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=norm_momentum)
        net = build(weights=None, width_mult=width_mult, reduced_tail=reduced_tail, norm_layer=norm)
        load_pretrained(net, pretrained, weights_enum, where="model.backbone.pretrained")
        features = net.features
        stage_starts = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)]
        c5 = stage_starts[-1]  # first block with stride 32
        expansion = features[c5].block[0]
        self.stage16 = nn.Sequential(*features[:c5], expansion)
        self.stage32 = nn.Sequential(features[c5].block[1:], *features[c5 + 1:])
        self.out_channels = [expansion.out_channels, features[-1].out_channels]
        self.strides = [16, 32]

    def forward(self, x: Tensor) -> list[Tensor]:
        c4 = self.stage16(x)
        return [c4, self.stage32(c4)]
