"""R-FCN's RoI head (Dai et al. 2016): position-sensitive score maps computed once over the whole image,
each RoI scored by pooling every bin from its own group of maps and voting, so that no layer runs per
RoI (Faster R-CNN's box head runs two FC layers per RoI)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import ps_roi_align

from ...errors import ConfigError
from ...registry import HEADS
from ...rules import IoUThreshold, NonNegativeFloat, NonNegativeInt, PositiveInt, Probability
from ...structures import Batch, Detections
from .bbox_head import box_head_losses, roi_detections, sample_rois


def vote(maps: Tensor, rois: list[Tensor], k: int, spatial_scale: float, sampling_ratio: int) -> Tensor:
    """Position-sensitive RoI pooling, then the average vote over the k x k bins.

    Bin (i, j) of an RoI (row i, column j of its k x k grid) reads only channel `c * k * k + i * k + j`
    for output c (torchvision's `ps_roi_align` layout: output-major, then bins in row order), averaging
    bilinear samples inside the bin; the RoI's value for c is the mean of its k * k bins.

    Args:
        maps: [B, D * k * k, H, W] position-sensitive maps.
        rois: per image [n_i, 4] xyxy in input pixels.
        k: bins per RoI side.
        spatial_scale: 1 / the maps' stride.
        sampling_ratio: samples per bin side (0: adaptive).

    Returns:
        [sum n_i, D], RoIs in image order.
    """
    pooled = ps_roi_align(maps, [r.to(maps.dtype) for r in rois], k, spatial_scale, sampling_ratio)
    return pooled.mean(dim=(2, 3))


@HEADS.register()
class RFCNRoIHead(nn.Module):
    """R-FCN on one feature map: a 1x1 conv to `hidden_channels` (ReLU), then two 1x1 convs giving
    k * k * (C + 1) position-sensitive class maps and k * k * 4 box maps (class-agnostic deltas, as
    the paper); each RoI's C + 1 logits and 4 deltas are the votes (`vote`) of its k x k bins.

    Loss: exactly `StandardRoIHead`'s: the objects added to the proposals, matched by `assigner`,
    `sampler` draws the RoIs, `loss_cls` (softmax cross-entropy over C + 1) and `loss_box` (deltas from
    `coder`, stds 0.1, 0.1, 0.2, 0.2) divided by the number sampled. No OHEM (the paper's R-FCN trains
    on the 128 highest-loss of 300 RoIs; this head samples at random as Faster R-CNN does).

    Inference: softmax, background dropped, the shared box decoded; then Faster R-CNN's
    post-processing (`postprocess_dense`, the path every head ends in).

    Args:
        num_classes: object classes (without the background).
        in_channels: channels of the one feature map (the backbone's last stage, no neck).
        assigner, sampler, coder, loss_cls, loss_box: built components.
        stride: the feature map's stride in input pixels (ResNet's C5: 32).
        k: bins per RoI side (7 as the paper).
        hidden_channels: width of the 1x1 conv before the score maps (1024 as the paper).
        sampling_ratio: bilinear samples per bin side (0: adaptive).
        score_threshold, nms_iou, max_detections, min_size: as `StandardRoIHead`.
    """

    def __init__(
        self,
        num_classes: PositiveInt,
        in_channels: Sequence[int],
        assigner: Callable,
        sampler: Callable,
        coder: object,
        loss_cls: Callable,
        loss_box: Callable,
        stride: PositiveInt = 32,
        k: PositiveInt = 7,
        hidden_channels: PositiveInt = 1024,
        sampling_ratio: NonNegativeInt = 2,
        score_threshold: Probability = 0.05,
        nms_iou: IoUThreshold = 0.5,
        max_detections: PositiveInt = 100,
        min_size: NonNegativeFloat = 0.01,
    ) -> None:
        super().__init__()
        if len(in_channels) != 1:
            raise ConfigError(f"RFCNRoIHead: expects one feature map (no neck, backbone.out_strides=[32]); "
                              f"got {len(in_channels)} with channels {list(in_channels)}")
        self.num_classes, self.stride, self.k, self.sampling_ratio = num_classes, stride, k, sampling_ratio
        self.assigner, self.sampler, self.coder = assigner, sampler, coder
        self.loss_cls, self.loss_box = loss_cls, loss_box
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.max_detections, self.min_size = max_detections, min_size
        self.reduce = nn.Conv2d(in_channels[0], hidden_channels, 1)
        self.cls_maps = nn.Conv2d(hidden_channels, k * k * (num_classes + 1), 1)
        self.box_maps = nn.Conv2d(hidden_channels, k * k * 4, 1)
        # He initialisation for the ReLU layer (as the backbone's convs); small scores at first, deltas
        # smaller still (the box heads' initialisation).
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out", nonlinearity="relu")
        for layer, std in ((self.cls_maps, 0.01), (self.box_maps, 0.001)):
            nn.init.normal_(layer.weight, std=std)
        for layer in (self.reduce, self.cls_maps, self.box_maps):
            nn.init.zeros_(layer.bias)

    def forward(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        """[B, C_in, H, W] -> class maps [B, k * k * (C + 1), H, W] and box maps [B, k * k * 4, H, W]."""
        hidden = torch.relu(self.reduce(feature))
        return self.cls_maps(hidden), self.box_maps(hidden)

    def score(self, features: list[Tensor], rois: list[Tensor],
              input_size: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Logits [N, C + 1] and class-agnostic deltas [N, 1, 4] of the RoIs (per image [n_i, 4], xyxy
        input pixels) on the one map of `features`, for a padded input of `input_size` (h, w)."""
        feature = features[0]
        self._check_stride(feature, input_size)
        cls_maps, box_maps = self(feature)
        scale = 1.0 / self.stride
        logits = vote(cls_maps, rois, self.k, scale, self.sampling_ratio)
        deltas = vote(box_maps, rois, self.k, scale, self.sampling_ratio)
        return logits, deltas[:, None, :]

    def _check_stride(self, feature: Tensor, input_size: Sequence[int]) -> None:
        """The map must be the input divided by `stride` (rounded up, as ResNet's strided convs do); a
        wrong stride would pool every RoI from the wrong place without any other error."""
        expected = tuple(math.ceil(int(side) / self.stride) for side in input_size)
        if tuple(feature.shape[-2:]) != expected:
            h, w = input_size
            raise ConfigError(
                f"model.roi_head.stride={self.stride}: expected the stride of the feature map, which is "
                f"{feature.shape[-2]}x{feature.shape[-1]} for a {h}x{w} input (stride "
                f"{int(h) / feature.shape[-2]:g})"
            )

    def loss(self, features: list[Tensor], proposals: list[Tensor], batch: Batch) -> dict[str, Tensor]:
        """{"loss_cls", "loss_box"} of a batch.

        Args:
            features: one map [B, C_in, H, W] in a list (the backbone's last stage).
            proposals: per image [n_i, 4] xyxy input pixels (the RPN's, without gradient).
            batch: its targets (boxes in the input's pixels, labels 0..C-1, ignore flags) and sizes.
        """
        samples = sample_rois(proposals, batch.targets, self.assigner, self.sampler)
        logits, deltas = self.score(features, samples.rois, batch.images.shape[-2:])
        cls, box = box_head_losses(logits, deltas, samples, self.coder, self.loss_cls, self.loss_box)
        return {"loss_cls": cls, "loss_box": box}

    @torch.no_grad()
    def predict(self, features: list[Tensor], proposals: list[Tensor], batch: Batch) -> list[Detections]:
        """Detections per image, in original pixels (see the class docstring)."""
        logits, deltas = self.score(features, proposals, batch.images.shape[-2:])
        return roi_detections(self, batch, proposals, logits, deltas)
