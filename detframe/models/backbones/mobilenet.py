"""MobileNetV3 from torchvision, cut where SSDLite taps it."""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated

from torch import Tensor, nn
from torchvision.models import (
    MobileNet_V3_Large_Weights,
    MobileNet_V3_Small_Weights,
    mobilenet_v3_large,
    mobilenet_v3_small,
)

from ...errors import ConfigError
from ...registry import BACKBONES
from ...rules import OneOf, PositiveFloat, Probability
from .pretrained import load_pretrained

_ARCHS = {
    "large": (mobilenet_v3_large, MobileNet_V3_Large_Weights),
    "small": (mobilenet_v3_small, MobileNet_V3_Small_Weights),
}


@BACKBONES.register()
class MobileNetV3(nn.Module):
    """torchvision's MobileNetV3 returning feature maps the way SSDLite taps them (MobileNetV3 paper,
    sec. 6.3): a map of stride s < 32 is the output of the expansion layer of the first block of stride
    2s; stride 32 is the last layer. The default (16, 32) is torchvision's SSDLite; (8, 16) gives a finer
    first level for small objects and drops the stride-32 stage.

    Args:
        arch: "large" or "small".
        width_mult: channel multiplier.
        reduced_tail: halve the channels of the last blocks (torchvision does when training SSDLite
            without ImageNet weights).
        pretrained: None, a local state-dict file, or a torchvision weight name (see pretrained.py).
        norm_eps, norm_momentum: BatchNorm settings (torchvision's SSDLite: 0.001, 0.03).
        out_strides: strides of the returned maps, increasing, from 8, 16, 32.
    """

    def __init__(
        self,
        arch: Annotated[str, OneOf("large", "small")] = "large",
        width_mult: PositiveFloat = 1.0,
        reduced_tail: bool = False,
        pretrained: str | None = None,
        norm_eps: PositiveFloat = 0.001,
        norm_momentum: Probability = 0.03,
        out_strides: Sequence[int] = (16, 32),
    ) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ConfigError(f"MobileNetV3.arch: expected one of {sorted(_ARCHS)}, got '{arch}'")
        out_strides = [int(s) for s in out_strides]
        if not out_strides or sorted(set(out_strides)) != out_strides or not set(out_strides) <= {8, 16, 32}:
            raise ConfigError(
                f"MobileNetV3.out_strides: expected increasing values from 8, 16, 32, got {out_strides}"
            )
        build, weights_enum = _ARCHS[arch]
        norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=norm_momentum)
        net = build(weights=None, width_mult=width_mult, reduced_tail=reduced_tail, norm_layer=norm)
        load_pretrained(net, pretrained, weights_enum, where="model.backbone.pretrained")
        features = list(net.features)
        # Blocks that halve the resolution, by the stride they bring the network to (4, 8, 16, 32).
        downsampling = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)]
        first_block_of = dict(zip((4, 8, 16, 32), downsampling))
        tap_blocks = {first_block_of[2 * s]: s for s in out_strides if s != 32}
        # One flat sequence in which each tapped block is split after its expansion layer (stride-2
        # blocks have no residual connection, so the split changes nothing), cut after each tap.
        flat, cuts, channels = [], [], []
        for i, layer in enumerate(features):
            if i in tap_blocks:
                flat.append(layer.block[0])
                cuts.append(len(flat))
                channels.append(layer.block[0].out_channels)
                if tap_blocks[i] == out_strides[-1]:
                    break  # nothing after the last tap is used
                flat.append(layer.block[1:])
            else:
                flat.append(layer)
        if out_strides[-1] == 32:
            cuts.append(len(flat))
            channels.append(features[-1].out_channels)
        self.stages = nn.ModuleList(nn.Sequential(*flat[a:b]) for a, b in zip([0, *cuts[:-1]], cuts))
        self.out_channels = channels
        self.strides = out_strides

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
