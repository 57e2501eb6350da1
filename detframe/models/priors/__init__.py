from .anchors import AnchorGenerator
from .points import PointGenerator
from .ssd import SSDPriorGenerator
from .yolo import YOLOPriorGenerator

__all__ = ["AnchorGenerator", "PointGenerator", "SSDPriorGenerator", "YOLOPriorGenerator"]
