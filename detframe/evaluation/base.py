"""What every detframe evaluator shares: collecting predictions, gathering them, reporting.

The protocol the runner uses is `reset()`, `process(image_ids, detections)` per batch and `compute()`
at the end (detectron2, mmengine). Subclasses implement `evaluate(predictions)`, which sees the whole
set at once as flat arrays (`Predictions`), plus optionally `class_table()` and `write_report()`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..structures import Detections
from .gather import gather_predictions
from .ground_truth import GroundTruth
from .predictions import Predictions, check_predictions, from_detections
from .report import Table

log = logging.getLogger(__name__)


class PredictionBuffer:
    """Model outputs of one evaluation pass, kept as numpy arrays in COCO results form."""

    def __init__(self, category_ids: Sequence[int]) -> None:
        self.category_ids = np.asarray(category_ids, np.int64)
        self.reset()

    def reset(self) -> None:
        self._image_ids: list[int] = []
        self._parts: list[Predictions] = []
        self.dropped = 0

    def add(self, image_ids: Sequence[int], detections: Sequence[Detections]) -> None:
        """Add a batch: detections in original-image pixels, labels 0..C-1."""
        for image_id, det in zip(image_ids, detections):
            self._image_ids.append(int(image_id))
            if len(det) == 0:
                continue
            boxes = det.boxes.detach().float().cpu().numpy()
            scores = det.scores.detach().float().cpu().numpy()
            ok = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
            if not ok.all():
                # A diverging model should not stop training at evaluation; it must not go unnoticed either.
                self.dropped += int((~ok).sum())
                boxes, scores = boxes[ok], scores[ok]
            labels = det.labels.detach().cpu().numpy()[ok]
            masks = None if det.masks is None else det.masks.detach().cpu().numpy()[ok]
            self._parts.append(from_detections(int(image_id), boxes, scores, labels, self.category_ids,
                                               masks))

    def gathered(self) -> tuple[np.ndarray, Predictions]:
        """(processed image ids, predictions) of all ranks; see `dist.gather_predictions`."""
        if self.dropped:
            log.warning("%d detections with NaN or infinite boxes or scores were dropped before evaluation",
                        self.dropped)
        return gather_predictions(np.asarray(self._image_ids, np.int64), Predictions.concat(self._parts))


class DetectionEvaluator:
    """Base class: collect with `process`, evaluate everything in `compute`.

    Args:
        dataset: the evaluated dataset: `to_coco()` gives its ground truth, `category_ids[label]` the
            dataset's id of each contiguous label.
        prefix: metric names are "<prefix>/<name>".
    """

    # compute() gathers the predictions of all ranks itself (dist.gather_predictions), so the runner's
    # run_evaluation need not collect them for it (issue 5's flag).
    gathers_across_ranks = True

    def __init__(self, dataset: Any, prefix: str) -> None:
        self.prefix = prefix
        self.gt = GroundTruth.from_dataset(dataset)
        self.buffer = PredictionBuffer(getattr(dataset, "category_ids", self.gt.category_ids))
        self.predictions = Predictions.empty()  # of the last `compute`/`evaluate`
        self.metrics: dict[str, float] = {}

    def reset(self) -> None:
        self.buffer.reset()

    def process(self, image_ids: Sequence[int], detections: Sequence[Detections]) -> None:
        self.buffer.add(image_ids, detections)

    def compute(self) -> dict[str, float]:
        """Gather the predictions of all ranks and evaluate them."""
        _, preds = self.buffer.gathered()
        return self.evaluate(preds)

    def evaluate(self, predictions: Predictions) -> dict[str, float]:
        """Metrics of `predictions` (all of them, already gathered) as {"<prefix>/<name>": value}."""
        check_predictions(predictions, self.gt, source=self.prefix)
        self.predictions = predictions
        self.metrics = self._evaluate(predictions)
        return self.metrics

    def _evaluate(self, predictions: Predictions) -> dict[str, float]:
        raise NotImplementedError

    def class_table(self) -> Table | None:
        """Per-class results of the last evaluation, or None."""
        return None

    def write_report(self, out_dir: Path, writer: Any = None, step: int = 0,
                     plots: bool = True) -> list[Path]:
        """Write this evaluator's files under `out_dir` (and TensorBoard data to `writer`); return the
        files."""
        return []
