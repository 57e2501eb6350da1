from .base import DetectionDataset, read_image
from .coco import CocoDetection
from .records import ImageRecord, Problem, image_size
from .voc import VOC_CLASSES, VOCDetection
from .wrappers import ConcatDataset, RepeatDataset
from .yolo import YOLODetection

__all__ = [
    "CocoDetection", "ConcatDataset", "DetectionDataset", "ImageRecord", "Problem", "RepeatDataset",
    "VOCDetection", "VOC_CLASSES", "YOLODetection", "image_size", "read_image",
]
