"""A detector that declares it trains on instance masks, as Mask R-CNN will (`requires_masks`), for the
bad-input cases of a model that needs masks given data without them (`custom_imports=[...]`)."""
from detframe.models.detectors.single_stage import SingleStageDetector
from detframe.registry import DETECTORS


@DETECTORS.register()
class MaskNeedingDetector(SingleStageDetector):
    requires_masks = True
