from .mobilenet import MobileNetV3
from .vgg import SSDVGG16

__all__ = ["MobileNetV3", "SSDVGG16"]
