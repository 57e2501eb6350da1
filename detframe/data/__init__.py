"""Data: dataset readers, transforms, samplers, collate, loaders, the dataset check and the cache.
Importing this package registers every dataset and transform."""
from . import transforms
from .build import build_dataloader, build_dataset, set_epoch, set_skip, train_loader_options
from .collate import Collate
from .datasets import (
    CocoDetection,
    ConcatDataset,
    DetectionDataset,
    RepeatDataset,
    VOCDetection,
    YOLODetection,
)
from .samplers import KeyedDataset, SampleKey, TrainBatchSampler, seeded, skip_batches
from .synthetic import SHAPES_CLASSES, ensure_shapes

__all__ = [
    "Collate", "CocoDetection", "ConcatDataset", "DetectionDataset", "KeyedDataset", "RepeatDataset",
    "SHAPES_CLASSES", "SampleKey", "TrainBatchSampler", "VOCDetection", "YOLODetection", "build_dataloader",
    "build_dataset", "ensure_shapes", "seeded", "set_epoch", "set_skip", "skip_batches",
    "train_loader_options", "transforms",
]
