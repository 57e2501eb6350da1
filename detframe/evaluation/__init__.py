"""Evaluators (COCO, VOC, confusion matrix), their shared predictions/ground-truth arrays and reports."""
from ..dist import is_main_process
from .base import DetectionEvaluator, PredictionBuffer
from .build import EvaluatorGroup, build_evaluator
from .coco_eval import COCO_METRICS, coco_evaluate, summarize
from .coco_map import CocoEvaluator
from .confusion import ConfusionMatrix, confusion_matrix
from .ground_truth import GroundTruth
from .loop import run_evaluation
from .predictions import Predictions, load_results, save_results, to_coco_results
from .report import Table, tensorboard_writer
from .voc_map import VOCEvaluator, voc_evaluate

__all__ = [
    "COCO_METRICS", "CocoEvaluator", "ConfusionMatrix", "DetectionEvaluator", "EvaluatorGroup", "GroundTruth",
    "PredictionBuffer", "Predictions", "Table", "VOCEvaluator", "build_evaluator", "coco_evaluate",
    "is_main_process", "confusion_matrix", "load_results", "run_evaluation", "save_results", "summarize",
    "tensorboard_writer", "to_coco_results", "voc_evaluate",
]
