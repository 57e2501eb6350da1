from .fcos import FCOSAssigner
from .max_iou import IGNORED, NEGATIVE, Assignment, MaxIoUAssigner
from .yolo import YOLOAssigner

__all__ = ["Assignment", "FCOSAssigner", "IGNORED", "MaxIoUAssigner", "NEGATIVE", "YOLOAssigner"]
