from .ct_resnet import CTResNetNeck
from .fpn import FPN
from .pafpn import PAFPN
from .ssd_extra import SSDExtraLayers
from .yolo_neck import YOLOv3Neck

__all__ = ["CTResNetNeck", "FPN", "PAFPN", "SSDExtraLayers", "YOLOv3Neck"]
