"""YOLOv3's matching: one prior per object, chosen by shape in the cell that holds the object's centre."""
from __future__ import annotations

import torch
from torch import Tensor

from ...ops.boxes import box_iou
from ...registry import ASSIGNERS
from ...rules import Probability
from .max_iou import IGNORED, NEGATIVE, Assignment


@ASSIGNERS.register()
class YOLOAssigner:
    """Each object is predicted by a single prior (Redmon & Farhadi 2018, sec. 2.1): among the priors of
    the grid cells that contain its centre (one cell per level), the one whose shape overlaps it most,
    the two boxes aligned on their centres (Darknet's best-anchor rule, over all levels at once). When
    two objects pick the same prior, the one it fits better keeps it.

    A prior that is not positive but overlaps an object by more than `ignore_iou` is ignored: it is
    neither pushed towards objectness nor away from it ("we ignore the prediction, following [Faster
    R-CNN]. We use the threshold of .5"). All other priors are negatives. Objects flagged ignored
    (VOC difficult, COCO crowd) make their prior ignored instead of positive.

    Args:
        ignore_iou: IoU (prior box placed at its cell, against any object) above which a non-positive
            prior is ignored; > 1 disables ignoring.
    """

    def __init__(self, ignore_iou: Probability = 0.5) -> None:
        self.ignore_iou = ignore_iou

    def __call__(self, priors: Tensor, strides: Tensor, gt_boxes: Tensor,
                 gt_ignore: Tensor | None = None) -> Assignment:
        """Args:
            priors: [P, 4] xyxy absolute, centred in their cells.
            strides: [P] stride of each prior's level.
            gt_boxes: [G, 4] xyxy absolute.
            gt_ignore: bool [G].
        """
        num_priors = priors.shape[0]
        gt_index = torch.full((num_priors,), NEGATIVE, dtype=torch.long, device=priors.device)
        if gt_boxes.numel() == 0:
            return Assignment(gt_index, priors.new_zeros(num_priors))
        max_iou = box_iou(gt_boxes, priors).max(dim=0).values
        gt_index[max_iou > self.ignore_iou] = IGNORED

        shape_iou = self._shape_iou(priors, gt_boxes)  # [G, P]
        shape_iou[~self._responsible(priors, strides, gt_boxes)] = -1.0
        best_iou, best_prior = shape_iou.max(dim=1)  # [G]
        has_cell = best_iou >= 0  # a centre on the far edge of the padded input has no cell
        # Where several objects pick one prior, the best-fitting one keeps it.
        claim = torch.full((num_priors,), -1.0, device=priors.device).scatter_reduce(
            0, best_prior[has_cell], best_iou[has_cell], reduce="amax"
        )
        wins = has_cell & (best_iou >= claim[best_prior])
        objects = torch.arange(len(gt_boxes), device=priors.device)[wins]
        gt_index[best_prior[wins]] = objects
        if gt_ignore is not None and gt_ignore.any():
            gt_index[best_prior[wins & gt_ignore]] = IGNORED
        return Assignment(gt_index, max_iou)

    @staticmethod
    def _shape_iou(priors: Tensor, gt_boxes: Tensor) -> Tensor:
        """[G, P] IoU of the boxes' sizes alone (both centred on the same point)."""
        pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
        gw, gh = (gt_boxes[:, 2] - gt_boxes[:, 0])[:, None], (gt_boxes[:, 3] - gt_boxes[:, 1])[:, None]
        inter = torch.minimum(gw, pw) * torch.minimum(gh, ph)
        return inter / (gw * gh + pw * ph - inter).clamp(min=1e-9)

    @staticmethod
    def _responsible(priors: Tensor, strides: Tensor, gt_boxes: Tensor) -> Tensor:
        """[G, P] True where prior p's cell contains object g's centre."""
        cell_x = torch.floor((priors[:, 0] + priors[:, 2]) * 0.5 / strides)
        cell_y = torch.floor((priors[:, 1] + priors[:, 3]) * 0.5 / strides)
        gx = (gt_boxes[:, 0] + gt_boxes[:, 2])[:, None] * 0.5
        gy = (gt_boxes[:, 1] + gt_boxes[:, 3])[:, None] * 0.5
        return (torch.floor(gx / strides) == cell_x) & (torch.floor(gy / strides) == cell_y)
