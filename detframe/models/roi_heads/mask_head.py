"""Mask R-CNN's mask branch (He et al. 2017): a small FCN on 14x14 RoI features predicting one 28x28 mask
per class; its training targets (objects' masks cropped to the RoIs) and the paste back into the image."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from ...registry import HEADS
from ...rules import NonNegativeFloat, PositiveInt, Probability
from ...structures import Instances


@HEADS.register()
class FCNMaskHead(nn.Module):
    """`num_convs` 3x3 convs (ReLU), a 2x2 stride-2 transposed conv (ReLU) and a 1x1 conv: RoI features
    [N, C_in, S, S] -> per-class mask logits [N, num_classes, 2S, 2S] (S = 14 gives 28x28).

    Loss (`loss`): binary cross-entropy of each positive RoI's logits of its own class against its
    object's mask cropped to the RoI (`mask_targets`), averaged over the pixels, times `loss_weight`.

    Args:
        num_classes: object classes (no background: the class of a mask is the box head's).
        in_channels: channels of each neck level (the RoI features have the first's).
        conv_channels: width of the convs (256).
        num_convs: 3x3 convs before the upsampling (4).
        loss_weight: weight of `loss_mask`.
        mask_threshold: probability above which a pasted pixel belongs to the object (0.5).
    """

    def __init__(self, num_classes: PositiveInt, in_channels: Sequence[int], conv_channels: PositiveInt = 256,
                 num_convs: PositiveInt = 4, loss_weight: NonNegativeFloat = 1.0,
                 mask_threshold: Probability = 0.5) -> None:
        super().__init__()
        widths = [in_channels[0], *[conv_channels] * num_convs]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:]))
        self.upsample = nn.ConvTranspose2d(conv_channels, conv_channels, 2, stride=2)
        self.logits = nn.Conv2d(conv_channels, num_classes, 1)
        self.loss_weight, self.mask_threshold = loss_weight, mask_threshold
        for layer in [*self.convs, self.upsample, self.logits]:  # torchvision's and mmdetection's init
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, pooled: Tensor) -> Tensor:
        """[N, C_in, S, S] -> logits [N, num_classes, 2S, 2S]."""
        x = pooled
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.logits(torch.relu(self.upsample(x)))

    def loss(self, logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
        """`loss_mask`: BCE of `logits` [N, C, M, M] at `labels` [N] (0..C-1) against soft `targets`
        [N, M, M]; no positive RoI in the batch gives a zero that keeps the graph (for DDP)."""
        if len(labels) == 0:
            return logits.sum() * 0.0
        chosen = logits[torch.arange(len(labels), device=labels.device), labels]
        return self.loss_weight * F.binary_cross_entropy_with_logits(chosen.float(), targets.float())

    def paste(self, logits: Tensor, labels: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
        """Detections' masks bool [K, H, W]: the sigmoid of each one's logits of its `labels`, pasted
        into its `boxes` (xyxy, the image's pixels) of an image of `size` (H, W), thresholded."""
        probs = torch.sigmoid(logits[torch.arange(len(labels), device=labels.device), labels].float())
        return paste_masks(probs, boxes.float(), size) >= self.mask_threshold


def mask_targets(targets: list[Instances], rois: list[Tensor], matched: list[Tensor], size: int) -> Tensor:
    """Each RoI's object mask cropped to the RoI and resized to `size` x `size`, in [0, 1] (soft:
    torchvision's targets, not thresholded; a pixel on the mask's border is its covered fraction).

    `torchvision.ops.roi_align` on the float mask with `aligned=True` (pixel i covers [i, i + 1)) and
    adaptive sampling: a RoI whose corners lie on the pixel grid and whose sides are whole multiples
    of `size` gives the mask's pixels averaged in blocks, exactly.

    Args:
        targets: per image, its objects with `masks` uint8 [N, h, w].
        rois: per image [n_i, 4] xyxy input pixels (the positive RoIs).
        matched: per image [n_i] the index of each RoI's object.

    Returns:
        float32 [sum n_i, size, size].
    """
    out = []
    for gt, boxes, index in zip(targets, rois, matched):
        if gt.masks is None:
            raise ValueError("Mask R-CNN trains on instance masks: the batch has none (data.with_masks=true)")
        if len(boxes) == 0:
            out.append(boxes.new_zeros((0, size, size)))
            continue
        indexed = torch.cat([index[:, None].to(boxes.dtype), boxes], dim=1).float()
        crops = roi_align(gt.masks[:, None].float(), indexed, size, 1.0, sampling_ratio=0, aligned=True)
        out.append(crops[:, 0])
    return torch.cat(out).float()


def paste_masks(masks: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Soft masks [K, M, M] resized into their boxes [K, 4] (xyxy, continuous pixel coordinates) of an
    image of `size` (H, W): float [K, H, W], zero outside the boxes.

    Each image pixel's centre is mapped into its box's M x M grid and the mask bilinearly sampled
    there, with zeros beyond the mask's edge (`grid_sample(align_corners=False)` with zero padding;
    the role of torchvision's 1-pixel padding): a mask of ones thresholded at 0.5 covers exactly the
    pixels whose centres lie inside the box. Bilinear sampling on a separable grid is a product of two
    interpolation matrices, `Y @ mask @ X^T`, vectorised over the K masks.
    """
    height, width = size
    rows = _interpolation(boxes[:, 1], boxes[:, 3], height, masks.shape[-2])  # [K, H, M]
    cols = _interpolation(boxes[:, 0], boxes[:, 2], width, masks.shape[-1])  # [K, W, M]
    return rows @ masks.float() @ cols.transpose(1, 2)


def _interpolation(lo: Tensor, hi: Tensor, length: int, cells: int) -> Tensor:
    """[K, length, cells]: the bilinear weights of each of `cells` mask cells for each pixel centre
    (p + 0.5) of an image axis of `length` pixels, with the mask spread over [lo, hi] (zero outside)."""
    centres = torch.arange(length, device=lo.device, dtype=torch.float32) + 0.5
    extent = (hi - lo).clamp(min=1e-6)
    source = (centres[None, :] - lo[:, None]) / extent[:, None] * cells - 0.5  # in mask cells
    grid = torch.arange(cells, device=lo.device, dtype=torch.float32)
    return (1 - (source[:, :, None] - grid).abs()).clamp(min=0)
