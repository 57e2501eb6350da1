"""Registered transforms: each is `__call__(Sample) -> Sample`, moving image and boxes together.

A pipeline is a config-listed sequence of these (configs/pipeline/*.yaml), built by `build_pipeline`.
albumentations provides the photometric and most geometric operations (`Albu`,
`PhotoMetricDistortion`); the ones written here are those it lacks: test-time resizing that records
how to map predictions back (`Resize`, `Letterbox`), SSD's zoom-out and min-IoU patch sampling
(`Expand`, `MinIoURandomCrop`), and the YOLO recipe's `Mosaic`, `RandomAffine` and `MixUp`.
"""
from .albu import Albu, PhotoMetricDistortion
from .base import Compose, MixTransform, build_pipeline, transform_name
from .geometric import Letterbox, RandomHorizontalFlip, Resize, rescale_long_side
from .mix import MixUp, Mosaic, RandomAffine
from .ssd import Expand, MinIoURandomCrop

__all__ = [
    "Albu", "Compose", "Expand", "Letterbox", "MinIoURandomCrop", "MixTransform", "MixUp", "Mosaic",
    "PhotoMetricDistortion", "RandomAffine", "RandomHorizontalFlip", "Resize", "build_pipeline",
    "rescale_long_side", "transform_name",
]
