from .base import Detector, NormalizingDetector
from .single_stage import SingleStageDetector
from .two_stage import TwoStageDetector

__all__ = ["Detector", "NormalizingDetector", "SingleStageDetector", "TwoStageDetector"]
