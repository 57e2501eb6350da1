"""Pascal VOC detection AP, the devkit's algorithm vectorised over detections.

Per class, the devkit (VOCevaldet.m; py-faster-rcnn's voc_eval.py is its Python port) ranks the
detections by score and, one by one, finds the ground-truth box of the same image and class with the
highest IoU (the first on ties). If that IoU reaches the threshold: a "difficult" box makes the detection
neither true nor false positive; otherwise the first detection to reach a box is a true positive and
later ones are false positives (duplicates). Below the threshold: false positive.

Unlike COCO's matching, a detection's best box does not depend on earlier detections, so the whole
ranking is decided with array operations: best box per detection by a segmented argmax, "first to reach
the box" by np.unique over the ranked detections.

Conventions (the same in the test's reference implementation):
- Boxes are continuous xyxy (detframe's convention, see structures.py); the devkit's "+1" on widths is
  already in the coordinates (the VOC reader sets x1 = xmin - 1), so IoU uses no +1.
- IoU >= threshold matches (VOCevaldet.m and mmdetection; py-faster-rcnn uses >).
- Score ties keep the order of the images in the dataset, then the detection order within an image
  (the devkit's stable MATLAB sort on a results file in that order).
- voc07: mean over t in np.arange(0, 1.1, 0.1) (the values py-faster-rcnn, detectron2 and mmdetection
  use) of the highest precision at recall >= t. voc12: area under the monotone precision envelope.
- A class without (non-difficult) ground truth has no AP (NaN) and does not count in mAP.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..registry import EVALUATORS
from ..rules import IoUThreshold
from .base import DetectionEvaluator
from .coco_eval import group_pairs, rank_order
from .ground_truth import GroundTruth
from .predictions import Predictions
from .report import (
    RankedDetections,
    Table,
    add_pr_curves,
    atomic_save_figure,
    atomic_write_json,
    atomic_write_text,
)

METRICS = ("voc07", "voc12")
VOC07_RECALLS = np.arange(0.0, 1.1, 0.1)


@dataclass
class VocResult:
    """Per category (in `GroundTruth.category_ids` order)."""

    ap: np.ndarray  # float64 [K], NaN without ground truth
    num_pos: np.ndarray  # int64 [K] non-difficult ground-truth boxes
    num_dets: np.ndarray  # int64 [K]
    recall: np.ndarray  # float64 [K] recall with all detections (NaN without ground truth)
    # ranked detections per category: (category index [N], score [N], tp [N], fp [N]), by category then rank
    ranked: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

    @property
    def mean_ap(self) -> float:
        valid = self.ap[self.num_pos > 0]
        return float(np.mean(valid)) if len(valid) else float("nan")


def voc_evaluate(gt: GroundTruth, preds: Predictions, iou_threshold: float = 0.5,
                 metric: str = "voc07") -> VocResult:
    """VOC AP of every category of `gt`.

    Args:
        gt: ground truth; `iscrowd` marks "difficult" boxes.
        preds: detections (COCO results form: xywh, dataset category ids).
        iou_threshold: minimum IoU of a match.
        metric: "voc07" (11-point interpolated AP) or "voc12" (area under the PR envelope).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    num_images, num_cats = len(gt.image_ids), len(gt.category_ids)
    det_cat, det_img = gt.category_index(preds.category_id), gt.image_rank(preds.image_id)
    known = (det_cat >= 0) & (det_img >= 0)
    if not known.all():
        preds, det_cat, det_img = preds.select(known), det_cat[known], det_img[known]
    gt_group = gt.category_index(gt.category_id) * num_images + gt.image_rank(gt.image_id)
    gt_order = np.argsort(gt_group, kind="stable")
    gt_box, gt_difficult = gt.boxes_xyxy[gt_order], gt.iscrowd[gt_order]
    # A detection's best box does not depend on the ranking: find it in input order, rank afterwards.
    best_iou, best_gt = _best_overlap(det_cat * num_images + det_img, preds.boxes_xyxy, gt_group[gt_order],
                                      gt_box)

    # Rank within each class by score; ties by image order, then the order within the image. Detections
    # usually arrive in image order already; if not, a stable sort by image first.
    by_image = (np.arange(len(det_img)) if np.all(det_img[1:] >= det_img[:-1])
                else np.argsort(det_img, kind="stable"))
    order = by_image[rank_order(det_cat[by_image], preds.score[by_image])]
    det_cat, score, best_iou, best_gt = det_cat[order], preds.score[order], best_iou[order], best_gt[order]

    hit = best_iou >= iou_threshold
    difficult = hit & gt_difficult[best_gt]
    claim = np.flatnonzero(hit & ~difficult)  # in rank order, per class
    _, first = np.unique(best_gt[claim], return_index=True)  # the first detection to reach each box
    tp = np.zeros(len(score), bool)
    tp[claim[first]] = True
    fp = ~tp & ~difficult

    num_pos = np.bincount(gt.category_index(gt.category_id[~gt.iscrowd]), minlength=num_cats)
    num_dets = np.bincount(det_cat, minlength=num_cats)
    bounds = np.r_[0, np.cumsum(num_dets)]
    ap, recall = np.full(num_cats, np.nan), np.full(num_cats, np.nan)
    for k in np.flatnonzero(num_pos > 0):  # per class, not per detection: cumulative sums and the AP
        seg = slice(bounds[k], bounds[k + 1])
        tp_cum, fp_cum = np.cumsum(tp[seg]).astype(float), np.cumsum(fp[seg]).astype(float)
        rec = tp_cum / num_pos[k]
        prec = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
        ap[k] = voc_ap(rec, prec, metric)
        recall[k] = rec[-1] if len(rec) else 0.0
    return VocResult(ap, num_pos, num_dets, recall, (det_cat, score, tp, fp))


