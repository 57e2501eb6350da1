"""Several evaluators on the same predictions: the `evaluator` config section and the group it builds.

The section maps a name to an evaluator node; the name is the metric prefix unless the node sets
`prefix`. Hydra selects several files of configs/evaluator/ at once (`evaluator=[coco,voc07,voc12]`),
each file placing itself under its own name (`# @package _group_.coco`):

    evaluator:
      coco: {type: CocoEvaluator, backend: detframe}         # -> coco/AP, coco/AP50, ...
      voc07: {type: VOCEvaluator, metric: voc07}              # -> voc07/mAP
      mine: {type: VOCEvaluator, metric: voc12, iou_threshold: 0.75}   # -> mine/mAP

A single node with a `type` key (the form of configs saved before this) is one evaluator; a name set
to null is dropped, like hooks.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..dist import all_gather_object, get_world_size
from ..errors import ConfigError
from ..registry import EVALUATORS
from ..structures import Detections
from .base import DetectionEvaluator, PredictionBuffer
from .ground_truth import GroundTruth
from .predictions import Predictions
from .report import Table, atomic_write_json, atomic_write_text


def build_evaluator(cfg: Mapping | DictConfig, dataset: Any) -> EvaluatorGroup:
    """The evaluators of an `evaluator` config section (see the module docstring) on `dataset`."""
    if cfg is None or len(cfg) == 0:
        raise ConfigError("evaluator: no evaluator configured; choose one, e.g. evaluator=coco or "
                          "evaluator=[coco,voc07]")
    if "type" in cfg:
        evaluator = EVALUATORS.build(cfg, dataset=dataset)
        return EvaluatorGroup({str(getattr(evaluator, "prefix", "eval")): evaluator})
    evaluators = {}
    for name, node in cfg.items():
        if node is None:
            continue
        if not isinstance(node, (Mapping, DictConfig)) or "type" not in node:
            raise ConfigError(f"evaluator.{name}: expected an evaluator node with a 'type' key, "
                              f"got {node!r}. Known evaluator types: {', '.join(EVALUATORS.keys())}")
        try:
            target = EVALUATORS.get(node["type"])
        except ConfigError as e:
            raise ConfigError(f"evaluator.{name}.type: {e}") from None
        takes_prefix = "prefix" in inspect.signature(target).parameters
        parts = {"prefix": str(name)} if takes_prefix and "prefix" not in node else {}
        evaluators[str(name)] = EVALUATORS.build(node, dataset=dataset, **parts)
    if not evaluators:
        raise ConfigError("evaluator: every evaluator is set to null; keep at least one")
    return EvaluatorGroup(evaluators)


class EvaluatorGroup:
    """Runs several evaluators on one collection of predictions, gathered across ranks once.

    detframe evaluators (DetectionEvaluator) share one buffer; other objects with reset/process/compute
    (your own evaluators) get every call themselves. Metric names must not collide.
    """

    def __init__(self, evaluators: dict[str, Any]) -> None:
        self.evaluators = evaluators
        ours = [e for e in evaluators.values() if isinstance(e, DetectionEvaluator)]
        self.buffer = PredictionBuffer(ours[0].buffer.category_ids) if ours else None
        self.metrics: dict[str, float] = {}
        self.predictions: Predictions | None = None  # what the last `evaluate` saw
        self._pending: list[tuple[list[int], list[Detections]]] = []

    @property
    def ground_truth(self) -> GroundTruth:
        """The ground truth the detframe evaluators share (they are built on one dataset)."""
        for e in self:
            if isinstance(e, DetectionEvaluator):
                return e.gt
        raise ConfigError("evaluator: none of the configured evaluators is a detframe evaluator "
                          "(no ground truth)")

    def __iter__(self):
        return iter(self.evaluators.values())

    # Every rank predicts its shard; the group gathers them, so every rank's `compute` sees all images.
    gathers_across_ranks = True

    def reset(self) -> None:
        if self.buffer is not None:
            self.buffer.reset()
        self._pending = []
        for e in self._others():
            e.reset()

    def process(self, image_ids: Sequence[int], detections: Sequence[Detections]) -> None:
        if self.buffer is not None:
            self.buffer.add(image_ids, detections)
        if get_world_size() > 1 and self._non_gathering():  # replayed with every rank's images in compute()
            self._pending.append((list(image_ids), [d.to("cpu") for d in detections]))
        for e in self._others():
            if get_world_size() == 1 or getattr(e, "gathers_across_ranks", False):
                e.process(image_ids, detections)

    def compute(self) -> dict[str, float]:
        predictions = self.buffer.gathered()[1] if self.buffer is not None else None
        if get_world_size() > 1 and self._non_gathering():
            self._replay_gathered()
        return self.evaluate(predictions)

    def _non_gathering(self) -> list[Any]:
        """Your own evaluators that only see what this rank gives them."""
        return [e for e in self._others() if not getattr(e, "gathers_across_ranks", False)]

    def _replay_gathered(self) -> None:
        """Give the non-gathering evaluators the batches of all ranks, in rank order (the val loader's
        shards are contiguous, so that is the dataset's order), each image once."""
        seen: set[int] = set()
        for pending in all_gather_object(self._pending):
            for image_ids, detections in pending:
                new = [(i, d) for i, d in zip(image_ids, detections) if i not in seen]
                seen.update(i for i, _ in new)
                if new:
                    for e in self._non_gathering():
                        e.process([i for i, _ in new], [d for _, d in new])
        self._pending = []

    def evaluate(self, predictions: Any) -> dict[str, float]:
        """Metrics of all evaluators: detframe ones on `predictions`, others from their own `compute()`."""
        metrics: dict[str, float] = {}
        self.predictions = predictions
        for name, e in self.evaluators.items():
            values = e.evaluate(predictions) if isinstance(e, DetectionEvaluator) else e.compute()
            clash = sorted(set(values) & set(metrics))
            if clash:
                raise ConfigError(f"evaluator.{name}: metric names {clash} are already produced by another "
                                  f"evaluator; give it another name or prefix")
            metrics.update(values)
        self.metrics = metrics
        return metrics

    def _others(self) -> list[Any]:
        return [e for e in self.evaluators.values() if not isinstance(e, DetectionEvaluator)]

    # -- reports ----------------------------------------------------------------------------------

    def tables(self) -> list[Table]:
        return [t for e in self if (t := getattr(e, "class_table", lambda: None)()) is not None]

    def text(self, summaries: bool = False) -> str:
        """Console report: each evaluator's per-class table (and with `summaries`, COCO's summary lines)."""
        parts = []
        for e in self:
            table = getattr(e, "class_table", lambda: None)()
            if table is not None:
                parts.append(table.to_text())
            if summaries and getattr(e, "summary", ""):
                parts.append(e.summary)
        return "\n\n".join(parts)

    def write_reports(self, out_dir: Path, info: dict[str, Any] | None = None, writer: Any = None,
                      step: int = 0, plots: bool = True) -> list[Path]:
        """metrics.json, report.md (all tables) and every evaluator's own files under `out_dir`."""
        out_dir = Path(out_dir)
        metrics = {k: (None if v != v else v) for k, v in self.metrics.items()}  # NaN -> null (valid JSON)
        files = [atomic_write_json(out_dir / "metrics.json", {**(info or {}), "metrics": metrics})]
        lines = [f"# Evaluation\n\n{_info_lines(info)}| metric | value |\n|---|---:|\n"]
        lines += [f"| {k} | {'n/a' if v is None or v < 0 else f'{v:.4f}'} |\n" for k, v in metrics.items()]
        lines += ["\n" + t.to_markdown() for t in self.tables()]
        files.append(atomic_write_text(out_dir / "report.md", "".join(lines)))
        for e in self:
            if hasattr(e, "write_report"):
                files += e.write_report(out_dir, writer=writer, step=step, plots=plots)
        return files


def _info_lines(info: dict[str, Any] | None) -> str:
    return "".join(f"- {k}: {v}\n" for k, v in (info or {}).items()) + ("\n" if info else "")
