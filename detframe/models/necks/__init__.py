from .fpn import FPN
from .ssd_extra import SSDExtraLayers
from .yolo_neck import YOLOv3Neck

__all__ = ["FPN", "SSDExtraLayers", "YOLOv3Neck"]
