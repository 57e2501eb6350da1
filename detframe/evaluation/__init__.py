from .coco_map import COCO_METRICS, CocoEvaluator

__all__ = ["COCO_METRICS", "CocoEvaluator"]
