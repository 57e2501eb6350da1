from .anchors import AnchorGenerator
from .ssd import SSDPriorGenerator
from .yolo import YOLOPriorGenerator

__all__ = ["AnchorGenerator", "SSDPriorGenerator", "YOLOPriorGenerator"]
