"""Building blocks shared by backbones, necks and heads (not registered themselves: the registered
parts take their settings as arguments)."""
from .csp import SPP, SPPF, ConvBNAct, CSPLayer, DepthwiseConvBNAct, DropBlock, Focus, conv_bn_act

__all__ = ["CSPLayer", "ConvBNAct", "DepthwiseConvBNAct", "DropBlock", "Focus", "SPP", "SPPF", "conv_bn_act"]
