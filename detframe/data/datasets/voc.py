"""Pascal VOC layout reader (VOCdevkit/VOC2007 and any custom set in the same layout).

Box convention: VOC XML gives 1-based, inclusive pixel indices (xmin=1 is the first column, xmax the
last column inside the box). We convert to the project's continuous xyxy convention with
x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax (detectron2 does the same), so that a box's width is
xmax - xmin + 1 pixels. Writers (synthetic set, exports) apply the inverse.
"""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import DatasetError, choices_text, did_you_mean
from ...registry import DATASETS
from ...structures import Sample
from .base import DetectionDataset, ImageRecord, sanitize_boxes

log = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

LAYOUT = "<root>/Annotations/<id>.xml, <root>/JPEGImages/<id>.jpg, <root>/ImageSets/Main/<split>.txt"


@DATASETS.register()
class VOCDetection(DetectionDataset):
    """Images listed in `ImageSets/Main/<split>.txt` under a VOC-layout `root`.

    Args:
        root: folder holding Annotations/, JPEGImages/ and ImageSets/Main/.
        split: name of the list file in ImageSets/Main (train, val, trainval, test).
        class_names: the classes, in label order; an object of another class is an error.
        keep_difficult: keep "difficult" objects as ignored instances (True) or drop them (False).
        img_ext: image file extension.
        transforms: callable applied to each `Sample`.
    """

    def __init__(
        self,
        root: str,
        split: str,
        class_names: Sequence[str] = VOC_CLASSES,
        keep_difficult: bool = True,
        img_ext: str = ".jpg",
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        super().__init__(class_names, transforms)
        self.root = Path(root).expanduser()
        self.split = split
        self.keep_difficult = keep_difficult
        self.img_ext = img_ext
        if not self.root.is_dir():
            raise DatasetError(f"VOC dataset root not found: '{self.root}'. Expected the Pascal VOC layout {LAYOUT}")
        list_file = self.root / "ImageSets" / "Main" / f"{split}.txt"
        if not list_file.is_file():
            found = sorted(p.stem for p in (self.root / "ImageSets" / "Main").glob("*.txt"))
            raise DatasetError(
                f"VOC split list not found: '{list_file}'.{did_you_mean(split, found)} "
                f"Splits there: {choices_text(found)}. Expected the layout {LAYOUT}"
            )
        ids = [line.strip().split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        self.class_to_label = {name: i for i, name in enumerate(self.class_names)}
        self.dropped_boxes = 0
        self.records = [self._parse(i, name) for i, name in enumerate(ids)]
        if self.dropped_boxes:
            log.warning("%s: dropped %d boxes with no area inside the image", list_file, self.dropped_boxes)

    def _parse(self, index: int, name: str) -> ImageRecord:
        xml_path = self.root / "Annotations" / f"{name}.xml"
        # The image is found by id, not by <filename>/<path>: those often name another machine's files.
        img_path = self.root / "JPEGImages" / f"{name}{self.img_ext}"
        try:
            root = ET.parse(xml_path).getroot()
        except FileNotFoundError:
            raise DatasetError(f"annotation file not found: {xml_path} (listed in ImageSets/Main/{self.split}.txt)") from None
        except ET.ParseError as e:
            raise DatasetError(f"cannot parse annotation file {xml_path}: {e}") from None
        size = root.find("size")
        try:
            width, height = int(float(size.findtext("width"))), int(float(size.findtext("height")))
        except (AttributeError, TypeError, ValueError):
            width = height = 0
        if width <= 0 or height <= 0:
            try:
                with Image.open(img_path) as im:  # reads the header only
                    width, height = im.size
            except OSError as e:
                raise DatasetError(f"{xml_path} has no <size> and its image {img_path} is unreadable: {e}") from None
        boxes, labels, ignore = [], [], []
        for obj in root.iter("object"):
            cls = (obj.findtext("name") or "").strip()
            if cls not in self.class_to_label:
                raise DatasetError(
                    f"{xml_path}: object class '{cls}' is not in the config's class_names.{did_you_mean(cls, self.class_names)} "
                    f"class_names: {choices_text(self.class_names)}"
                )
            difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true")
            if difficult and not self.keep_difficult:
                continue
            bnd = obj.find("bndbox")
            try:
                xmin, ymin, xmax, ymax = (float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                raise DatasetError(f"{xml_path}: an object of class '{cls}' has a missing or non-numeric <bndbox>") from None
            boxes.append([xmin - 1, ymin - 1, xmax, ymax])
            labels.append(self.class_to_label[cls])
            ignore.append(difficult)
        boxes = np.array(boxes, np.float32).reshape(-1, 4)
        boxes, keep = sanitize_boxes(boxes, width, height)
        self.dropped_boxes += int((~keep).sum())
        return ImageRecord(
            image_id=index, path=img_path, height=height, width=width, boxes=boxes[keep],
            labels=np.array(labels, np.int64)[keep], ignore=np.array(ignore, bool)[keep],
        )
