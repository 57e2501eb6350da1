"""CSPDarknet, the backbone of YOLOv5 and YOLOX, written here from their published structure.

A Focus stem (stride 2), then four stages, each a stride-2 3x3 conv and a CSP block; the last stage
puts SPP (or SPPF) between them and has no shortcuts in its block. At `deepen_factor` 1 and
`widen_factor` 1 the stages have 64, 128, 256, 512, 1024 channels and 3, 9, 9, 3 bottlenecks; the
factors scale both (YOLOX-s: 0.33, 0.5; tiny: 0.33, 0.375; nano: 0.33, 0.25 with depthwise convs).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import BACKBONES
from ...rules import Distinct, Each, OneOf, PositiveFloat, Probability, Range
from ..layers.csp import SPP, SPPF, Activation, BlockSize, CSPLayer, Focus, conv_bn_act

STAGE_WIDTHS = (64, 128, 256, 512, 1024)  # stem, then stages 1-4, at widen_factor 1
STAGE_DEPTHS = (3, 9, 9, 3)  # bottlenecks of stages 1-4 at deepen_factor 1
STRIDES = (2, 4, 8, 16, 32)  # of the stem and stages 1-4


@BACKBONES.register()
class CSPDarknet(nn.Module):
    """YOLOv5/YOLOX's CSPDarknet returning the maps of `out_indices`.

    Args:
        deepen_factor: bottleneck-count multiplier (rounded, at least 1 per stage).
        widen_factor: channel multiplier (YOLOX-s: 0.5 gives C3-C5 of 128, 256, 512 channels).
        out_indices: which maps to return, increasing, from 0 (the stem, stride 2) to 4 (stride 32);
            (2, 3, 4) is C3-C5 at strides 8, 16, 32. Stages after the last one are not built.
        act: activation of every conv: silu, mish or leaky_relu.
        depthwise: depthwise-separable 3x3 convs (YOLOX-nano).
        spp: "spp" (YOLOX: pools 5, 9, 13 side by side), "sppf" (YOLOv5: the same output by three
            5x5 pools in a row) or "none", before the last stage's CSP block.
        drop_block_prob, drop_block_size: DropBlock after each stage's CSP block (0: none).
        norm_eps, norm_momentum: BatchNorm settings (YOLOX's by default).
    """

    def __init__(
        self,
        deepen_factor: PositiveFloat = 0.33,
        widen_factor: PositiveFloat = 0.5,
        out_indices: Annotated[Sequence[int], Each(Range(0, 4, integer=True)), Distinct()] = (2, 3, 4),
        act: Activation = "silu",
        depthwise: bool = False,
        spp: Annotated[str, OneOf("spp", "sppf", "none")] = "spp",
        drop_block_prob: Probability = 0.0,
        drop_block_size: BlockSize = 3,
        norm_eps: PositiveFloat = 1e-3,
        norm_momentum: Probability = 0.03,
    ) -> None:
        super().__init__()
        out_indices = [int(i) for i in out_indices]
        if not out_indices or sorted(out_indices) != out_indices:
            raise ConfigError(
                f"CSPDarknet.out_indices: expected increasing indices from 0-4, got {out_indices}"
            )
        conv = {"act": act, "norm_eps": norm_eps, "norm_momentum": norm_momentum}
        widths = [max(1, int(w * widen_factor)) for w in STAGE_WIDTHS]
        depths = [max(1, round(d * deepen_factor)) for d in STAGE_DEPTHS]
        self.stem = Focus(3, widths[0], 3, **conv)
        self.stage_names = ["stem"]
        for i in range(1, out_indices[-1] + 1):
            last = i == len(STAGE_WIDTHS) - 1
            stage = nn.Sequential()
            stage.add_module("down", conv_bn_act(widths[i - 1], widths[i], 3, 2, depthwise, **conv))
            if last and spp != "none":
                pooling = SPP if spp == "spp" else SPPF
                stage.add_module(spp, pooling(widths[i], widths[i], **conv))
            stage.add_module("csp", CSPLayer(widths[i], widths[i], depths[i - 1], shortcut=not last,
                                             depthwise=depthwise, drop_block_prob=drop_block_prob,
                                             drop_block_size=drop_block_size, **conv))
            self.add_module(f"stage{i}", stage)
            self.stage_names.append(f"stage{i}")
        self.out_indices = out_indices
        self.out_channels = [widths[i] for i in out_indices]
        self.strides = [STRIDES[i] for i in out_indices]

    def forward(self, x: Tensor) -> list[Tensor]:
        """[B, 3, H, W] -> one [B, C_i, H / s_i, W / s_i] map per `out_indices` (H, W multiples of 32)."""
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
