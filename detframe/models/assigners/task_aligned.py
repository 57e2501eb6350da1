"""TOOD's task-aligned assignment (Feng et al. 2021, sec. 3.2), as YOLOv8 uses it: the positives of an
object are the points whose prediction is already good at both tasks, classifying it and locating it.

For object g and point p, with s the predicted probability of g's class at p and u the IoU of p's
predicted box with g, the alignment metric is t = s^alpha * u^beta. The candidates of g are the points
inside its box (and, with `center_radius`, within that many strides of its centre); its positives are
the `topk` candidates of largest t. A point that several objects claim goes to the one its predicted
box overlaps most. The classification target of a positive is soft: t normalised per object so that
the object's best point gets the best IoU any of its points reaches (TOOD eq. 10, YOLOv8's
`norm_align_metric`), so that the classifier learns a score that ranks boxes by their quality.

All of it runs on [B, M, P] tensors (B images, M objects padded per image, P points), with no Python
loop over images or objects: a padded object is invalid and claims nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...registry import ASSIGNERS
from ...rules import NonNegativeFloat, PositiveFloat, PositiveInt
from .max_iou import IGNORED, NEGATIVE

EPS = 1e-9


@dataclass
class SoftAssignment:
    """What a dense head trains each point on, for a batch."""

    labels: Tensor  # int64 [B, P]: the class of the object a point is assigned to, or NEGATIVE / IGNORED
    boxes: Tensor  # float32 [B, P, 4] xyxy, the assigned object's box (zeros elsewhere)
    scores: Tensor  # float32 [B, P] soft classification target of the assigned class (0 elsewhere)


def pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of [B, M, 4] with [B, P, 4] xyxy boxes -> [B, M, P] (torchvision's box_iou, batched)."""
    a, b = boxes1[:, :, None], boxes2[:, None]
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area1 = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area2 = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area1 + area2 - inter).clamp(min=EPS)


