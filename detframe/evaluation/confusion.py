"""Confusion matrix of detections at a chosen score and IoU threshold (a report, not a metric).

Detections with score >= `score_threshold` are matched to ground-truth boxes of the same image
regardless of class, one to one, highest IoU first (IoU >= `iou_threshold`). A matched pair counts at
(true class, predicted class); an unmatched detection at (background, predicted class): a false
detection; an unmatched box at (true class, background): a missed object. Detections matched to an
ignored box (crowd / difficult) are left out, and ignored boxes are never counted as missed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..registry import EVALUATORS
from ..rules import IoUThreshold, Probability
from .base import DetectionEvaluator
from .coco_eval import group_pairs
from .ground_truth import GroundTruth
from .predictions import Predictions
from .report import Table, atomic_save_figure, atomic_write_json


def confusion_matrix(gt: GroundTruth, preds: Predictions, score_threshold: float = 0.25,
                     iou_threshold: float = 0.5) -> np.ndarray:
    """int64 [K+1, K+1]: rows the true class, columns the predicted class (category index in
    `gt.category_ids` order), the last row and column the background."""
    num_cats = len(gt.category_ids)
    preds = preds.select((preds.score >= score_threshold) & np.isin(preds.image_id, gt.image_ids)
                         & np.isin(preds.category_id, gt.category_ids))
    det_cat, gt_cat = gt.category_index(preds.category_id), gt.category_index(gt.category_id)
    gt_order = np.argsort(gt.image_rank(gt.image_id), kind="stable")
    det_index, gt_pos = group_pairs(gt.image_rank(preds.image_id), gt.image_rank(gt.image_id)[gt_order])
    gt_index = gt_order[gt_pos]
    d, g = preds.boxes_xyxy[det_index], gt.boxes_xyxy[gt_index]
    iw = np.clip(np.minimum(d[:, 2], g[:, 2]) - np.maximum(d[:, 0], g[:, 0]), 0, None)
    ih = np.clip(np.minimum(d[:, 3], g[:, 3]) - np.maximum(d[:, 1], g[:, 1]), 0, None)
    inter = iw * ih
    union = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]) + (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]) - inter
    iou = inter / np.maximum(union, np.finfo(np.float64).tiny)
    cand = np.flatnonzero(iou >= iou_threshold)
    cand = cand[np.lexsort((gt_index[cand], det_index[cand], -preds.score[det_index[cand]], -iou[cand]))]
    det_match = np.full(len(preds), -1)
    gt_taken = np.zeros(len(gt), bool)
    # Greedy one-to-one assignment is sequential; the loop runs over overlapping pairs above the
    # thresholds (a few per object), not over all detections.
    for det, box in zip(det_index[cand].tolist(), gt_index[cand].tolist()):
        if det_match[det] < 0 and not gt_taken[box]:
            det_match[det], gt_taken[box] = box, True
    matrix = np.zeros((num_cats + 1, num_cats + 1), np.int64)
    matched = det_match >= 0
    counted = matched & ~gt.iscrowd[np.maximum(det_match, 0)]
    np.add.at(matrix, (gt_cat[det_match[counted]], det_cat[counted]), 1)
    np.add.at(matrix, (num_cats, det_cat[~matched]), 1)
    missed = ~gt_taken & ~gt.iscrowd
    np.add.at(matrix, (gt_cat[missed], num_cats), 1)
    return matrix


@EVALUATORS.register()
class ConfusionMatrix(DetectionEvaluator):
    """Writes confusion_matrix.png (counts) and confusion_matrix_normalized.png (per true class) and a
    JSON of the counts; adds no metric.

    Args:
        dataset: the evaluated dataset.
        prefix: file name prefix.
        score_threshold: detections below this score are left out.
        iou_threshold: minimum IoU of a match.
    """

    def __init__(self, dataset: Any, prefix: str = "confusion", score_threshold: Probability = 0.25,
                 iou_threshold: IoUThreshold = 0.5) -> None:
        super().__init__(dataset, prefix)
        for key, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"evaluator.{prefix}.{key}: expected a value in [0, 1], got {value}")
        self.score_threshold, self.iou_threshold = float(score_threshold), float(iou_threshold)
        self.matrix: np.ndarray | None = None

    def _evaluate(self, predictions: Predictions) -> dict[str, float]:
        self.matrix = confusion_matrix(self.gt, predictions, self.score_threshold, self.iou_threshold)
        return {}

    def class_table(self) -> Table | None:
        if self.matrix is None:
            return None
        m, names = self.matrix, self.gt.category_names
        rows = []
        for k, name in enumerate(names):
            other_class = int(m[k, :-1].sum() - m[k, k])
            rows.append([name, int(m[k, :].sum()), int(m[k, k]), other_class, int(m[k, -1]), int(m[-1, k])])
        return Table(f"{self.prefix}: score >= {self.score_threshold:g}, IoU >= {self.iou_threshold:g}",
                     ["class", "objects", "found", "as other class", "missed", "false detections"], rows,
                     note="objects = found + as other class + missed; "
                          "false detections: predicted as this class, no object")

    def write_report(self, out_dir: Path, writer: Any = None, step: int = 0,
                     plots: bool = True) -> list[Path]:
        from ..vis import confusion_matrix_figure, figure_to_array

        if self.matrix is None:
            return []
        names = self.gt.category_names
        data = {"score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold,
                "rows": "true class", "columns": "predicted class", "labels": [*names, "background"],
                "matrix": self.matrix.tolist()}
        files = [atomic_write_json(out_dir / f"{self.prefix}_matrix.json", data)]
        if plots or writer is not None:
            title = f"confusion matrix (score >= {self.score_threshold:g}, IoU >= {self.iou_threshold:g})"
            counts = confusion_matrix_figure(self.matrix, names, title, normalize=False)
            normalized = confusion_matrix_figure(self.matrix, names, title + ", per true class",
                                                 normalize=True)
            if plots:
                files.append(atomic_save_figure(counts, out_dir / f"{self.prefix}_matrix.png"))
                files.append(atomic_save_figure(normalized, out_dir / f"{self.prefix}_matrix_normalized.png"))
            if writer is not None:
                writer.add_image(f"{self.prefix}/matrix", figure_to_array(normalized), step,
                                 dataformats="HWC")
        return files
