"""Faster R-CNN's RoI head (Ren et al. 2015; Girshick 2015): sampled RoIs, pooled, classified, regressed;
with a mask branch, Mask R-CNN's (He et al. 2017)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import HEADS
from ...rules import IoUThreshold, NonNegativeFloat, PositiveInt, Probability
from ...structures import Batch, Detections
from .bbox_head import (
    RoISamples,
    Shared2FCBBoxHead,
    box_head_losses,
    roi_detections,
    sample_rois,
)
from .mask_head import mask_targets


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
        mask_roi_extractor, mask_head: Mask R-CNN's branch (both or neither; `FCNMaskHead`): trained
            on the sampled positives against their objects' masks (`loss_mask`); at test it pools the
            final detections' boxes and pastes their class's mask into the original image.
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
        mask_roi_extractor: nn.Module | None = None,
        mask_head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if (mask_roi_extractor is None) != (mask_head is None):
            raise ConfigError("StandardRoIHead: mask_roi_extractor and mask_head go together; "
                              "set both or neither")
        self.num_classes = num_classes
        self.roi_extractor, self.assigner, self.sampler, self.coder = roi_extractor, assigner, sampler, coder
        self.loss_cls, self.loss_box = loss_cls, loss_box
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.max_detections, self.min_size = max_detections, min_size
        pooled = in_channels[0] * roi_extractor.output_size ** 2
        self.bbox_head = Shared2FCBBoxHead(pooled, fc_channels, num_classes)
        self.mask_roi_extractor, self.mask_head = mask_roi_extractor, mask_head

    def loss(self, features: list[Tensor], proposals: list[Tensor], batch: Batch) -> dict[str, Tensor]:
        """{"loss_cls", "loss_box"} of a batch, and "loss_mask" with a mask head.

        Args:
            features: the neck's maps, finest first.
            proposals: per image [n_i, 4] xyxy input pixels (the RPN's, without gradient).
            batch: its targets (boxes in the input's pixels, labels 0..C-1, ignore flags) and sizes.
        """
        samples = sample_rois(proposals, batch.targets, self.assigner, self.sampler)
        logits, deltas = self.bbox_head(self.roi_extractor(features, samples.rois))
        cls, box = box_head_losses(logits, deltas, samples, self.coder, self.loss_cls, self.loss_box)
        if self.mask_head is None:
            return {"loss_cls": cls, "loss_box": box}
        return {"loss_cls": cls, "loss_box": box, "loss_mask": self.mask_loss(features, samples, batch)}

    def mask_loss(self, features: list[Tensor], samples: RoISamples, batch: Batch) -> Tensor:
        """`loss_mask` on the sampled positives (the first RoIs of each image), each against its
        object's mask cropped to it (`mask_targets`)."""
        positives = [rois[:len(m)] for rois, m in zip(samples.rois, samples.matched)]
        logits = self.mask_head(self.mask_roi_extractor(features, positives))
        labels = samples.labels[samples.labels > 0] - 1
        targets = mask_targets(batch.targets, positives, samples.matched, logits.shape[-1])
        return self.mask_head.loss(logits, labels, targets)

    @torch.no_grad()
    def predict(self, features: list[Tensor], proposals: list[Tensor], batch: Batch) -> list[Detections]:
        """Detections per image, in original pixels (see the class docstring)."""
        logits, deltas = self.bbox_head(self.roi_extractor(features, proposals))
        results = roi_detections(self, batch, proposals, logits, deltas)
        return results if self.mask_head is None else self.add_masks(features, results, batch)

    def add_masks(self, features: list[Tensor], results: list[Detections], batch: Batch) -> list[Detections]:
        """`results` with `masks`: each detection's box taken back to input pixels (the inverse of
        the test-time resize), pooled, its class's mask pasted into the original image."""
        rois = [(d.boxes * d.boxes.new_tensor(s * 2) + d.boxes.new_tensor(o * 2))
                for d, s, o in zip(results, batch.scales, batch.offsets)]
        logits = self.mask_head(self.mask_roi_extractor(features, rois)).split([len(d) for d in results])
        return [replace(d, masks=self.mask_head.paste(m, d.labels, d.boxes, size))
                for d, m, size in zip(results, logits, batch.orig_sizes)]