def _best_overlap(det_group: np.ndarray, det_box: np.ndarray, gt_group: np.ndarray, gt_box: np.ndarray):
    """For each detection, the highest IoU with a box of its group and that box (the first on ties).

    Returns:
        (IoU [N], -1 where the detection overlaps no box; index into gt_box [N], 0 where none).
    """
    n = len(det_group)
    best_iou, best_gt = np.full(n, -1.0), np.zeros(n, np.int64)
    det_index, gt_index = group_pairs(det_group, gt_group)  # by detection, then box order
    if len(det_index) == 0:
        return best_iou, best_gt
    d, g = det_box[det_index], gt_box[gt_index]
    iw = np.minimum(d[:, 2], g[:, 2]) - np.maximum(d[:, 0], g[:, 0])
    ih = np.minimum(d[:, 3], g[:, 3]) - np.maximum(d[:, 1], g[:, 1])
    inter = iw * ih
    union = (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]) + (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]) - inter
    # The devkit only considers boxes that overlap (iw > 0 and ih > 0); others cannot be the best match.
    iou = np.where((iw > 0) & (ih > 0), inter / np.where(union > 0, union, 1.0), -1.0)
    starts = np.flatnonzero(np.r_[True, det_index[1:] != det_index[:-1]])
    seg_max = np.maximum.reduceat(iou, starts)
    owner = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(iou)]))
    maxima = np.flatnonzero(iou == seg_max[owner])
    # the first maximum of each detection
    first = maxima[np.r_[True, owner[maxima][1:] != owner[maxima][:-1]]]
    dets = det_index[starts]
    best_iou[dets] = seg_max
    best_gt[det_index[first]] = gt_index[first]
    return best_iou, best_gt


