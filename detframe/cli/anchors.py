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
from ..errors import UserError
from ..rules import IoUThreshold, NonNegativeInt, PositiveInt
from .common import Arg, check_split, parse_args, run_tool

OWN = {
    "k": Arg("9", "number of anchors", kind=int, rule=PositiveInt),
    "split": Arg("train", "dataset split to read"),
    "restarts": Arg("5", "k-means restarts", kind=int, rule=PositiveInt),
    "seed": Arg("0", "random seed", kind=int, rule=NonNegativeInt),
    "iou": Arg("0.5", "IoU threshold of the coverage figure", kind=float, rule=IoUThreshold),
}
NOTE = "k, restarts and seed take integers and iou a number"


def shapes_text(anchors: np.ndarray) -> str:
    return "  ".join(f"{w:.0f}x{h:.0f}" for w, h in anchors)


def run_anchors(argv: list[str]) -> None:
    from detframe.data import build_dataset
    from detframe.models import build_detector
    from detframe.models.priors.kmeans import box_sizes, coverage, iou_kmeans, prior_shapes
    from detframe.registry import import_modules

    own, rest = parse_args(argv, OWN, "anchors", note=NOTE)
    k, restarts, seed, threshold = own["k"], own["restarts"], own["seed"], own["iou"]
    cfg = compose(rest)
    import_modules(cfg.custom_imports)
    check_split("split", own["split"], cfg)
    model = build_detector(cfg.model)  # before the data: a config mistake fails before the set is read
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
