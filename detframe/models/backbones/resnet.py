"""ResNet-18/34/50/101/152 from torchvision, returning the maps of the chosen strides."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from torch import Tensor, nn
from torchvision import models
from torchvision.ops.misc import FrozenBatchNorm2d

from ...errors import ConfigError
from ...registry import BACKBONES
from ...rules import OneOf
from .pretrained import load_pretrained

_DEPTHS = {
    18: (models.resnet18, models.ResNet18_Weights),
    34: (models.resnet34, models.ResNet34_Weights),
    50: (models.resnet50, models.ResNet50_Weights),
    101: (models.resnet101, models.ResNet101_Weights),
    152: (models.resnet152, models.ResNet152_Weights),
}
_STAGE_STRIDES = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}


@BACKBONES.register()
class ResNet(nn.Module):
    """torchvision's ResNet without its classifier; returns C3..C5 (strides 8, 16, 32) by default.

    The modules keep torchvision's names (conv1, bn1, layer1 ... layer4), so ImageNet weights and
    torchvision detectors' `backbone.body` weights load as they are.

    Args:
        depth: 18, 34, 50, 101 or 152.
        out_strides: strides of the returned maps, increasing, from 4, 8, 16, 32; stages after the
            last one are not built.
        frozen_stages: -1 trains everything; 0 freezes the stem (conv1, bn1); k >= 1 also layer1..k.
            Frozen parameters get no gradient and frozen stages stay in eval mode. None (default):
            1 with `pretrained` weights (stem and layer1 frozen, as torchvision and mmdetection
            fine-tune), -1 without.
        frozen_bn: FrozenBatchNorm2d (fixed statistics and affine) instead of BatchNorm2d, as when
            fine-tuning with small per-GPU batches. None (default): frozen with `pretrained` weights,
            trainable BatchNorm without (random statistics must be learnt; torchvision does the same).
        pretrained: None, a local state-dict file, or a torchvision weight name such as
            IMAGENET1K_V1 / IMAGENET1K_V2 (see pretrained.py).
    """

    def __init__(
        self,
        depth: Annotated[int, OneOf(18, 34, 50, 101, 152)] = 50,
        out_strides: Sequence[int] = (8, 16, 32),
        frozen_stages: int | None = None,
        frozen_bn: bool | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if depth not in _DEPTHS:
            raise ConfigError(f"ResNet.depth: expected one of {sorted(_DEPTHS)}, got {depth}")
        out_strides = [int(s) for s in out_strides]
        if (not out_strides or sorted(set(out_strides)) != out_strides
                or not set(out_strides) <= {4, 8, 16, 32}):
            raise ConfigError(
                f"ResNet.out_strides: expected increasing values from 4, 8, 16, 32, got {out_strides}"
            )
        frozen_stages = (1 if pretrained else -1) if frozen_stages is None else frozen_stages
        frozen_bn = bool(pretrained) if frozen_bn is None else frozen_bn
        if not -1 <= frozen_stages <= 4:
            raise ConfigError(f"ResNet.frozen_stages: expected -1 (none) to 4, got {frozen_stages}")
        build, weights_enum = _DEPTHS[depth]
        net = build(weights=None, norm_layer=FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d)
        load_pretrained(net, pretrained, weights_enum, where="model.backbone.pretrained")
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.stage_names = [name for name, s in _STAGE_STRIDES.items() if s <= out_strides[-1]]
        for name in self.stage_names:
            setattr(self, name, getattr(net, name))
        widths = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
        expansion = 4 if depth >= 50 else 1
        self.out_channels = [widths[n] * expansion for n in self.stage_names
                             if _STAGE_STRIDES[n] in out_strides]
        self.strides = out_strides
        self.frozen_stages = frozen_stages
        self._freeze()

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.conv1, self.bn1] + [
            getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1) if hasattr(self, f"layer{i}")
        ]

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNet:
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()  # frozen stages keep their BatchNorm statistics
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if _STAGE_STRIDES[name] in self.strides:
                outs.append(x)
        return outs
