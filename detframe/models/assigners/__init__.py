from .fcos import FCOSAssigner
from .max_iou import IGNORED, NEGATIVE, Assignment, MaxIoUAssigner
from .task_aligned import SoftAssignment, TaskAlignedAssigner
from .yolo import YOLOAssigner

__all__ = ["Assignment", "FCOSAssigner", "IGNORED", "MaxIoUAssigner", "NEGATIVE", "SoftAssignment",
           "TaskAlignedAssigner", "YOLOAssigner"]
