"""SimOTA, YOLOX's dynamic assignment (Ge et al. 2021, sec. 2.2): each object takes the k points that
would cost least to make its positives, k from how well the current predictions already fit it.

The whole batch is assigned in one call, on [B, M, P] tensors (objects padded to M per image with a
validity mask), with no Python loop over images or objects: per-object dynamic k becomes a mask on the
rank of each point in its object's cost order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...registry import ASSIGNERS
from ...rules import NonNegativeFloat, PositiveFloat, PositiveInt
from .max_iou import IGNORED, NEGATIVE

# Cost of a point outside an object's box-and-centre region (YOLOX's 100000): such a point is only taken
# when the object has fewer candidates in both regions than its dynamic k.
OUTSIDE_COST = 1e5
# Cost of a pair that can never match: a point outside every object's region, a padded object.
NEVER = float("inf")


@dataclass
class DynamicAssignment:
    """Result of assigning the P points of B images at once."""

    gt_index: Tensor  # int64 [B, P]: >= 0 the matched object's index in its image, NEGATIVE or IGNORED
    iou: Tensor  # float [B, P]: IoU of each point's predicted box with its matched object (0 elsewhere)

    @property
    def positive(self) -> Tensor:
        return self.gt_index >= 0


def pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of every pair, image by image: [B, M, 4] and [B, P, 4] xyxy -> [B, M, P].

    torchvision's `box_iou` is for one image; this is the same formula broadcast over the batch."""
    lt = torch.maximum(boxes1[:, :, None, :2], boxes2[:, None, :, :2])
    rb = torch.minimum(boxes1[:, :, None, 2:], boxes2[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(dim=-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(dim=-1)
    return inter / (area1[:, :, None] + area2[:, None, :] - inter).clamp(min=1e-9)


@ASSIGNERS.register()
class SimOTAAssigner:
    """YOLOX's SimOTA, batched.

    1. Centre prior: point p is in object g's region when its centre lies inside the box, or within
       `center_radius` strides of the box centre in x and in y. Points in no object's region stay
       negative; within the region, a point not in both the box and the centre square costs
       `OUTSIDE_COST` more (YOLOX's "in boxes and centre" bonus).
    2. Cost of (g, p): BCE of the predicted class scores (sqrt(class x objectness), as YOLOX) against
       g's one-hot label, summed over classes, plus `iou_weight` x -log IoU of p's predicted box with g.
    3. Dynamic k of g: the sum of its `candidate_topk` largest IoUs over the region's points,
       truncated, at least 1. g takes its k lowest-cost points (a rank < k mask on the cost order).
    4. A point taken by several objects goes to the one it costs least.

    Ignored objects (VOC difficult, COCO crowd) compete like the others; the points they win are
    IGNORED (no objectness, class or box loss), so that a crowd region neither trains as background nor
    as an object. Images without objects (all of `gt_valid` False) get only negatives.

    Args:
        center_radius: half-side of the centre square, in strides (YOLOX: 2.5).
        candidate_topk: IoUs summed for the dynamic k (YOLOX: 10).
        iou_weight: weight of the IoU cost (YOLOX: 3).
        cls_weight: weight of the class cost (YOLOX: 1).
    """

    def __init__(self, center_radius: PositiveFloat = 2.5, candidate_topk: PositiveInt = 10,
                 iou_weight: NonNegativeFloat = 3.0, cls_weight: NonNegativeFloat = 1.0) -> None:
        self.center_radius, self.candidate_topk = center_radius, candidate_topk
        self.iou_weight, self.cls_weight = iou_weight, cls_weight

    @torch.no_grad()
    def __call__(self, points: Tensor, strides: Tensor, pred_scores: Tensor, pred_boxes: Tensor,
                 gt_boxes: Tensor, gt_labels: Tensor, gt_valid: Tensor,
                 gt_ignore: Tensor | None = None) -> DynamicAssignment:
        """Args:
            points: [P, 2] (x, y) centres of the points' cells, input pixels.
            strides: [P] stride of each point's level.
            pred_scores: [B, P, C] predicted class probabilities (YOLOX: sqrt(class x objectness)).
            pred_boxes: [B, P, 4] predicted boxes, xyxy input pixels.
            gt_boxes: [B, M, 4] objects, xyxy input pixels, padded to M per image.
            gt_labels: int64 [B, M] classes 0..C-1 (anything where not valid).
            gt_valid: bool [B, M] which rows are real objects.
            gt_ignore: bool [B, M] ignored objects, or None.
        """
        batch, num_points = pred_scores.shape[:2]
        if gt_boxes.shape[1] == 0:
            return DynamicAssignment(
                torch.full((batch, num_points), NEGATIVE, dtype=torch.long, device=pred_scores.device),
                pred_scores.new_zeros((batch, num_points)))
        in_box, in_centre = self._regions(points, strides, gt_boxes)  # [B, M, P] each
        in_region = (in_box | in_centre) & gt_valid[:, :, None]
        candidate = in_region.any(dim=1, keepdim=True)  # [B, 1, P]: points YOLOX computes costs for
        iou = pairwise_iou(gt_boxes.float(), pred_boxes.float()) * candidate  # [B, M, P]
        cost = (self.cls_weight * self._class_cost(pred_scores.float(), gt_labels)
                + self.iou_weight * -torch.log(iou + 1e-8)
                + OUTSIDE_COST * ~(in_box & in_centre))
        cost = cost.masked_fill(~(candidate & gt_valid[:, :, None]), NEVER)
        chosen = self._lowest_k(cost, self._dynamic_k(iou))  # [B, M, P]
        cost = cost.masked_fill(~chosen, NEVER)
        best_cost, best = cost.min(dim=1)  # [B, P]
        matched = torch.isfinite(best_cost)
        gt_index = torch.where(matched, best, torch.full_like(best, NEGATIVE))
        matched_iou = iou.gather(1, best[:, None]).squeeze(1) * matched
        if gt_ignore is not None:
            gt_index[matched & gt_ignore.gather(1, best)] = IGNORED
        return DynamicAssignment(gt_index, matched_iou)

    def _regions(self, points: Tensor, strides: Tensor, gt_boxes: Tensor) -> tuple[Tensor, Tensor]:
        """bool [B, M, P] twice: point inside the box; point within `center_radius` strides of its centre."""
        x, y = points[:, 0], points[:, 1]  # [P]
        x1, y1, x2, y2 = (gt_boxes[..., i, None] for i in range(4))  # [B, M, 1]
        in_box = (x > x1) & (x < x2) & (y > y1) & (y < y2)
        radius = self.center_radius * strides
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        in_centre = ((x - cx).abs() < radius) & ((y - cy).abs() < radius)
        return in_box, in_centre

    @staticmethod
    def _class_cost(scores: Tensor, gt_labels: Tensor) -> Tensor:
        """[B, M, P] BCE of every point's C scores against each object's one-hot label, summed over classes.

        As -sum_c log(1 - s_c) (every class a negative), corrected at the object's class, so that no
        [B, M, P, C] tensor is made."""
        scores = scores.clamp(1e-6, 1 - 1e-6)
        negative = -torch.log1p(-scores)  # [B, P, C]
        correction = (-torch.log(scores) - negative).transpose(1, 2)  # [B, C, P]
        labels = gt_labels.clamp(0, scores.shape[-1] - 1)[:, :, None].expand(-1, -1, scores.shape[1])
        return negative.sum(dim=-1)[:, None, :] + correction.gather(1, labels)

    def _dynamic_k(self, iou: Tensor) -> Tensor:
        """int64 [B, M]: truncated sum of each object's `candidate_topk` largest IoUs, at least 1."""
        top = iou.topk(min(self.candidate_topk, iou.shape[-1]), dim=-1).values
        return top.sum(dim=-1).long().clamp(min=1)

    def _lowest_k(self, cost: Tensor, k: Tensor) -> Tensor:
        """bool [B, M, P]: each object's k lowest-cost points of finite cost.

        k <= `candidate_topk` (a sum of that many IoUs), so a partial sort of that length gives every
        rank that can be taken; rank < k selects per object without a loop."""
        depth = min(self.candidate_topk, cost.shape[-1])
        lowest, index = cost.topk(depth, dim=-1, largest=False)  # [B, M, depth], ascending
        rank = torch.arange(depth, device=cost.device)
        take = (rank < k[..., None]) & torch.isfinite(lowest)
        return torch.zeros_like(cost, dtype=torch.bool).scatter(-1, index, take)
