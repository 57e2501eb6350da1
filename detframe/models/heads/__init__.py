from .base import DenseOutputs, flatten_levels
from .ssd_head import SSDHead, SSDLiteHead

__all__ = ["DenseOutputs", "SSDHead", "SSDLiteHead", "flatten_levels"]
