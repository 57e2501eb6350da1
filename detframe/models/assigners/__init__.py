from .max_iou import IGNORED, NEGATIVE, Assignment, MaxIoUAssigner
from .yolo import YOLOAssigner

__all__ = ["Assignment", "IGNORED", "MaxIoUAssigner", "NEGATIVE", "YOLOAssigner"]
