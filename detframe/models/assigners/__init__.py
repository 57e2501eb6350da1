from .fcos import FCOSAssigner
from .max_iou import IGNORED, NEGATIVE, Assignment, MaxIoUAssigner
from .simota import DynamicAssignment, SimOTAAssigner
from .task_aligned import SoftAssignment, TaskAlignedAssigner
from .yolo import YOLOAssigner

__all__ = [
    "Assignment", "DynamicAssignment", "FCOSAssigner", "IGNORED", "MaxIoUAssigner", "NEGATIVE",
    "SimOTAAssigner", "SoftAssignment", "TaskAlignedAssigner", "YOLOAssigner",
]
