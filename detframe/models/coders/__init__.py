from .delta_xywh import DeltaXYWHCoder
from .distance import DistancePointCoder
from .yolo import YOLOCoder
from .yolox import YOLOXCoder

__all__ = ["DeltaXYWHCoder", "DistancePointCoder", "YOLOCoder", "YOLOXCoder"]
