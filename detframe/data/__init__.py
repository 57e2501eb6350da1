"""Data: dataset readers, transforms, samplers, collate, loaders, the dataset check and the cache.
Importing this package registers every dataset, transform and the PipelineSwitchHook."""
from . import transforms
from .build import build_dataloader, build_dataset, set_epoch, set_skip, train_loader_options
from .collate import Collate
from .datasets import CocoDetection, ConcatDataset, DetectionDataset, RepeatDataset, VOCDetection, YOLODetection
from .samplers import SampleKey, TrainBatchSampler
from .synthetic import SHAPES_CLASSES, ensure_shapes
from . import hooks  # noqa: E402  (last: it imports the engine, which imports the names above)

__all__ = [
    "Collate", "CocoDetection", "ConcatDataset", "DetectionDataset", "RepeatDataset", "SHAPES_CLASSES", "SampleKey",
    "TrainBatchSampler", "VOCDetection", "YOLODetection", "build_dataloader", "build_dataset", "ensure_shapes", "hooks",
    "set_epoch", "set_skip", "train_loader_options", "transforms",
]
