"""Loss functions selected from config (`loss_cls`, `loss_box`, `loss_obj`, ...). Each returns a sum
times its `loss_weight`; the head divides by its normaliser (the number of positives for SSD and
RetinaNet, the number of images for YOLOv3) so that the weights in the config mean the same thing
whatever the batch.

Box losses on encoded deltas take `(pred_deltas, target_deltas)`; those with `decoded = True` (GIoU,
DIoU, CIoU) take `(pred_boxes, gt_boxes)` in xyxy pixels, and the heads decode before calling them.

The losses of the anchor-free and task-aligned heads (the IoU family here; quality focal, varifocal,
distribution focal and CenterNet's Gaussian focal in `soft_target_losses.py`) also take an optional
per-element `weight` (GFL weights its box terms by the predicted score) and a `reduction`: "sum" (the
default, as above), "mean", or "none" for the per-element values (a dynamic assigner's cost matrix).
"""
from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import (
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    sigmoid_focal_loss,
)

from ..registry import LOSSES
from ..rules import NonNegativeFloat, OneOf, PositiveFloat, Range

Reduction = Annotated[str, OneOf("sum", "mean", "none")]


def reduce_loss(loss: Tensor, weight: Tensor | None, reduction: str, loss_weight: float) -> Tensor:
    """Per-element `loss` times `weight` (broadcast; None for 1), then summed, averaged or kept, times
    `loss_weight`. The mean of an empty tensor is 0 here (a batch without positives), not NaN."""
    if weight is not None:
        loss = loss * weight
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":
        loss = loss.sum() / max(loss.numel(), 1)
    return loss_weight * loss


@LOSSES.register()
class HardNegativeCrossEntropyLoss:
    """Softmax cross-entropy over positives plus the hardest negatives (SSD, Liu et al. 2016, sec. 2.2).

    Per image, negatives are ranked by their loss and the top `neg_pos_ratio` x (positives of that
    image) are kept. Background is logit 0.

    Args:
        neg_pos_ratio: negatives kept per positive (3 in the paper).
        loss_weight: multiplier on the returned sum.
    """

    def __init__(self, neg_pos_ratio: PositiveFloat = 3.0, loss_weight: NonNegativeFloat = 1.0) -> None:
        self.neg_pos_ratio = neg_pos_ratio
        self.loss_weight = loss_weight

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Args:
            logits: [B, P, C + 1] class logits, background first.
            targets: int64 [B, P]: 0 background, 1..C object class + 1, -1 ignored.

        Returns:
            scalar: summed loss over the selected priors, times `loss_weight`.
        """
        ignored = targets < 0
        loss = F.cross_entropy(
            logits.flatten(0, 1), targets.clamp(min=0).flatten(), reduction="none"
        ).view_as(targets)
        positive = targets > 0
        num_negative = (self.neg_pos_ratio * positive.sum(dim=1, keepdim=True)).long()
        negative_loss = loss.detach().clone()
        negative_loss[positive | ignored] = -float("inf")
        # Rank of each prior's loss within its image (0 = hardest) via the double-argsort trick.
        order = negative_loss.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        hard_negative = (rank < num_negative) & ~positive & ~ignored
        return self.loss_weight * (loss[positive].sum() + loss[hard_negative].sum())


@LOSSES.register()
class SmoothL1Loss:
    """Huber-style smooth L1 on regression targets (beta=1 as in Fast R-CNN and SSD)."""

    def __init__(self, beta: NonNegativeFloat = 1.0, loss_weight: NonNegativeFloat = 1.0) -> None:
        self.beta = beta
        self.loss_weight = loss_weight

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: [N, 4] encoded deltas. Returns the sum, times `loss_weight`."""
        return self.loss_weight * F.smooth_l1_loss(pred, target, beta=self.beta, reduction="sum")


@LOSSES.register()
class L1Loss:
    """Plain L1 on regression targets."""

    def __init__(self, loss_weight: NonNegativeFloat = 1.0) -> None:
        self.loss_weight = loss_weight

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.loss_weight * F.l1_loss(pred, target, reduction="sum")


@LOSSES.register()
class FocalLoss:
    """Sigmoid focal loss FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t) (Lin et al. 2017), summed;
    torchvision.ops.sigmoid_focal_loss does the arithmetic.

    Args:
        alpha: weight of the positive class (0.25 in the paper); negative means no weighting.
        gamma: focusing exponent (2 in the paper).
        loss_weight: multiplier on the returned sum.
    """

    def __init__(self, alpha: Annotated[float, Range(hi=1)] = 0.25, gamma: NonNegativeFloat = 2.0,
                 loss_weight: NonNegativeFloat = 1.0) -> None:
        self.alpha, self.gamma, self.loss_weight = alpha, gamma, loss_weight

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits, targets: [N, C]; targets are one-hot (all zeros for background). Returns the sum."""
        return self.loss_weight * sigmoid_focal_loss(
            logits, targets.to(logits.dtype), self.alpha, self.gamma, "sum"
        )


@LOSSES.register()
class BCEWithLogitsLoss:
    """Binary cross-entropy on logits, summed: YOLOv3's objectness, class and centre-offset terms
    (independent logistic classifiers instead of a softmax, Redmon & Farhadi 2018, sec. 2.2)."""

    def __init__(self, loss_weight: NonNegativeFloat = 1.0) -> None:
        self.loss_weight = loss_weight

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits, targets: same shape; targets in [0, 1] (soft targets allowed). Returns the sum."""
        return self.loss_weight * F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), reduction="sum"
        )


