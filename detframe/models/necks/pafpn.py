"""PAFPN, YOLOX's neck (PANet's path aggregation, Liu et al. 2018, built from CSP blocks).

Top-down: from the coarsest map, a 1x1 conv (the lateral) to the next level's channels, x2 nearest
upsampling, concatenation with that level's backbone map and a CSP block, down to the finest level,
which is the first output. Bottom-up: a stride-2 3x3 conv, concatenation with the coarser level's
lateral and a CSP block gives each coarser output. With `out_channels` equal to the backbone's
channels this is YOLOX's PAFPN layer for layer.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import NECKS
from ...rules import PositiveFloat, PositiveInts, Probability
from ..layers.csp import Activation, BlockSize, ConvBNAct, CSPLayer, conv_bn_act


@NECKS.register()
class PAFPN(nn.Module):
    """Path-aggregation neck over two or more backbone maps, finest first.

    Args:
        in_channels: channels of the backbone's maps, finest first (the builder passes them).
        out_channels: channels of each output, finest first; None keeps `in_channels` (YOLOX).
        deepen_factor: each CSP block has round(3 x deepen_factor) bottlenecks, at least 1.
        depthwise: depthwise-separable 3x3 convs (YOLOX-nano).
        act: activation of every conv: silu, mish or leaky_relu.
        drop_block_prob, drop_block_size: DropBlock after each CSP block (0: none).
        norm_eps, norm_momentum: BatchNorm settings (YOLOX's by default).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: PositiveInts | None = None,
        deepen_factor: PositiveFloat = 0.33,
        depthwise: bool = False,
        act: Activation = "silu",
        drop_block_prob: Probability = 0.0,
        drop_block_size: BlockSize = 3,
        norm_eps: PositiveFloat = 1e-3,
        norm_momentum: Probability = 0.03,
    ) -> None:
        super().__init__()
        ins = [int(c) for c in in_channels]
        outs = [int(c) for c in (out_channels or ins)]
        if len(ins) < 2 or len(ins) != len(outs):
            raise ConfigError(f"PAFPN: expected two or more backbone maps and as many out_channels, "
                              f"got {len(ins)} maps and out_channels {outs}")
        conv = {"act": act, "norm_eps": norm_eps, "norm_momentum": norm_momentum}
        csp = {"num_blocks": max(1, round(3 * deepen_factor)), "shortcut": False, "depthwise": depthwise,
               "drop_block_prob": drop_block_prob, "drop_block_size": drop_block_size, **conv}
        levels = len(ins)
        # laterals[i] / top_down[i] lead from level i + 1 to level i.
        self.laterals = nn.ModuleList(
            ConvBNAct(ins[i + 1] if i == levels - 2 else outs[i + 1], outs[i], 1, **conv)
            for i in range(levels - 1)
        )
        self.top_down = nn.ModuleList(CSPLayer(outs[i] + ins[i], outs[i], **csp) for i in range(levels - 1))
        # downsamples[i] / bottom_up[i] lead from level i to level i + 1.
        self.downsamples = nn.ModuleList(
            conv_bn_act(outs[i], outs[i], 3, 2, depthwise, **conv) for i in range(levels - 1)
        )
        self.bottom_up = nn.ModuleList(CSPLayer(2 * outs[i], outs[i + 1], **csp) for i in range(levels - 1))
        self.out_channels = outs

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Backbone maps, finest first -> as many maps at the same resolutions, `out_channels`."""
        x, laterals = features[-1], {}
        for i in reversed(range(len(features) - 1)):
            laterals[i] = self.laterals[i](x)
            up = F.interpolate(laterals[i], size=features[i].shape[-2:], mode="nearest")
            x = self.top_down[i](torch.cat((up, features[i]), dim=1))
        outs = [x]
        for i in range(len(features) - 1):
            x = self.bottom_up[i](torch.cat((self.downsamples[i](x), laterals[i]), dim=1))
            outs.append(x)
        return outs
