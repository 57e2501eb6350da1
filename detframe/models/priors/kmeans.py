"""Anchor shapes from a dataset's boxes: k-means with distance 1 - IoU (YOLOv2, Redmon & Farhadi 2017,
sec. 2 "Dimension Clusters"), and how well a set of anchor shapes covers the boxes.

Only widths and heights matter here: a box and an anchor are compared as if they shared a centre.
Written with numpy: scikit-learn's k-means is Euclidean, which favours large boxes (the paper's point).
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from ...structures import Sample
from .anchors import AnchorGenerator
from .ssd import SSDPriorGenerator
from .yolo import YOLOPriorGenerator


def wh_iou(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """[N, K] IoU of box sizes [N, 2] and anchor sizes [K, 2], both centred on the same point."""
    inter = (np.minimum(boxes[:, None, 0], anchors[None, :, 0])
             * np.minimum(boxes[:, None, 1], anchors[None, :, 1]))
    union = boxes[:, None].prod(-1) + anchors[None].prod(-1) - inter
    return inter / np.maximum(union, 1e-12)


def coverage(boxes: np.ndarray, anchors: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """(mean over boxes of the best IoU with any anchor, fraction of boxes whose best IoU >= threshold)."""
    best = wh_iou(boxes, anchors).max(axis=1)
    return float(best.mean()), float((best >= threshold).mean())


def iou_kmeans(boxes: np.ndarray, k: int, restarts: int = 5, max_iters: int = 300,
               seed: int = 0) -> np.ndarray:
    """k anchor sizes [k, 2] clustering `boxes` [N, 2] (w, h) with distance 1 - IoU; sorted by area.

    Each restart starts from k-means++ seeds (drawn with probability proportional to the squared
    distance to the nearest chosen seed), then alternates assigning every box to the centroid it
    overlaps most and moving each centroid to the mean size of its boxes, until no assignment
    changes. The restart with the highest mean best IoU wins.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if len(boxes) < k:
        raise ValueError(f"k-means needs at least k={k} boxes, got {len(boxes)}")
    rng = np.random.default_rng(seed)
    best, best_score = None, -1.0
    for _ in range(max(1, restarts)):
        centroids = _kmeans_pp(boxes, k, rng)
        assign = None
        for _ in range(max_iters):
            new = wh_iou(boxes, centroids).argmax(axis=1)
            if assign is not None and np.array_equal(new, assign):
                break
            assign = new
            for j in range(k):
                members = boxes[assign == j]
                centroids[j] = members.mean(axis=0) if len(members) else boxes[rng.integers(len(boxes))]
        score = coverage(boxes, centroids)[0]
        if score > best_score:
            best, best_score = centroids.copy(), score
    return best[np.argsort(best.prod(axis=1))]


def _kmeans_pp(boxes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [boxes[rng.integers(len(boxes))]]
    for _ in range(1, k):
        distance = 1.0 - wh_iou(boxes, np.array(centroids)).max(axis=1)
        weights = distance**2
        total = weights.sum()
        index = rng.choice(len(boxes), p=weights / total) if total > 0 else rng.integers(len(boxes))
        centroids.append(boxes[index])
    return np.array(centroids, dtype=np.float64)


def box_sizes(dataset: Dataset) -> np.ndarray:
    """[N, 2] (w, h) of every non-ignored box of `dataset` after its transforms (the test-time
    pipeline: the size the network sees in training).

    Datasets that keep parsed records (detframe's VOC and COCO readers) are transformed on blank images
    of each record's size, which gives the same boxes without decoding a single JPEG; other datasets
    are read sample by sample.
    """
    sizes = []
    for i in range(len(dataset)):
        sample = _blank_sample(dataset, i) or dataset[i]
        wh = sample.boxes[~sample.ignore, 2:] - sample.boxes[~sample.ignore, :2]
        sizes.append(wh[(wh > 0).all(axis=1)])
    return np.concatenate(sizes) if sizes else np.zeros((0, 2))


def _blank_sample(dataset: Dataset, index: int) -> Sample | None:
    """The transformed sample of record `index` on a blank image, or None if the dataset keeps no records."""
    try:
        r = dataset.records[index]
        sample = Sample(np.zeros((r.height, r.width, 3), np.uint8), r.boxes, r.labels, r.image_id,
                        (r.height, r.width), r.ignore)
    except (AttributeError, TypeError, IndexError):
        return None
    transforms = getattr(dataset, "transforms", None)
    return transforms(sample) if transforms is not None else sample


def prior_shapes(prior_generator: object, image_size: tuple[int, int]) -> np.ndarray:
    """[K, 2] the distinct (w, h) of a prior generator's anchors for inputs of `image_size` (h, w)."""
    if isinstance(prior_generator, YOLOPriorGenerator):
        shapes = [wh for level in prior_generator.base_sizes for wh in level]
    elif isinstance(prior_generator, AnchorGenerator):
        shapes = [(x2 - x1, y2 - y1) for base in prior_generator._base for x1, y1, x2, y2 in base.tolist()]
    elif isinstance(prior_generator, SSDPriorGenerator):
        h, w = image_size
        shapes = [(rw * w, rh * h) for level in prior_generator._wh for rw, rh in level.tolist()]
    else:
        raise TypeError(f"no anchor shapes known for {type(prior_generator).__name__}")
    return np.unique(np.round(np.array(shapes, dtype=np.float64), 3), axis=0)