@LOSSES.register()
class CrossEntropyLoss:
    """Softmax cross-entropy over C + 1 classes, background first, summed: the R-CNN box head's
    classifier (Girshick 2015), which scores each sampled RoI against every class and the background."""

    def __init__(self, loss_weight: NonNegativeFloat = 1.0) -> None:
        self.loss_weight = loss_weight

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        """logits: [N, C + 1]; targets: int64 [N], 0 background, 1..C object class + 1. Returns the sum."""
        return self.loss_weight * F.cross_entropy(logits, targets, reduction="sum")


@LOSSES.register()
class MSELoss:
    """Squared error, summed (YOLOv3's width/height term on log-size targets)."""

    def __init__(self, loss_weight: NonNegativeFloat = 1.0) -> None:
        self.loss_weight = loss_weight

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.loss_weight * F.mse_loss(pred, target, reduction="sum")


class _IoULoss:
    """Base of the IoU-family box losses: a torchvision.ops function of decoded boxes, row by row.

    `decoded = True` tells the heads to pass boxes, not deltas.
    """

    decoded = True
    function: staticmethod

    def __init__(self, loss_weight: NonNegativeFloat = 1.0, reduction: Reduction = "sum") -> None:
        self.loss_weight, self.reduction = loss_weight, reduction

    def __call__(self, pred_boxes: Tensor, gt_boxes: Tensor, weight: Tensor | None = None) -> Tensor:
        """pred_boxes, gt_boxes: [N, 4] xyxy absolute; weight: [N] or None. Returns the reduction."""
        loss = type(self).function(pred_boxes.float(), gt_boxes.float(), reduction="none")
        return reduce_loss(loss, weight, self.reduction, self.loss_weight)


def squared_iou_loss(pred_boxes: Tensor, gt_boxes: Tensor, reduction: str = "none") -> Tensor:
    """1 - IoU^2 of [N, 4] xyxy box pairs, row by row (YOLOX's IOUloss, its default "iou" type); only
    reduction "none" (the `_IoULoss` base reduces)."""
    lt = torch.maximum(pred_boxes[:, :2], gt_boxes[:, :2])
    rb = torch.minimum(pred_boxes[:, 2:], gt_boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_pred = (pred_boxes[:, 2:] - pred_boxes[:, :2]).prod(dim=1)
    area_gt = (gt_boxes[:, 2:] - gt_boxes[:, :2]).prod(dim=1)
    return 1 - (inter / (area_pred + area_gt - inter + 1e-16)) ** 2


@LOSSES.register()
class IoULoss(_IoULoss):
    """1 - IoU^2: YOLOX's box loss (its IOUloss with loss_type "iou"); squaring keeps the gradient small
    for boxes that already overlap well. No gradient when the boxes do not overlap: YOLOX's SimOTA only
    trains points whose predictions overlap their object (GIoULoss is the option that pulls them in)."""

    function = staticmethod(squared_iou_loss)


@LOSSES.register()
class GIoULoss(_IoULoss):
    """1 - IoU + (area of the enclosing box not covered by the union) / (enclosing area): generalised
    IoU (Rezatofighi et al. 2019), which still has a gradient when the boxes do not overlap
    (torchvision.ops.generalized_box_iou_loss). FCOS's box loss."""

    function = staticmethod(generalized_box_iou_loss)


@LOSSES.register()
class DIoULoss(_IoULoss):
    """1 - IoU + (centre distance)^2 / (diagonal of the enclosing box)^2: distance IoU (Zheng et al.
    2020), which pulls the centres together directly (torchvision.ops.distance_box_iou_loss)."""

    function = staticmethod(distance_box_iou_loss)


@LOSSES.register()
class CIoULoss(_IoULoss):
    """DIoU plus alpha * v, v = (4 / pi^2) (atan(w_gt / h_gt) - atan(w / h))^2 the aspect-ratio
    discrepancy and alpha = v / (1 - IoU + v): complete IoU (Zheng et al. 2020; YOLOv4, YOLOv8)
    (torchvision.ops.complete_box_iou_loss)."""

    function = staticmethod(complete_box_iou_loss)


def loss_sum(losses: dict[str, Tensor]) -> Tensor:
    """Total of the loss terms (the one to backpropagate)."""
    return torch.stack(list(losses.values())).sum()
