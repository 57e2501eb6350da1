"""Max-IoU matching of priors to ground truth, with the best prior of each object forced positive."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...ops.boxes import box_iou
from ...registry import ASSIGNERS
from ...rules import IoUThreshold, Probability

NEGATIVE = -1  # background prior
IGNORED = -2  # neither positive nor negative (between thresholds, or matched to an ignored object)


@dataclass
class Assignment:
    """Result of matching P priors to G objects of one image."""

    gt_index: Tensor  # int64 [P]: >= 0 index of the matched object, NEGATIVE, or IGNORED
    max_iou: Tensor  # float [P]: best IoU of each prior with any object (0 when G == 0)

    @property
    def positive(self) -> Tensor:
        return self.gt_index >= 0


@ASSIGNERS.register()
class MaxIoUAssigner:
    """Each prior takes the object it overlaps most if IoU >= pos_iou; below neg_iou it is background,
    in between ignored. With `match_low_quality`, each object's best prior is then made positive for it
    whatever its IoU (SSD's "best prior per ground truth"; torchvision's SSDMatcher).

    With `match_all_ties`, every prior whose IoU equals an object's best (several anchors lying wholly
    inside a large object tie) becomes positive, each for the object it overlaps most: Detectron's
    and torchvision's Matcher(allow_low_quality_matches=True), which RetinaNet and Faster R-CNN use.

    Priors matched to an ignored object (VOC difficult, COCO crowd) are ignored, and ignored objects
    do not claim a best prior.
    """

    def __init__(
        self,
        pos_iou: IoUThreshold = 0.5,
        neg_iou: Probability = 0.5,
        min_pos_iou: Probability = 0.0,
        match_low_quality: bool = True,
        match_all_ties: bool = False,
    ) -> None:
        if neg_iou > pos_iou:
            raise ValueError(f"MaxIoUAssigner: neg_iou ({neg_iou}) must not exceed pos_iou ({pos_iou})")
        self.pos_iou, self.neg_iou, self.min_pos_iou = pos_iou, neg_iou, min_pos_iou
        self.match_low_quality, self.match_all_ties = match_low_quality, match_all_ties

    def __call__(self, priors: Tensor, gt_boxes: Tensor, gt_ignore: Tensor | None = None) -> Assignment:
        """Match priors [P, 4] to objects [G, 4] (both xyxy absolute); `gt_ignore` is bool [G]."""
        num_priors = priors.shape[0]
        if gt_boxes.numel() == 0:
            return Assignment(
                torch.full((num_priors,), NEGATIVE, dtype=torch.long, device=priors.device),
                priors.new_zeros(num_priors),
            )
        iou = box_iou(gt_boxes, priors)  # [G, P]
        max_iou, argmax = iou.max(dim=0)
        gt_index = torch.full_like(argmax, IGNORED)
        gt_index[max_iou < self.neg_iou] = NEGATIVE
        positive = max_iou >= self.pos_iou
        gt_index[positive] = argmax[positive]
        if self.match_low_quality and self.match_all_ties:
            best_iou = iou.max(dim=1, keepdim=True).values  # [G, 1]
            claim = best_iou > max(self.min_pos_iou, 0.0)
            if gt_ignore is not None:
                claim &= ~gt_ignore[:, None]
            ties = ((iou == best_iou) & claim).any(dim=0)
            gt_index[ties] = argmax[ties]
        elif self.match_low_quality:
            best_iou, best_prior = iou.max(dim=1)  # [G]
            claim = best_iou >= self.min_pos_iou
            if gt_ignore is not None:
                claim &= ~gt_ignore
            objects = torch.arange(len(gt_boxes), device=priors.device)[claim]
            gt_index[best_prior[claim]] = objects
        if gt_ignore is not None and gt_ignore.any():
            matched = gt_index >= 0
            to_ignored = matched.clone()
            to_ignored[matched] = gt_ignore[gt_index[matched]]
            gt_index[to_ignored] = IGNORED
        return Assignment(gt_index, max_iou)
