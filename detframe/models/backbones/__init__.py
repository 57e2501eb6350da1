from .csp_darknet import CSPDarknet
from .darknet import Darknet
from .mobilenet import MobileNetV3
from .resnet import ResNet
from .vgg import SSDVGG16

__all__ = ["CSPDarknet", "Darknet", "MobileNetV3", "ResNet", "SSDVGG16"]
