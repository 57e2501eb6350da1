from .base import DenseOutputs, flatten_levels, match_batch, num_positives
from .fcos_head import FCOSHead, FCOSOutputs
from .retina_head import RetinaHead
from .ssd_head import SSDHead, SSDLiteHead
from .yolo_head import YOLOOutputs, YOLOv3Head
from .yolox_head import YOLOXHead, YOLOXOutputs

__all__ = [
    "DenseOutputs", "FCOSHead", "FCOSOutputs", "RetinaHead", "SSDHead", "SSDLiteHead", "YOLOOutputs",
    "YOLOv3Head", "YOLOXHead", "YOLOXOutputs", "flatten_levels", "match_batch", "num_positives",
]
