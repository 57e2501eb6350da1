"""Models: importing this package registers every backbone, neck, head and part."""
from . import (
    assigners,
    backbones,
    coders,
    detectors,
    heads,
    losses,
    necks,
    priors,
    roi_heads,
    samplers,
    soft_target_losses,
)
from .build import build_detector, check_detector
from .detectors import Detector

__all__ = [
    "Detector", "assigners", "backbones", "build_detector", "check_detector", "coders", "detectors", "heads",
    "losses", "necks", "priors", "roi_heads", "samplers", "soft_target_losses",
]
