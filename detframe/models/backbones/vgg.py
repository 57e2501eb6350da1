"""VGG-16 as the SSD paper modifies it: pool5 3x3/s1, dilated fc6 and 1x1 fc7 as convolutions,
conv4_3 rescaled by a learned L2 normalisation (ParseNet)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import VGG16_Weights
from torchvision.models.vgg import cfgs, make_layers

from ...registry import BACKBONES
from ...rules import PositiveFloat
from .pretrained import load_pretrained


class L2Norm(nn.Module):
    """Per-location L2 normalisation over channels with a learned per-channel scale (init `scale`)."""

    def __init__(self, channels: int, scale: float = 20.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight.view(1, -1, 1, 1) * F.normalize(x, dim=1)


@BACKBONES.register()
class SSDVGG16(nn.Module):
    """Returns [conv4_3 (L2-normalised, stride 8), fc7 (stride 16)] with 512 and 1024 channels.

    At 300 px these are 38x38 and 19x19 (pool3 uses ceil mode, as in the paper's Caffe model).

    Args:
        pretrained: None, a local VGG-16 state-dict file, or a torchvision weight name
            (IMAGENET1K_FEATURES is the one SSD's reference trainings start from).
        l2norm_scale: initial scale of conv4_3's L2 normalisation.
    """

    def __init__(self, pretrained: str | None = None, l2norm_scale: PositiveFloat = 20.0) -> None:
        super().__init__()
        # Only VGG-16's conv layers, under torchvision's names: building the whole classifier (102M
        # parameters of fully connected layers SSD drops) would cost seconds of initialisation.
        net = nn.Module()
        net.features = make_layers(cfgs["D"])
        for m in net.features.modules():
            if isinstance(m, nn.Conv2d):  # torchvision's VGG init
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        load_pretrained(net, pretrained, VGG16_Weights, where="model.backbone.pretrained")
        features = net.features
        pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
        features[pools[2]].ceil_mode = True
        self.conv4 = nn.Sequential(*features[: pools[3]])  # conv1_1 .. relu4_3
        self.l2norm = L2Norm(512, l2norm_scale)
        fc = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),  # pool5
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),  # fc6, atrous
            nn.ReLU(inplace=True),
            nn.Conv2d(1024, 1024, kernel_size=1),  # fc7
            nn.ReLU(inplace=True),
        )
        for m in fc.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.fc7 = nn.Sequential(*features[pools[3]: pools[4]], fc)  # pool4, conv5_x, then fc6/fc7
        self.out_channels = [512, 1024]
        self.strides = [8, 16]

    def forward(self, x: Tensor) -> list[Tensor]:
        c4 = self.conv4(x)
        return [self.l2norm(c4), self.fc7(c4)]
