r"""`detframe-anchors` / `python tools/anchors.py`: anchor shapes for a dataset by IoU k-means over its boxes
at the training size (YOLOv2's dimension clusters).

    python tools/anchors.py config=yolov3_d53_small_raccoon k=9
    python tools/anchors.py data=raccoon data.root=../shared/datasets/raccoon pipeline.size=416 \
        model=yolov3_d53

Prints the k anchors sorted by area with their mean best IoU over the boxes, the same for the config's
current anchors, and an override that puts the new anchors into a YOLO config.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..config import compose
from ..errors import ConfigError, UserError
from .common import run_tool

OWN = {"k": "number of anchors (9)", "split": "dataset split to read (train)",
       "restarts": "k-means restarts (5)", "seed": "random seed (0)",
       "iou": "IoU threshold of the coverage figure (0.5)"}


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    own, rest = {"k": "9", "split": "train", "restarts": "5", "seed": "0", "iou": "0.5"}, []
    for arg in argv:
        key = arg.split("=", 1)[0]
        if key in OWN:
            own[key] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return own, rest


def shapes_text(anchors: np.ndarray) -> str:
    return "  ".join(f"{w:.0f}x{h:.0f}" for w, h in anchors)


def run_anchors(argv: list[str]) -> None:
    from detframe.data import build_dataset
    from detframe.models import build_detector
    from detframe.models.priors.kmeans import box_sizes, coverage, iou_kmeans, prior_shapes
    from detframe.registry import import_modules

    own, rest = parse(argv)
    try:
        k, restarts, seed, threshold = (int(own["k"]), int(own["restarts"]), int(own["seed"]),
                                        float(own["iou"]))
    except ValueError as e:
        raise ConfigError(f"k, restarts and seed take integers and iou a number: {e}") from None
    cfg = compose(rest)
    import_modules(cfg.custom_imports)
    dataset = build_dataset(cfg.data, own["split"], cfg.pipeline.val)
    boxes = box_sizes(dataset)
    if len(boxes) < k:
        raise UserError(f"data.{own['split']} has {len(boxes)} boxes; k-means needs at least k={k}")
    size = cfg.pipeline.size
    print(f"{dataset!r}, split {own['split']}: {len(boxes)} boxes at the training size "
          f"(pipeline.size={size}), median {np.median(boxes[:, 0]):.0f}x{np.median(boxes[:, 1]):.0f} px")
    anchors = iou_kmeans(boxes, k, restarts=restarts, seed=seed)
    mean_iou, covered = coverage(boxes, anchors, threshold)
    print(f"k-means (distance 1 - IoU), k={k}, best of {restarts} restarts:\n"
          f"  anchors (w x h, by area): {shapes_text(anchors)}\n"
          f"  mean best IoU {mean_iou:.4f}; boxes with best IoU >= {threshold}: {covered:.1%}")
    model = build_detector(cfg.model)
    generator = getattr(model.head, "prior_generator", None)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    try:
        current = prior_shapes(generator, hw)
    except TypeError as e:
        print(f"the config's anchors: {e}")
        return
    mean_iou, covered = coverage(boxes, current, threshold)
    print(f"the config's current anchors ({type(generator).__name__}, {len(current)} shapes):\n"
          f"  mean best IoU {mean_iou:.4f}; boxes with best IoU >= {threshold}: {covered:.1%}")
    levels = len(getattr(generator, "base_sizes", []))
    if levels and k % levels == 0:
        per = k // levels
        grouped = [[[round(float(w)), round(float(h))] for w, h in anchors[i * per:(i + 1) * per]]
                   for i in range(levels)]
        print("to use them: model.head.prior_generator.base_sizes=" + str(grouped).replace(" ", ""))


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(run_anchors, argv, level=logging.WARNING)
