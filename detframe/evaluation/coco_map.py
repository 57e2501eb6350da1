"""COCO box mAP through pycocotools' COCOeval, on any dataset that can describe itself as COCO."""
from __future__ import annotations

import contextlib
import copy
import io
import logging

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..registry import EVALUATORS
from ..structures import Detections

log = logging.getLogger(__name__)

# COCOeval.stats in order.
COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@EVALUATORS.register()
class CocoEvaluator:
    """Collects detections with `process` and computes the 12 COCO numbers with `compute`.

    Args:
        dataset: the evaluated dataset; `to_coco()` gives its ground truth and `category_ids` maps
            labels to its own category ids.
        prefix: metric name prefix ("coco" -> "coco/AP", "coco/AP50", ...).
        max_dets: the three maxDets of COCOeval (AR@1/10/100; AP uses the last).
    """

    def __init__(self, dataset, prefix: str = "coco", max_dets: tuple[int, int, int] = (1, 10, 100)) -> None:
        self.prefix = prefix
        self.max_dets = list(max_dets)
        self.category_ids = list(dataset.category_ids)
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco_gt = COCO()
            self.coco_gt.dataset = copy.deepcopy(dataset.to_coco())
            self.coco_gt.createIndex()
        self.summary = ""
        self.reset()

    def reset(self) -> None:
        self._results: list[np.ndarray] = []

    def process(self, image_ids: list[int], detections: list[Detections]) -> None:
        """Add the detections of a batch (original-image pixels, labels 0..C-1)."""
        cat_ids = np.asarray(self.category_ids, dtype=np.float64)
        for image_id, det in zip(image_ids, detections):
            if len(det) == 0:
                continue
            boxes = det.boxes.detach().cpu().double().numpy()
            xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
            rows = np.column_stack([
                np.full(len(boxes), float(image_id)), xywh, det.scores.detach().cpu().double().numpy(),
                cat_ids[det.labels.detach().cpu().numpy()],
            ])
            self._results.append(rows)

    def results(self) -> list[dict]:
        """Detections as a COCO results list (image_id, category_id, bbox xywh, score)."""
        if not self._results:
            return []
        rows = np.concatenate(self._results)
        return [
            {"image_id": int(r[0]), "category_id": int(r[6]), "bbox": [float(v) for v in r[1:5]], "score": float(r[5])}
            for r in rows
        ]

    def compute(self) -> dict[str, float]:
        """The 12 COCOeval summary numbers as {prefix/name: value}; all 0 when nothing was detected."""
        if not self._results:
            log.warning("%s: no detections at all; every metric is 0", self.prefix)
            self.summary = "no detections"
            return {f"{self.prefix}/{name}": 0.0 for name in COCO_METRICS}
        rows = np.concatenate(self._results)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            coco_dt = self.coco_gt.loadRes(rows)
            coco_eval = COCOeval(self.coco_gt, coco_dt, iouType="bbox")
            coco_eval.params.maxDets = self.max_dets
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        self.summary = "\n".join(line for line in out.getvalue().splitlines() if line.lstrip().startswith("Average"))
        return {f"{self.prefix}/{name}": float(v) for name, v in zip(COCO_METRICS, coco_eval.stats)}
