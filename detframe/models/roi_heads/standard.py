"""Faster R-CNN's RoI head (Ren et al. 2015; Girshick 2015): sampled RoIs, pooled, classified, regressed."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ...registry import HEADS
from ...rules import IoUThreshold, NonNegativeFloat, PositiveInt, Probability
from ...structures import Batch, Detections
from .bbox_head import Shared2FCBBoxHead, box_head_losses, decode_per_class, detections, sample_rois


@HEADS.register()
class StandardRoIHead(nn.Module):
    """RoI features from `roi_extractor`, then a `Shared2FCBBoxHead` (class-specific deltas).

    Loss: the objects added to each image's proposals, matched by `assigner` (IoU >= 0.5 object, below
    background), `sampler` draws 512 per image (at most a quarter objects); `loss_cls` (softmax
    cross-entropy over C + 1) and `loss_box` (on the positives' deltas of their own class, from
    `coder`: stds 0.1, 0.1, 0.2, 0.2), both divided by the number sampled.

    Inference: softmax, background dropped, each class's box decoded; pairs scoring above
    `score_threshold`, clipped, sides under `min_size` dropped, class-aware NMS at `nms_iou`, the
    `max_detections` best, in original pixels (`postprocess_dense`, the path the dense heads end in).

    Args:
        num_classes: object classes (without the background).
        in_channels: channels of each neck level (the RoI features have the first's).
        roi_extractor, assigner, sampler, coder, loss_cls, loss_box: built components.
        fc_channels: width of the box head's two hidden layers.
    """

    def __init__(
        self,
        num_classes: PositiveInt,
        in_channels: Sequence[int],
        roi_extractor: nn.Module,
        assigner: Callable,
        sampler: Callable,
        coder: object,
        loss_cls: Callable,
        loss_box: Callable,
        fc_channels: PositiveInt = 1024,
        score_threshold: Probability = 0.05,
        nms_iou: IoUThreshold = 0.5,
        max_detections: PositiveInt = 100,
        min_size: NonNegativeFloat = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.roi_extractor, self.assigner, self.sampler, self.coder = roi_extractor, assigner, sampler, coder
        self.loss_cls, self.loss_box = loss_cls, loss_box
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.max_detections, self.min_size = max_detections, min_size
        pooled = in_channels[0] * roi_extractor.output_size ** 2
        self.bbox_head = Shared2FCBBoxHead(pooled, fc_channels, num_classes)

    def loss(self, features: list[Tensor], proposals: list[Tensor], batch: Batch) -> dict[str, Tensor]:
        """{"loss_cls", "loss_box"} of a batch.

        Args:
            features: the neck's maps, finest first.
            proposals: per image [n_i, 4] xyxy input pixels (the RPN's, without gradient).
            batch: its targets (boxes in the input's pixels, labels 0..C-1, ignore flags) and sizes.
        """
        samples = sample_rois(proposals, batch.targets, self.assigner, self.sampler)
        logits, deltas = self.bbox_head(self.roi_extractor(features, samples.rois))
        cls, box = box_head_losses(logits, deltas, samples, self.coder, self.loss_cls, self.loss_box)
        return {"loss_cls": cls, "loss_box": box}

    @torch.no_grad()
    def predict(self, features: list[Tensor], proposals: list[Tensor], batch: Batch) -> list[Detections]:
        """Detections per image, in original pixels (see the class docstring)."""
        logits, deltas = self.bbox_head(self.roi_extractor(features, proposals))
        scores = torch.softmax(logits.float(), dim=1)[:, 1:]
        sizes = [len(p) for p in proposals]
        return [detections(self, batch, i, s, decode_per_class(self.coder, rois, d.float()))
                for i, (rois, s, d) in enumerate(zip(proposals, scores.split(sizes), deltas.split(sizes)))]
