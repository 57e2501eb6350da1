from .delta_xywh import DeltaXYWHCoder
from .yolo import YOLOCoder

__all__ = ["DeltaXYWHCoder", "YOLOCoder"]
