"""Evaluation speed: detframe's COCO and VOC evaluation against their references, on one generated set.

    python benchmarks/eval_speed.py    # 5,000 images, ~7 objects and 100 detections each, 80 classes
    python benchmarks/eval_speed.py --images 500 --repeats 1    # a quick look

COCO: our CocoEvaluator (backend detframe) against pycocotools' COCOeval (loadRes + evaluate + accumulate +
summarize), and faster-coco-eval's COCOeval_faster when installed; each starts from the detections in
memory in its own input form (our arrays, their list of result dicts), ground truth indexed beforehand.
VOC: our VOCEvaluator against the straightforward devkit-style reference of the tests
(tests/evaluation/voc_reference.py), for voc07 and voc12.

The candidates run interleaved, `--repeats` times, and the medians are compared; every run's numbers are
checked against the reference's (max absolute difference, printed).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests' VOC reference

from detframe.evaluation import COCO_METRICS, CocoEvaluator, VOCEvaluator, to_coco_results  # noqa: E402
from detframe.evaluation.synthetic import synthetic_case  # noqa: E402
from tests.evaluation.voc_reference import voc_eval_reference  # noqa: E402


class Dataset:
    """What evaluators need from a dataset: its COCO view and the category id of each label."""

    def __init__(self, gt: dict) -> None:
        self.gt = gt
        self.category_ids = [c["id"] for c in gt["categories"]]

    def to_coco(self) -> dict:
        return self.gt


def pycocotools_run(gt: dict, results: list[dict], module: str) -> list[float]:
    """COCOeval from `module` on prepared input; returns the 12 numbers."""
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
        kwargs = {}
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
        kwargs = {"print_function": lambda *a, **k: None}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        results = copy.deepcopy(results)  # loadRes writes into the dicts
        start = time.perf_counter()
        e = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox", **kwargs)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return [float(v) for v in e.stats[:12]], time.perf_counter() - start


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--objects", type=float, default=7.0, help="mean ground-truth boxes per image")
    parser.add_argument("--dets", type=int, default=100, help="detections per image")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-voc", action="store_true")
    args = parser.parse_args()

    gt, preds = synthetic_case(num_images=args.images, num_classes=args.classes, gt_per_image=args.objects,
                               dets_per_image=args.dets, crowd_fraction=0.01, seed=0)
    results = to_coco_results(preds)
    dataset = Dataset(gt)
    print(f"set: {len(gt['images'])} images, {len(gt['annotations'])} ground-truth boxes, "
          f"{len(preds)} detections, {len(gt['categories'])} categories; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    try:
        import faster_coco_eval  # noqa: F401
        fast = True
    except ImportError:
        fast = False

    times: dict[str, list[float]] = {"pycocotools": [], "detframe": [], "faster_coco_eval": []}
    diffs: dict[str, float] = {"detframe": 0.0, "faster_coco_eval": 0.0}
    for r in range(args.repeats):
        ours = CocoEvaluator(dataset)  # ground truth indexed here, outside the timing (as for pycocotools)
        metrics, t = timed(lambda: ours.evaluate(preds))
        times["detframe"].append(t)
        ref, t = pycocotools_run(gt, results, "pycocotools")
        times["pycocotools"].append(t)
        diffs["detframe"] = max(diffs["detframe"],
                                max(abs(metrics[f"coco/{k}"] - v) for k, v in zip(COCO_METRICS, ref)))
        if fast:
            theirs, t = pycocotools_run(gt, results, "faster_coco_eval")
            times["faster_coco_eval"].append(t)
            diffs["faster_coco_eval"] = max(diffs["faster_coco_eval"],
                                            max(abs(a - b) for a, b in zip(theirs, ref)))
        print(f"  run {r + 1}: detframe {times['detframe'][-1]:.2f}s  "
              f"pycocotools {times['pycocotools'][-1]:.2f}s"
              + (f"  faster_coco_eval {times['faster_coco_eval'][-1]:.2f}s" if fast else ""), flush=True)
    base = statistics.median(times["pycocotools"])
    print(f"COCO (median of {args.repeats}): pycocotools {base:.2f}s")
    for name in ("detframe", "faster_coco_eval"):
        if times[name]:
            med = statistics.median(times[name])
            print(f"  {name:<17} {med:6.2f}s  {base / med:5.1f}x faster than pycocotools, "
                  f"max difference of the 12 numbers {diffs[name]:.3g}")
    if not args.skip_voc:
        voc(gt, preds, dataset, args.repeats)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def voc(gt: dict, preds, dataset: Dataset, repeats: int) -> None:
    dets = list(zip(preds.image_id.tolist(), preds.category_id.tolist(), preds.bbox.tolist(),
                    preds.score.tolist()))
    class_ids = sorted(c["id"] for c in gt["categories"])
    image_ids = sorted(i["id"] for i in gt["images"])
    for metric in ("voc07", "voc12"):
        ours_t, ref_t, diff = [], [], 0.0
        for _ in range(repeats):
            ev = VOCEvaluator(dataset, prefix=metric, metric=metric)
            _, t = timed(lambda: ev.evaluate(preds))
            ours_t.append(t)
            ref, t = timed(lambda: voc_eval_reference(gt, dets, class_ids, image_ids, 0.5, metric == "voc07"))
            ref_t.append(t)
            ref_ap = np.array([ref[c] for c in class_ids])
            both = ~np.isnan(ref_ap)
            if not np.array_equal(np.isnan(ev.result.ap), ~both):
                raise SystemExit(f"{metric}: classes without AP differ from the reference")
            diff = max(diff, float(np.max(np.abs(ev.result.ap[both] - ref_ap[both]))))
        a, b = statistics.median(ours_t), statistics.median(ref_t)
        print(f"VOC {metric} (median of {repeats}): reference {b:.2f}s, detframe {a:.2f}s: "
              f"{b / a:.1f}x faster, max difference of the per-class APs {diff:.3g}")


if __name__ == "__main__":
    main()
