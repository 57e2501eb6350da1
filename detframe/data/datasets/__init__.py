from .base import DetectionDataset, ImageRecord, read_image
from .coco import CocoDetection
from .voc import VOC_CLASSES, VOCDetection

__all__ = ["CocoDetection", "DetectionDataset", "ImageRecord", "VOCDetection", "VOC_CLASSES", "read_image"]