def voc_ap(rec: np.ndarray, prec: np.ndarray, metric: str) -> float:
    """AP from the recall/precision after each ranked detection (py-faster-rcnn's voc_ap, vectorised)."""
    if metric == "voc07":
        # max(prec[rec >= t]) is the suffix maximum from the first index with rec >= t (rec is sorted).
        envelope = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else prec
        index = np.searchsorted(rec, VOC07_RECALLS, side="left")
        ap = 0.0
        for p in np.where(index < len(rec), envelope[np.minimum(index, len(rec) - 1)] if len(rec) else 0.0,
                          0.0):
            ap = ap + p / 11.0  # summed in the reference's order, so the float result is the same
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@EVALUATORS.register()
class VOCEvaluator(DetectionEvaluator):
    """Pascal VOC mAP (`<prefix>/mAP`) and a per-class table (gts, dets, recall, AP) and PR curves.

    Args:
        dataset: the evaluated dataset (`to_coco()`: VOC "difficult" boxes come as `iscrowd: 1`).
        prefix: metric name prefix, e.g. "voc07" -> "voc07/mAP".
        metric: "voc07" (11-point) or "voc12" (area).
        iou_threshold: minimum IoU of a match (0.5 in VOC).
    """

    def __init__(self, dataset: Any, prefix: str = "voc07", metric: str = "voc07",
                 iou_threshold: IoUThreshold = 0.5) -> None:
        super().__init__(dataset, prefix)
        if metric not in METRICS:
            raise ConfigError(f"evaluator.{prefix}.metric: expected one of {', '.join(METRICS)}, "
                              f"got '{metric}'")
        if not 0.0 <= iou_threshold <= 1.0:
            raise ConfigError(f"evaluator.{prefix}.iou_threshold: expected a value in [0, 1], "
                              f"got {iou_threshold}")
        self.metric, self.iou_threshold = metric, float(iou_threshold)
        self.result: VocResult | None = None

    def _evaluate(self, predictions: Predictions) -> dict[str, float]:
        self.result = voc_evaluate(self.gt, predictions, self.iou_threshold, self.metric)
        return {f"{self.prefix}/mAP": self.result.mean_ap}

    def class_table(self) -> Table | None:
        r = self.result
        if r is None:
            return None
        rows = [[name, int(r.num_pos[k]), int(r.num_dets[k]), r.recall[k], r.ap[k]]
                for k, name in enumerate(self.gt.category_names)]
        rows.append(["mAP", int(r.num_pos.sum()), int(r.num_dets.sum()), float("nan"), r.mean_ap])
        kind = "11-point" if self.metric == "voc07" else "area"
        return Table(f"{self.prefix}: per-class VOC AP ({kind}, IoU >= {self.iou_threshold:g})",
                     ["class", "gts", "dets", "recall", "AP"], rows,
                     note="gts: not difficult; n/a: no ground truth of that class, not counted in mAP")

    def ranked_detections(self) -> list[RankedDetections]:
        cat, score, tp, fp = self.result.ranked
        return [RankedDetections(name, score[cat == k], tp[cat == k], fp[cat == k],
                                 int(self.result.num_pos[k]))
                for k, name in enumerate(self.gt.category_names)]

    def write_report(self, out_dir: Path, writer: Any = None, step: int = 0,
                     plots: bool = True) -> list[Path]:
        from ..vis import pr_curves_figure, pr_grid_figure

        table = self.class_table()
        if table is None:
            return []
        files = [atomic_write_json(out_dir / f"{self.prefix}_per_class.json", table.to_records()),
                 atomic_write_text(out_dir / f"{self.prefix}_per_class.md", table.to_markdown())]
        ranked = self.ranked_detections()
        if writer is not None:
            add_pr_curves(writer, f"{self.prefix}/pr", ranked, step)
        if plots:
            curves = {r.name: r.curve() for r in ranked if r.num_pos > 0}
            ap = {name: float(self.result.ap[k]) for k, name in enumerate(self.gt.category_names)}
            title = f"{self.prefix}: precision-recall at IoU={self.iou_threshold:g}"
            files.append(atomic_save_figure(pr_curves_figure(curves, ap, title),
                                            out_dir / f"{self.prefix}_pr_curves.png"))
            fig = pr_grid_figure(curves, ap, title)
            files.append(atomic_save_figure(fig, out_dir / f"{self.prefix}_pr_per_class.png", dpi=90,
                                            tight=False))
        return files