@ASSIGNERS.register()
class TaskAlignedAssigner:
    """Top-k points per object by t = s^alpha * u^beta among the points inside it.

    Ignored objects (VOC difficult, COCO crowd) take part like the others, and the points they win are
    IGNORED (neither positive nor negative), as in FCOSAssigner: a detection of a difficult raccoon is
    then neither taught nor punished. Padded objects (`gt_valid` False) take no part.

    Args:
        topk: positives per object at most (TOOD 13, YOLOv8 10).
        alpha: exponent of the class score in t (TOOD 1.0, YOLOv8 0.5).
        beta: exponent of the IoU in t (6.0 in both). alpha = beta = 0 makes t 1 inside the box: a
            static assignment of the `topk` points nearest the centre (see `__call__`), the ablation of
            the task alignment.
        center_radius: when set, a candidate must also lie within this many strides of the object's
            centre in x and in y (FCOS's centre sampling); None: anywhere inside the box.
    """

    def __init__(self, topk: PositiveInt = 13, alpha: NonNegativeFloat = 1.0, beta: NonNegativeFloat = 6.0,
                 center_radius: PositiveFloat | None = None) -> None:
        self.topk, self.alpha, self.beta, self.center_radius = topk, alpha, beta, center_radius

    @torch.no_grad()
    def __call__(self, scores: Tensor, pred_boxes: Tensor, points: Tensor, strides: Tensor,
                 gt_boxes: Tensor, gt_labels: Tensor, gt_valid: Tensor, gt_ignore: Tensor) -> SoftAssignment:
        """Args:
            scores: [B, P, C] predicted class probabilities (after the sigmoid).
            pred_boxes: [B, P, 4] predicted boxes, xyxy input pixels.
            points: [P, 2] (x, y) input pixels; strides: [P] their levels' strides.
            gt_boxes: [B, M, 4] xyxy input pixels, padded; gt_labels: int64 [B, M] (any value where
                padded); gt_valid: bool [B, M], False on padding; gt_ignore: bool [B, M].

        Returns:
            `SoftAssignment` of every point. Ties in t (alpha = beta = 0) are broken towards the point
            nearest the object's centre, so that the static variant takes the most central points.
        """
        batch, num_points = scores.shape[:2]
        if gt_boxes.shape[1] == 0:
            return SoftAssignment(torch.full((batch, num_points), NEGATIVE, dtype=torch.long,
                                             device=scores.device),
                                  scores.new_zeros(batch, num_points, 4), scores.new_zeros(batch, num_points))
        candidate = self._candidates(points, strides, gt_boxes) & gt_valid[..., None]  # [B, M, P]
        ious = pairwise_iou(gt_boxes, pred_boxes.float()) * candidate
        class_scores = scores.float().transpose(1, 2).gather(
            1, gt_labels.clamp(min=0)[..., None].expand(-1, -1, num_points))  # [B, M, P]
        metric = class_scores.pow(self.alpha) * ious.pow(self.beta) * candidate
        positive = self._topk(metric, points, gt_boxes) & candidate
        positive = self._resolve_conflicts(positive, ious)
        return self._targets(positive, metric, ious, gt_boxes, gt_labels, gt_ignore)

    def _candidates(self, points: Tensor, strides: Tensor, gt_boxes: Tensor) -> Tensor:
        """bool [B, M, P]: the point lies strictly inside the box (and near its centre, with a radius)."""
        x, y = points[:, 0], points[:, 1]
        x0, y0, x1, y1 = (gt_boxes[..., i, None] for i in range(4))
        inside = torch.stack((x - x0, y - y0, x1 - x, y1 - y)).amin(dim=0) > EPS
        if self.center_radius is None:
            return inside
        radius = self.center_radius * strides
        return (inside & ((x - (x0 + x1) / 2).abs() < radius) & ((y - (y0 + y1) / 2).abs() < radius))

    def _topk(self, metric: Tensor, points: Tensor, gt_boxes: Tensor) -> Tensor:
        """bool [B, M, P]: each object's `topk` points by `metric`, ties going to the most central."""
        centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        distance = (points[None, None] - centres[:, :, None]).norm(dim=-1)  # [B, M, P]
        # A tie-breaker under 1e-12, in float64 so that it survives next to t = 1: it orders equal
        # metrics (alpha = beta = 0) and ones too small to matter, by distance to the centre.
        key = metric.double() - 1e-12 * (distance / (distance.amax(dim=-1, keepdim=True) + EPS)).double()
        index = key.topk(min(self.topk, key.shape[-1]), dim=-1).indices
        return torch.zeros_like(metric, dtype=torch.bool).scatter_(-1, index, True)

    @staticmethod
    def _resolve_conflicts(positive: Tensor, ious: Tensor) -> Tensor:
        """A point positive for several objects stays positive for the one of highest IoU only."""
        shared = positive.sum(dim=1, keepdim=True) > 1  # [B, 1, P]
        best = torch.zeros_like(positive).scatter_(1, ious.argmax(dim=1, keepdim=True), True)
        return torch.where(shared, best & positive, positive)

    @staticmethod
    def _targets(positive: Tensor, metric: Tensor, ious: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
                 gt_ignore: Tensor) -> SoftAssignment:
        """Labels, boxes and soft scores per point from the [B, M, P] positives."""
        matched = positive.any(dim=1)  # [B, P]
        index = positive.float().argmax(dim=1)  # [B, P]: the one object of a positive point
        labels = gt_labels.gather(1, index)
        ignored = gt_ignore.gather(1, index)
        labels = torch.where(matched, torch.where(ignored, IGNORED, labels), NEGATIVE)
        boxes = gt_boxes.gather(1, index[..., None].expand(-1, -1, 4)) * matched[..., None]
        metric = metric * positive
        best_metric = metric.amax(dim=-1, keepdim=True)
        best_iou = (ious * positive).amax(dim=-1, keepdim=True)
        soft = (metric * best_iou / (best_metric + EPS)).amax(dim=1)  # [B, P]
        return SoftAssignment(labels, boxes, soft * (labels >= 0))
