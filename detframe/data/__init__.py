from . import transforms
from .build import build_dataloader, build_dataset, set_epoch
from .collate import Collate
from .datasets import CocoDetection, DetectionDataset, VOCDetection
from .synthetic import SHAPES_CLASSES, ensure_shapes

__all__ = [
    "Collate", "CocoDetection", "DetectionDataset", "SHAPES_CLASSES", "VOCDetection", "build_dataloader",
    "build_dataset", "ensure_shapes", "set_epoch", "transforms",
]
