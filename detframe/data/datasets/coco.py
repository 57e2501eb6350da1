"""COCO-JSON reader (pycocotools), for COCO itself and any dataset in its format."""
from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from ...errors import DatasetError, choices_text
from ...registry import DATASETS
from ...structures import Sample
from .base import DetectionDataset, ImageRecord, sanitize_boxes

log = logging.getLogger(__name__)


@DATASETS.register()
class CocoDetection(DetectionDataset):
    """Images and boxes of a COCO-format annotation file.

    Category ids need not be contiguous: label i is the i-th category by id (or by `class_names` order
    when given), and `category_ids[i]` maps it back for evaluation and exported results.

    Args:
        ann_file: the instances JSON.
        img_dir: folder the images' `file_name`s are relative to.
        class_names: optional; the category names to use, in label order. Every category that has
            annotations must be listed (a wrong class list must not train silently).
        filter_empty: drop images without (non-crowd) boxes, for training.
        transforms: callable applied to each `Sample`.
    """

    def __init__(
        self,
        ann_file: str,
        img_dir: str,
        class_names: Sequence[str] | None = None,
        filter_empty: bool = False,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        ann_path, self.img_dir = Path(ann_file).expanduser(), Path(img_dir).expanduser()
        if not ann_path.is_file():
            raise DatasetError(
                f"COCO annotation file not found: '{ann_path}'. Expected a COCO instances JSON "
                f"(images, annotations, categories) with image files under '{self.img_dir}'"
            )
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                self.coco = COCO(str(ann_path))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise DatasetError(f"cannot read COCO annotation file {ann_path}: {type(e).__name__}: {e}") from None
        cats = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        by_name = {c["name"]: c["id"] for c in cats}
        if class_names is None:
            class_names = [c["name"] for c in cats]
        else:
            unknown = [n for n in class_names if n not in by_name]
            if unknown:
                raise DatasetError(f"{ann_path}: class_names {unknown} are not categories of this file. Its categories: {choices_text(by_name)}")
            used = {by_name_id for by_name_id in (a["category_id"] for a in self.coco.dataset.get("annotations", []))}
            unlisted = sorted(c["name"] for c in cats if c["id"] in used and c["name"] not in class_names)
            if unlisted:
                raise DatasetError(
                    f"{ann_path}: categories {unlisted} have annotations but are not in the config's class_names "
                    f"{list(class_names)}; list them or use a file without them"
                )
        super().__init__(class_names, transforms)
        self.category_ids = [by_name[n] for n in self.class_names]
        cat_to_label = {cid: i for i, cid in enumerate(self.category_ids)}
        self.dropped_boxes = 0
        for image_id in sorted(self.coco.getImgIds()):
            rec = self._parse(image_id, cat_to_label)
            if filter_empty and not (~rec.ignore).any():
                continue
            self.records.append(rec)
        if self.dropped_boxes:
            log.warning("%s: dropped %d boxes with no area inside the image", ann_path, self.dropped_boxes)

    def _parse(self, image_id: int, cat_to_label: dict[int, int]) -> ImageRecord:
        info = self.coco.imgs[image_id]
        anns = [a for a in self.coco.imgToAnns.get(image_id, []) if a["category_id"] in cat_to_label]
        xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        width, height = int(info.get("width", 0)), int(info.get("height", 0))
        boxes, keep = sanitize_boxes(boxes, width, height) if width and height else (boxes, np.ones(len(boxes), bool))
        self.dropped_boxes += int((~keep).sum())
        return ImageRecord(
            image_id=int(image_id), path=self.img_dir / info["file_name"], height=height, width=width,
            boxes=boxes[keep], labels=np.array([cat_to_label[a["category_id"]] for a in anns], np.int64)[keep],
            ignore=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)[keep],
        )

    def to_coco(self) -> dict:
        """The annotation file itself: evaluation uses the dataset's own ids, areas and crowd flags."""
        kept = {r.image_id for r in self.records}
        data = self.coco.dataset
        return {
            **data,
            "images": [i for i in data["images"] if i["id"] in kept],
            "annotations": [a for a in data.get("annotations", []) if a["image_id"] in kept],
        }
