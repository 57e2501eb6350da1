"""Cascade R-CNN's RoI head (Cai & Vasconcelos 2018): box heads in sequence, each trained at a higher
IoU on the boxes the previous one refined."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...ops.boxes import clip_boxes
from ...registry import HEADS
from ...rules import Each, IoUThreshold, NonNegativeFloat, PositiveInt, Probability, Range
from ...structures import Batch, Detections
from ..assigners import MaxIoUAssigner
from ..coders import DeltaXYWHCoder
from .bbox_head import Shared2FCBBoxHead, box_head_losses, decode_per_class, detections, sample_rois

STDS = ((0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))


@HEADS.register()
class CascadeRoIHead(nn.Module):
    """`len(stage_ious)` box heads (`Shared2FCBBoxHead`, class-agnostic deltas) run one after another.

    Training: stage t samples RoIs (objects added, `sampler`) matched at IoU >= `stage_ious[t]` from
    the boxes of stage t - 1 (the RPN's proposals for the first), and its terms `loss_s{t+1}_cls`,
    `loss_s{t+1}_box` (as Faster R-CNN's, divided by the number sampled) are weighted by
    `stage_weights[t]`; its regressed boxes, detached and clipped, without the added objects, are
    the next stage's input. Each stage's deltas are normalised by its own `stage_stds`: the later
    stages' regressions are finer, the paper's (0.1, 0.1, 0.2, 0.2), halved, then a third.

    Inference: every stage scores and regresses the previous stage's boxes; the score of a box is the
    mean of the stages' softmax, its box the last stage's, then Faster R-CNN's post-processing.

    Args:
        num_classes, in_channels, roi_extractor, sampler, loss_cls, loss_box, fc_channels,
        score_threshold, nms_iou, max_detections, min_size: as `StandardRoIHead`.
        stage_ious: the IoU at which each stage's RoIs are positive (0.5, 0.6, 0.7).
        stage_stds: each stage's delta stds.
        stage_weights: each stage's loss weight (1, 0.5, 0.25).
    """

    def __init__(
        self,
        num_classes: PositiveInt,
        in_channels: Sequence[int],
        roi_extractor: nn.Module,
        sampler: Callable,
        loss_cls: Callable,
        loss_box: Callable,
        stage_ious: Annotated[Sequence[float], Each(Range(0, 1, lo_open=True))] = (0.5, 0.6, 0.7),
        stage_stds: Sequence[Sequence[float]] = STDS,
        stage_weights: Annotated[Sequence[float], Each(Range(0))] = (1.0, 0.5, 0.25),
        fc_channels: PositiveInt = 1024,
        score_threshold: Probability = 0.05,
        nms_iou: IoUThreshold = 0.5,
        max_detections: PositiveInt = 100,
        min_size: NonNegativeFloat = 0.01,
    ) -> None:
        super().__init__()
        if not len(stage_ious) == len(stage_stds) == len(stage_weights) >= 1:
            raise ConfigError(f"CascadeRoIHead: stage_ious, stage_stds and stage_weights need one entry per "
                              f"stage; got {len(stage_ious)}, {len(stage_stds)} and {len(stage_weights)}")
        self.num_classes = num_classes
        self.roi_extractor, self.sampler = roi_extractor, sampler
        self.loss_cls, self.loss_box = loss_cls, loss_box
        self.assigners = [MaxIoUAssigner(iou, iou, match_low_quality=False) for iou in stage_ious]
        self.coders = [DeltaXYWHCoder(stds) for stds in stage_stds]
        self.stage_weights = [float(w) for w in stage_weights]
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.max_detections, self.min_size = max_detections, min_size
        pooled = in_channels[0] * roi_extractor.output_size ** 2
        self.stages = nn.ModuleList(Shared2FCBBoxHead(pooled, fc_channels, num_classes, class_agnostic=True)
                                    for _ in stage_ious)

    def loss(self, features: list[Tensor], proposals: list[Tensor], batch: Batch) -> dict[str, Tensor]:
        """{"loss_s1_cls", "loss_s1_box", "loss_s2_cls", ...} of a batch (see the class docstring)."""
        losses, rois, targets = {}, proposals, batch.targets
        for t, (stage, assigner, coder) in enumerate(zip(self.stages, self.assigners, self.coders)):
            samples = sample_rois(rois, targets, assigner, self.sampler)
            logits, deltas = stage(self.roi_extractor(features, samples.rois))
            cls, box = box_head_losses(logits, deltas, samples, coder, self.loss_cls, self.loss_box,
                                       self.stage_weights[t])
            losses[f"loss_s{t + 1}_cls"], losses[f"loss_s{t + 1}_box"] = cls, box
            if t + 1 < len(self.stages):
                boxes = decode_per_class(coder, torch.cat(samples.rois), deltas.detach())[:, 0]
                keep = ~samples.is_gt
                sizes = [len(r) for r in samples.rois]
                rois = [clip_boxes(b[k], size) for b, k, size in
                        zip(boxes.split(sizes), keep.split(sizes), batch.image_sizes)]
        return losses

    @torch.no_grad()
    def predict(self, features: list[Tensor], proposals: list[Tensor], batch: Batch) -> list[Detections]:
        """Detections per image, in original pixels (see the class docstring)."""
        rois, sizes = torch.cat(proposals), [len(p) for p in proposals]
        image_index = torch.repeat_interleave(torch.arange(len(sizes), device=rois.device),
                                              torch.tensor(sizes, device=rois.device))
        limits = rois.new_tensor([[w, h, w, h] for h, w in batch.image_sizes])[image_index]
        scores = 0.0
        for t, (stage, coder) in enumerate(zip(self.stages, self.coders)):
            logits, deltas = stage(self.roi_extractor(features, list(rois.split(sizes))))
            scores = scores + torch.softmax(logits.float(), dim=1) / len(self.stages)
            boxes = decode_per_class(coder, rois, deltas.float())
            if t + 1 < len(self.stages):
                rois = torch.minimum(boxes[:, 0].clamp(min=0), limits)
        return [detections(self, batch, i, s[:, 1:], b)
                for i, (s, b) in enumerate(zip(scores.split(sizes), boxes.split(sizes)))]
