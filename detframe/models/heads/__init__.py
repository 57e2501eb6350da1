from .base import DenseOutputs, flatten_levels, match_batch, num_positives
from .centernet_head import CenterNetHead, CenterNetOutputs
from .fcos_head import FCOSHead, FCOSOutputs
from .retina_head import RetinaHead
from .rpn_head import RPNHead
from .ssd_head import SSDHead, SSDLiteHead
from .tal_head import TALHead
from .yolo_head import YOLOOutputs, YOLOv3Head
from .yolox_head import YOLOXHead, YOLOXOutputs

__all__ = [
    "CenterNetHead", "CenterNetOutputs", "DenseOutputs", "FCOSHead", "FCOSOutputs", "RetinaHead", "RPNHead",
    "SSDHead", "SSDLiteHead", "TALHead", "YOLOOutputs", "YOLOv3Head", "YOLOXHead", "YOLOXOutputs",
    "flatten_levels", "match_batch", "num_positives",
]
