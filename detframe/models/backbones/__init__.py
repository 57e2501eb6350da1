from .darknet import Darknet
from .mobilenet import MobileNetV3
from .resnet import ResNet
from .vgg import SSDVGG16

__all__ = ["Darknet", "MobileNetV3", "ResNet", "SSDVGG16"]
