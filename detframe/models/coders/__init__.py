from .delta_xywh import DeltaXYWHCoder
from .distance import DistancePointCoder
from .yolo import YOLOCoder

__all__ = ["DeltaXYWHCoder", "DistancePointCoder", "YOLOCoder"]
