from .bbox_head import RoISamples, Shared2FCBBoxHead, sample_rois
from .cascade import CascadeRoIHead
from .extractors import MultiScaleRoIAlign, RoIPool, fpn_levels
from .mask_head import FCNMaskHead, mask_targets, paste_masks
from .rfcn import RFCNRoIHead, vote
from .standard import StandardRoIHead

__all__ = ["CascadeRoIHead", "FCNMaskHead", "MultiScaleRoIAlign", "RFCNRoIHead", "RoIPool", "RoISamples",
           "Shared2FCBBoxHead", "StandardRoIHead", "fpn_levels", "mask_targets", "paste_masks", "sample_rois",
           "vote"]
