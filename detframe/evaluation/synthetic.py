"""Random but realistic evaluation cases: COCO ground truth plus detections, made with array operations.

Used by the faster_coco_eval agreement check, the tests and benchmarks/eval_speed.py. A case has what
trips evaluators up: non-contiguous and unsorted ids, a category without annotations, crowd regions,
images without objects or without detections, objects of all three COCO sizes, duplicate detections,
and (with `quantize`) exact ties in scores and coordinates.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .predictions import Predictions


def synthetic_case(num_images: int = 40, num_classes: int = 5, gt_per_image: float = 4.0,
                   dets_per_image: int = 20, crowd_fraction: float = 0.05, quantize: bool = False,
                   seed: int = 0) -> tuple[dict[str, Any], Predictions]:
    """A COCO instances dict and detections on it.

    Args:
        num_images: images; about 5% have no objects and 5% get no detections.
        num_classes: categories with annotations; one more category is listed without any.
        gt_per_image: mean number of objects per image (Poisson).
        dets_per_image: detections per image: 1-2 jittered copies of most objects (the right class 85% of
            the time, higher scores) and random false positives (lower scores) up to this number.
        crowd_fraction: share of objects marked iscrowd.
        quantize: round boxes to whole pixels and scores to 0.1: many exact ties.
        seed: random seed.
    """
    rng = np.random.default_rng(seed)
    image_ids = rng.choice(np.arange(1, 10 * num_images + 1), num_images, replace=False)  # unsorted, gaps
    sizes = rng.integers(200, 641, (num_images, 2)).astype(np.float64)  # (w, h)
    cat_ids = np.sort(rng.choice(np.arange(1, 2 * num_classes + 3), num_classes + 1, replace=False))
    used_cats = cat_ids[:-1] if num_classes else cat_ids[:0]

    counts = rng.poisson(gt_per_image, num_images) * (rng.random(num_images) > 0.05)
    gt_img = np.repeat(np.arange(num_images), counts)
    gt_box = _random_boxes(rng, sizes[gt_img], quantize)
    gt_cat = rng.choice(used_cats, len(gt_img)) if len(used_cats) else np.zeros(0, np.int64)
    crowd = rng.random(len(gt_img)) < crowd_fraction
    # a mask's area is below its box's
    area = gt_box[:, 2] * gt_box[:, 3] * rng.uniform(0.6, 1.0, len(gt_img))

    copies = rng.choice([0, 1, 1, 1, 2], len(gt_img))
    src = np.repeat(np.arange(len(gt_img)), copies)
    jitter = rng.normal(0, 0.08, (len(src), 4)) * np.repeat(gt_box[src, 2:], 2, axis=1)
    tp_box = gt_box[src] + jitter
    tp_box[:, 2:] = np.maximum(tp_box[:, 2:], 1.0)
    tp_cat = np.where(rng.random(len(src)) < 0.85, gt_cat[src], rng.choice(cat_ids, len(src)))
    tp_score = rng.beta(5, 2, len(src))
    tp_img = gt_img[src]

    per_image = np.bincount(tp_img, minlength=num_images)
    extra = np.maximum(dets_per_image - per_image, 0) * (rng.random(num_images) > 0.05)
    # some images: no detections
    tp_keep = np.isin(tp_img, np.flatnonzero(extra > 0) if dets_per_image else [])
    tp_keep |= per_image[tp_img] >= dets_per_image
    fp_img = np.repeat(np.arange(num_images), extra)
    det_img = np.concatenate([tp_img[tp_keep], fp_img])
    det_box = np.concatenate([tp_box[tp_keep], _random_boxes(rng, sizes[fp_img], quantize)])
    det_cat = np.concatenate([tp_cat[tp_keep], rng.choice(cat_ids, len(fp_img))])
    det_score = np.concatenate([tp_score[tp_keep], rng.beta(2, 5, len(fp_img))])
    if quantize:
        det_box, det_score = np.round(det_box), np.round(det_score, 1)
    order = np.argsort(det_img, kind="stable")  # grouped by image, as a model produces them

    images = [{"id": int(i), "width": int(w), "height": int(h), "file_name": f"{i:012d}.jpg"}
              for i, (w, h) in zip(image_ids, sizes)]
    annotations = [
        {"id": n + 1, "image_id": int(image_ids[i]), "category_id": int(c), "bbox": b.tolist(),
         "area": float(a), "iscrowd": int(z)}
        for n, (i, c, b, a, z) in enumerate(zip(gt_img, gt_cat, gt_box, area, crowd))
    ]
    categories = [{"id": int(c), "name": f"class_{c}"} for c in cat_ids]
    preds = Predictions(image_ids[det_img[order]].astype(np.int64), det_cat[order].astype(np.int64),
                        det_box[order], det_score[order])
    return {"images": images, "annotations": annotations, "categories": categories}, preds


def _random_boxes(rng: np.random.Generator, sizes: np.ndarray, quantize: bool) -> np.ndarray:
    """xywh boxes inside images of `sizes` [n, 2] (w, h), log-uniform sides from 4 px to 80% of the image."""
    n = len(sizes)
    wh = np.exp(rng.uniform(np.log(4.0), np.log(0.8 * sizes), (n, 2)))
    xy = rng.uniform(0, 1, (n, 2)) * (sizes - wh)
    box = np.concatenate([xy, wh], axis=1)
    return np.maximum(np.round(box), [0, 0, 1, 1]) if quantize else box
