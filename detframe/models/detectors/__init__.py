from .base import Detector
from .single_stage import SingleStageDetector

__all__ = ["Detector", "SingleStageDetector"]
