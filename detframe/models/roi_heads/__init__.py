from .bbox_head import RoISamples, Shared2FCBBoxHead, sample_rois
from .cascade import CascadeRoIHead
from .extractors import MultiScaleRoIAlign, RoIPool, fpn_levels
from .standard import StandardRoIHead

__all__ = ["CascadeRoIHead", "MultiScaleRoIAlign", "RoIPool", "RoISamples", "Shared2FCBBoxHead",
           "StandardRoIHead", "fpn_levels", "sample_rois"]
