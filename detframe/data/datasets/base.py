"""What the VOC and COCO readers share: parsed records, image loading, the COCO view for evaluation."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from ...errors import DatasetError
from ...structures import Sample

log = logging.getLogger(__name__)


@dataclass
class ImageRecord:
    """One image's annotations as parsed from disk, before any transform."""

    image_id: int
    path: Path
    height: int
    width: int
    boxes: np.ndarray  # float32 [N, 4] xyxy absolute
    labels: np.ndarray  # int64 [N]
    ignore: np.ndarray  # bool [N]


class DetectionDataset(Dataset):
    """A list of `ImageRecord`s; `__getitem__` reads the image and applies `transforms`.

    Subclasses parse their layout into `self.records` and set `self.class_names` and `self.category_ids`
    (the dataset's own id for each contiguous label, used by evaluators and exported results).
    """

    def __init__(self, class_names: Sequence[str], transforms: Callable[[Sample], Sample] | None = None) -> None:
        self.class_names = list(class_names)
        self.transforms = transforms
        self.records: list[ImageRecord] = []
        self.category_ids: list[int] = list(range(1, len(self.class_names) + 1))

    def __len__(self) -> int:
        return len(self.records)

    def load_sample(self, index: int) -> Sample:
        """The untransformed sample at `index`."""
        rec = self.records[index]
        image = read_image(rec.path)
        if image.shape[:2] != (rec.height, rec.width):
            # The annotation's <size>/width/height disagrees with the file; trust the pixels.
            rec.height, rec.width = image.shape[:2]
        return Sample(
            image=image, boxes=rec.boxes.copy(), labels=rec.labels.copy(), ignore=rec.ignore.copy(),
            image_id=rec.image_id, orig_size=(rec.height, rec.width), file_name=str(rec.path),
        )

    def __getitem__(self, index: int) -> Sample:
        sample = self.load_sample(index)
        return self.transforms(sample) if self.transforms is not None else sample

    def to_coco(self) -> dict:
        """Ground truth as a COCO-format dict (original pixels, this dataset's category ids).

        Ignored instances (VOC difficult, COCO crowd) become `iscrowd: 1`, which pycocotools treats as
        regions that neither count as misses nor make detections false positives.
        """
        images, annotations = [], []
        for rec in self.records:
            images.append({"id": rec.image_id, "width": rec.width, "height": rec.height, "file_name": rec.path.name})
            for box, label, ignore in zip(rec.boxes, rec.labels, rec.ignore):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": rec.image_id,
                    "category_id": self.category_ids[int(label)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(ignore),
                })
        categories = [{"id": cid, "name": name} for cid, name in zip(self.category_ids, self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def __repr__(self) -> str:
        boxes = sum(len(r.labels) for r in self.records)
        return f"{type(self).__name__}({len(self)} images, {boxes} boxes, {len(self.class_names)} classes)"


def read_image(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB [H, W, 3]; a missing or unreadable file names itself."""
    if not path.is_file():
        raise DatasetError(f"image file not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot decode image file {path} (corrupt, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def sanitize_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to the image and flag the ones left with no area.

    Returns:
        (clipped boxes [N, 4], keep mask [N]).
    """
    boxes = boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, keep
