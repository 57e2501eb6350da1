"""A straightforward VOC AP, written from the devkit's definition (VOCevaldet.m / py-faster-rcnn voc_eval.py):
one class at a time, one detection at a time, in Python loops. The reference that detframe's
vectorised VOC evaluator must equal, in the tests and in benchmarks/eval_speed.py.

Conventions shared with detframe.evaluation.voc_map (see its docstring): continuous xyxy boxes (no +1),
IoU >= threshold, ties by image order then detection order, voc07 thresholds np.arange(0, 1.1, 0.1).
"""
from __future__ import annotations

import numpy as np


def voc_ap_reference(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool) -> float:
    """py-faster-rcnn's voc_ap, verbatim apart from names."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc_eval_reference(gt: dict, dets: list[tuple[int, int, list[float], float]], class_ids: list[int],
                       image_ids: list[int], iou_threshold: float = 0.5,
                       use_07_metric: bool = True) -> dict[int, float]:
    """AP per class id (NaN for a class without non-difficult ground truth).

    Args:
        gt: COCO dict; `iscrowd: 1` marks difficult boxes; bbox is xywh.
        dets: (image_id, category_id, bbox xywh, score), in results order.
        class_ids: the categories to evaluate.
        image_ids: the images in dataset order (for ties).
    """
    image_rank = {img: r for r, img in enumerate(image_ids)}
    gt_by_class: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        gt_by_class.setdefault(a["category_id"], []).append(a)
    dets_by_class: dict[int, list] = {}
    for i, d in enumerate(dets):
        dets_by_class.setdefault(d[1], []).append((i, d))
    aps = {}
    for cls in class_ids:
        # ground truth of this class, per image: boxes, difficult flags, "already detected" flags
        records: dict[int, dict] = {}
        npos = 0
        for a in gt_by_class.get(cls, []):
            x, y, w, h = a["bbox"]
            r = records.setdefault(a["image_id"], {"boxes": [], "difficult": [], "det": []})
            r["boxes"].append([x, y, x + w, y + h])
            r["difficult"].append(bool(a.get("iscrowd", 0)))
            r["det"].append(False)
            npos += not a.get("iscrowd", 0)
        mine = dets_by_class.get(cls, [])
        # by score, ties by image order then results order (a stable sort of a results file in that order)
        mine.sort(key=lambda item: (-item[1][3], image_rank[item[1][0]], item[0]))
        tp, fp = np.zeros(len(mine)), np.zeros(len(mine))
        for n, (_, (img, _, (x, y, w, h), _)) in enumerate(mine):
            bb = [x, y, x + w, y + h]
            ovmax, jmax = -np.inf, -1
            r = records.get(img)
            for j, g in enumerate(r["boxes"] if r else []):
                iw = min(bb[2], g[2]) - max(bb[0], g[0])
                ih = min(bb[3], g[3]) - max(bb[1], g[1])
                if iw > 0 and ih > 0:
                    ua = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (g[2] - g[0]) * (g[3] - g[1]) - iw * ih
                    ov = iw * ih / ua
                    if ov > ovmax:
                        ovmax, jmax = ov, j
            if ovmax >= iou_threshold:
                if not r["difficult"][jmax]:
                    if not r["det"][jmax]:
                        tp[n] = 1
                        r["det"][jmax] = True
                    else:
                        fp[n] = 1
            else:
                fp[n] = 1
        if npos == 0:
            aps[cls] = float("nan")
            continue
        fp, tp = np.cumsum(fp), np.cumsum(tp)
        rec = tp / float(npos)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps[cls] = voc_ap_reference(rec, prec, use_07_metric)
    return aps
