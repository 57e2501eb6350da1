"""YOLOv3's head (Redmon & Farhadi 2018): per scale a 3x3 conv and a 1x1 conv to A x (4 + 1 + C) outputs."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import HEADS
from ...rules import IoUThreshold, PositiveFloat, PositiveInt, PositiveInts, Probability
from ...structures import Batch, Detections, Instances
from ..assigners import IGNORED
from ..backbones.darknet import ConvBNAct
from ..postprocess import keep_topk, postprocess_dense, preselect_priors
from .base import flatten_levels, match_batch


@dataclass
class YOLOOutputs:
    """Raw predictions of the YOLOv3 head for a batch, all levels concatenated."""

    raw: Tensor  # [B, P, 5 + C]: tx, ty, tw, th, objectness logit, C class logits
    feature_shapes: list[tuple[int, int]]


@HEADS.register()
class YOLOv3Head(nn.Module):
    """Three scales (strides 8, 16, 32), three priors each; per prior a box (tx, ty, tw, th), an
    objectness logit and C independent class logits (BCE, not softmax, so labels may overlap).

    Loss (the terms of mmdetection's YOLOv3, whose recipe gives the published COCO numbers): each
    object is matched to one prior by `assigner` (YOLOAssigner); `loss_obj` (BCE) over positive and
    negative priors (ignored ones excluded), `loss_cls` (BCE on one-hot labels), `loss_xy` (BCE of
    sigmoid(tx, ty) against the centre's offset in its cell) and `loss_wh` (squared error on
    log-size ratios) over the positives. Each term is summed over priors and divided by the number of
    images, as Darknet does; the `loss_weight`s come from the config (mmdetection: 1, 1, 2, 2).

    Inference: objectness above `obj_threshold`, the `topk_candidates` most object-like priors, class
    score = objectness x class probability above `score_threshold` (a prior may give several
    classes), class-aware NMS at `nms_iou`, the `max_detections` best (mmdetection: 0.005, 1000, 0.05,
    0.45, 100).

    Args:
        num_classes: object classes.
        in_channels: channels of the neck's maps, finest first.
        out_channels: channels of the 3x3 conv of each scale (YOLOv3: 256, 512, 1024).
        prior_generator: YOLOPriorGenerator (per-level anchor shapes and strides).
        assigner, coder: YOLOAssigner, YOLOCoder.
        loss_cls, loss_obj, loss_xy, loss_wh: built losses.
        obj_prior_objects: the objectness biases start so that about this many priors per 608x608
            image are object-like at each level, and the class biases at probability 0.01
            (mmdetection's and ultralytics' init; it spares the first iterations a flood of
            negatives).
    """

    def __init__(
        self,
        num_classes: PositiveInt,
        in_channels: Sequence[int],
        prior_generator: Callable,
        assigner: Callable,
        coder: object,
        loss_cls: Callable,
        loss_obj: Callable,
        loss_xy: Callable,
        loss_wh: Callable,
        out_channels: PositiveInts = (256, 512, 1024),
        obj_prior_objects: PositiveFloat = 8.0,
        score_threshold: Probability = 0.05,
        obj_threshold: Probability = 0.005,
        nms_iou: IoUThreshold = 0.45,
        topk_candidates: PositiveInt = 1000,
        max_detections: PositiveInt = 100,
        norm_eps: PositiveFloat = 1e-5,
        norm_momentum: Probability = 0.1,
    ) -> None:
        super().__init__()
        anchors = prior_generator.num_anchors
        if not len(anchors) == len(in_channels) == len(out_channels):
            raise ConfigError(
                f"YOLOv3Head: {len(in_channels)} input maps, {len(out_channels)} out_channels and "
                f"{len(anchors)} prior levels must agree"
            )
        self.num_classes = num_classes
        self.prior_generator, self.assigner, self.coder = prior_generator, assigner, coder
        self.loss_cls, self.loss_obj, self.loss_xy, self.loss_wh = loss_cls, loss_obj, loss_xy, loss_wh
        self.score_threshold, self.obj_threshold, self.nms_iou = score_threshold, obj_threshold, nms_iou
        self.topk_candidates, self.max_detections = topk_candidates, max_detections
        norm = {"norm_eps": norm_eps, "norm_momentum": norm_momentum}
        self.bridges = nn.ModuleList(ConvBNAct(c, o, 3, **norm) for c, o in zip(in_channels, out_channels))
        self.preds = nn.ModuleList(
            nn.Conv2d(o, a * (5 + num_classes), 1) for o, a in zip(out_channels, anchors)
        )
        self._init_weights(obj_prior_objects)

    def _init_weights(self, objects: float) -> None:
        gen = self.prior_generator
        for conv, stride, a in zip(self.preds, gen.strides, gen.num_anchors):
            nn.init.normal_(conv.weight, std=0.01)
            bias = conv.bias.data.view(a, -1)
            bias.zero_()
            prob = min(objects / (608 / stride) ** 2, 0.5)
            bias[:, 4] = -math.log((1 - prob) / prob)
            bias[:, 5:] = -math.log((1 - 0.01) / 0.01)

    def forward(self, features: list[Tensor]) -> YOLOOutputs:
        per_level = [p(b(f)) for p, b, f in zip(self.preds, self.bridges, features)]
        raw = flatten_levels(per_level, 5 + self.num_classes)
        return YOLOOutputs(raw, [tuple(f.shape[-2:]) for f in features])

    def _priors(self, outputs: YOLOOutputs, image_size: Sequence[int]) -> tuple[Tensor, Tensor]:
        device = outputs.raw.device
        gen = self.prior_generator
        shapes = outputs.feature_shapes
        return gen(shapes, tuple(image_size), device), gen.strides_of(shapes, device)

    def loss(
        self, outputs: YOLOOutputs, targets: list[Instances], image_size: Sequence[int]
    ) -> dict[str, Tensor]:
        """Args:
            outputs: this head's forward output for a batch of B images.
            targets: per image, boxes (xyxy in the padded input's pixels), labels 0..C-1, ignore flags.
            image_size: (h, w) of the padded input tensor.

        Returns:
            {"loss_cls", "loss_obj", "loss_xy", "loss_wh"}, each summed and divided by B.
        """
        priors, strides = self._priors(outputs, image_size)
        gt_labels, gt_boxes = match_batch(self.assigner, priors, targets, strides=strides)
        positive = gt_labels >= 0
        valid = gt_labels != IGNORED
        raw = outputs.raw
        # Normalised by the images, not the positives: every rank holds the same number of images, so
        # no count is shared between ranks (unlike `num_positives` in the SSD and RetinaNet heads).
        num_images = float(len(targets))
        loss_obj = self.loss_obj(raw[..., 4][valid], positive[valid].to(raw.dtype))
        pos = raw[positive]
        onehot = nn.functional.one_hot(gt_labels[positive], self.num_classes).to(raw.dtype)
        batch = len(targets)
        target = self.coder.encode(
            priors.expand(batch, -1, -1)[positive], gt_boxes[positive], strides.expand(batch, -1)[positive]
        )
        return {
            "loss_cls": self.loss_cls(pos[:, 5:], onehot) / num_images,
            "loss_obj": loss_obj / num_images,
            "loss_xy": self.loss_xy(pos[:, :2], target[:, :2]) / num_images,
            "loss_wh": self.loss_wh(pos[:, 2:4], target[:, 2:4]) / num_images,
        }

    @torch.no_grad()
    def predict(self, outputs: YOLOOutputs, batch: Batch) -> list[Detections]:
        """The most object-like priors (`preselect_priors`), class score = objectness x class probability,
        then the shared post-processing (`postprocess_dense`): class-aware NMS, boxes in original pixels."""
        priors, strides = self._priors(outputs, batch.images.shape[-2:])
        raw = outputs.raw.float()
        results = []
        for i in range(len(batch)):
            obj = torch.sigmoid(raw[i, :, 4])
            index = preselect_priors(obj, self.obj_threshold, self.topk_candidates)
            scores = torch.sigmoid(raw[i, index, 5:]) * obj[index, None]  # [k, C]
            boxes = self.coder.decode(priors[index], raw[i, index, :4], strides[index])  # the k preselected
            results.append(postprocess_dense(
                scores, boxes, batch.image_sizes[i], score_threshold=self.score_threshold,
                topk_candidates=None, nms_iou=self.nms_iou, max_detections=self.max_detections,
                scale=batch.scales[i], offset=batch.offsets[i], orig_size=batch.orig_sizes[i],
            ))
        return results

    def decode(self, outputs: YOLOOutputs, image_size: Sequence[int],
               candidates: bool = False) -> tuple[Tensor, Tensor]:
        """Boxes [B, P, 4] and scores objectness x class probability [B, P, C] of every prior; with
        `candidates`, only the priors `preselect_priors` keeps (the `topk_candidates` most object-like
        above `obj_threshold`) keep their scores (as `predict`). See `DenseHead` (models/heads/base.py)
        for what exporting needs."""
        priors, strides = self._priors(outputs, image_size)
        raw = outputs.raw.float()
        boxes = self.coder.decode(priors, raw[..., :4], strides)
        obj = torch.sigmoid(raw[..., 4])
        if candidates:
            top = keep_topk(obj, self.topk_candidates, dim=1)
            obj = torch.where(top > self.obj_threshold, obj, torch.zeros_like(obj))
        return boxes, torch.sigmoid(raw[..., 5:]) * obj[..., None]
