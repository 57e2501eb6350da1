"""Darknet-53, YOLOv3's backbone (Redmon & Farhadi 2018, table 1), written here: torchvision has none.

53 convolutional layers: a 3x3 stem, then five stages, each a stride-2 3x3 conv followed by 1, 2, 8,
8 and 4 residual blocks (1x1 conv to half the channels, 3x3 conv back, added to the input). Every conv
has BatchNorm and LeakyReLU(0.1). Module names follow mmdetection's Darknet (conv1,
conv_res_block1..5, each with conv and res0..resN; conv/bn inside), so its checkpoints load as they are.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import BACKBONES
from ...rules import Each, PositiveFloat, Probability, Range
from .pretrained import load_matching, read_state_dict

DARKNET53_BLOCKS = (1, 2, 8, 8, 4)
DARKNET53_URL = "https://pjreddie.com/media/files/darknet53.conv.74"


class ConvBNAct(nn.Module):
    """Conv (no bias) -> BatchNorm -> LeakyReLU(0.1), "same" padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 norm_eps: PositiveFloat = 1e-5, norm_momentum: Probability = 0.1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=norm_eps, momentum=norm_momentum)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class ResBlock(nn.Module):
    """x + conv3x3(conv1x1(x)), the bottleneck at half the channels."""

    def __init__(self, channels: int, **norm) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels // 2, 1, **norm)
        self.conv2 = ConvBNAct(channels // 2, channels, 3, **norm)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


@BACKBONES.register()
class Darknet(nn.Module):
    """Darknet-53 (or a thinner/shallower variant) returning the maps of the chosen strides.

    Args:
        stage_blocks: residual blocks in each of the five stages; (1, 2, 8, 8, 4) is Darknet-53.
        widen_factor: channel multiplier (1.0: 32, 64, ... 1024 channels).
        out_strides: strides of the returned maps, increasing, from 4, 8, 16, 32 (C2..C5: 128, 256,
            512, 1024 channels at width 1); stages after the last one are not built.
        frozen_stages: -1 trains everything; k >= 0 freezes the stem and the first k stages.
        norm_eps, norm_momentum: BatchNorm settings.
        pretrained: None, or a local file: Darknet's own `darknet53.conv.74` (ImageNet weights in
            Darknet's binary format) or a PyTorch state dict with this module's names (mmdetection's
            darknet53 checkpoint, or a detframe checkpoint: `backbone.` prefixes are stripped).
    """

    def __init__(
        self,
        stage_blocks: Annotated[Sequence[int], Each(Range(0, integer=True))] = DARKNET53_BLOCKS,
        widen_factor: PositiveFloat = 1.0,
        out_strides: Sequence[int] = (8, 16, 32),
        frozen_stages: Annotated[int, Range(-1, integer=True)] = -1,
        norm_eps: PositiveFloat = 1e-5,
        norm_momentum: Probability = 0.1,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        out_strides = [int(s) for s in out_strides]
        if (not out_strides or sorted(set(out_strides)) != out_strides
                or not set(out_strides) <= {4, 8, 16, 32}):
            raise ConfigError(
                f"Darknet.out_strides: expected increasing values from 4, 8, 16, 32, got {out_strides}"
            )
        if len(stage_blocks) != 5:
            raise ConfigError("Darknet.stage_blocks: expected 5 numbers "
                              f"(Darknet-53: {list(DARKNET53_BLOCKS)}), got {list(stage_blocks)}")
        norm = {"norm_eps": norm_eps, "norm_momentum": norm_momentum}
        width = [max(8, int(round(c * widen_factor))) for c in (32, 64, 128, 256, 512, 1024)]
        self.conv1 = ConvBNAct(3, width[0], 3, **norm)
        stage_strides = (2, 4, 8, 16, 32)
        self.stage_names = []
        for i, (blocks, stride) in enumerate(zip(stage_blocks, stage_strides)):
            if stride > out_strides[-1]:
                break
            stage = nn.Sequential()
            stage.add_module("conv", ConvBNAct(width[i], width[i + 1], 3, stride=2, **norm))
            for j in range(int(blocks)):
                stage.add_module(f"res{j}", ResBlock(width[i + 1], **norm))
            self.add_module(f"conv_res_block{i + 1}", stage)
            self.stage_names.append((f"conv_res_block{i + 1}", stride))
        self.out_channels = [width[i + 1] for i, (_, s) in enumerate(self.stage_names) if s in out_strides]
        self.strides = out_strides
        self.frozen_stages = frozen_stages
        self._is_darknet53 = tuple(stage_blocks) == DARKNET53_BLOCKS and widen_factor == 1.0
        self.apply(_init)
        load_darknet_pretrained(self, pretrained, where="model.backbone.pretrained")
        self._freeze()

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.conv1] + [getattr(self, name) for name, _ in self.stage_names[: self.frozen_stages]]

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> Darknet:
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.conv1(x)
        outs = []
        for name, stride in self.stage_names:
            x = getattr(self, name)(x)
            if stride in self.strides:
                outs.append(x)
        return outs

    def convs_in_darknet_order(self) -> list[ConvBNAct]:
        """The conv layers in the order of Darknet's cfg file (and of its .weights files)."""
        return [m for m in self.modules() if isinstance(m, ConvBNAct)]


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_out", nonlinearity="leaky_relu")


def load_darknet_pretrained(model: Darknet, pretrained: str | None, where: str) -> None:
    """Load a local Darknet `.weights` file or a PyTorch state dict into `model` (see `Darknet`)."""
    if not pretrained:
        return
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{where}: '{pretrained}' is not a file. Darknet-53 has no torchvision weights; "
            f"give a local file: Darknet's ImageNet weights {DARKNET53_URL} "
            "or a PyTorch state dict with Darknet's module names"
        )
    if path.suffix in (".pth", ".pt", ".ckpt"):
        state = read_state_dict(path, where)
        for prefix in ("module.", "backbone."):
            state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
        load_matching(model, state, str(path), where)
        return
    if not model._is_darknet53:
        raise ConfigError(f"{where}: Darknet's .weights files hold Darknet-53; "
                          "this backbone has other stage_blocks or widen_factor")
    read_darknet_weights(model.convs_in_darknet_order(), path, where)


def read_darknet_weights(convs: list[ConvBNAct], path: Path, where: str) -> None:
    """Fill `convs` from a Darknet binary weights file (darknet's src/parser.c `load_weights`).

    Layout: int32 major, minor, revision; the images seen (int64 from version 0.2 on, else int32);
    then per conv layer with batch norm: bias, scale, running mean, running variance (out channels
    float32 each) and the weights (out x in x k x k float32). Files may hold more layers (a whole
    YOLOv3) than the backbone; the extra ones are not read.
    """
    with open(path, "rb") as f:
        major, minor, _ = np.fromfile(f, dtype=np.int32, count=3)
        np.fromfile(f, dtype=np.int64 if major * 10 + minor >= 2 else np.int32, count=1)
        data = np.fromfile(f, dtype=np.float32)
    offset = 0
    with torch.no_grad():
        for i, layer in enumerate(convs):
            tensors = (layer.bn.bias, layer.bn.weight, layer.bn.running_mean, layer.bn.running_var,
                       layer.conv.weight)
            need = sum(t.numel() for t in tensors)
            if offset + need > data.size:
                raise ConfigError(f"{where}: '{path}' ends at conv layer {i + 1} of {len(convs)}: "
                                  "not Darknet-53 weights")
            for t in tensors:
                t.copy_(torch.from_numpy(data[offset: offset + t.numel()]).view_as(t))
                offset += t.numel()
