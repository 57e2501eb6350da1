from .max_iou import IGNORED, NEGATIVE, Assignment, MaxIoUAssigner

__all__ = ["Assignment", "IGNORED", "MaxIoUAssigner", "NEGATIVE"]
