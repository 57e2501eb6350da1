"""COCO-JSON reader (pycocotools), for COCO itself and any dataset in its format."""
from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from ...errors import DatasetError, choices_text
from ...registry import DATASETS
from ...structures import Sample
from .base import DetectionDataset, ImageRecord, image_size, sanitize_boxes


@DATASETS.register()
class CocoDetection(DetectionDataset):
    """Images and boxes of a COCO-format annotation file.

    Category ids need not be contiguous: label i is the i-th category by id (or by `class_names` order
    when given), and `category_ids[i]` maps it back for evaluation and exported results. `iscrowd: 1`
    boxes are ignored instances. Images without (non-crowd) boxes are kept unless `filter_empty`.

    Args:
        ann_file: the instances JSON.
        img_dir: folder the images' `file_name`s are relative to.
        class_names: optional; the category names to use, in label order. Every category that has
            annotations must be listed (a wrong class list must not train silently).
        filter_empty: drop images without (non-crowd) boxes: for training (nothing to learn from
            them in most detectors), not for evaluation (their false positives count).
        transforms: callable applied to each `Sample`.
        on_error: "error" or "skip" (see `DetectionDataset`).
    """

    def __init__(
        self,
        ann_file: str,
        img_dir: str,
        class_names: Sequence[str] | None = None,
        filter_empty: bool = False,
        transforms: Callable[[Sample], Sample] | None = None,
        on_error: str = "error",
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
            raise DatasetError(f"cannot read COCO annotation file {ann_path}: "
                               f"{type(e).__name__}: {e}") from None
        cats = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        by_name = {c["name"]: c["id"] for c in cats}
        if class_names is None:
            class_names = [c["name"] for c in cats]
        unknown = [n for n in class_names if n not in by_name]
        if unknown:
            raise DatasetError(f"{ann_path}: class_names {unknown} are not categories of this file. "
                               f"Its categories: {choices_text(by_name)}")
        super().__init__(class_names, transforms, on_error)
        self.source, self.ann_path, self.filter_empty = str(ann_path), ann_path, filter_empty
        self.category_ids = [by_name[n] for n in self.class_names]
        self.names_by_id = {c["id"]: c["name"] for c in cats}
        self._check_unlisted()
        self._check_ids()
        cat_to_label = {cid: i for i, cid in enumerate(self.category_ids)}
        for image_id in sorted(self.coco.getImgIds()):
            rec = self._parse(image_id, cat_to_label)
            if rec is None or (filter_empty and not (~rec.ignore).any()):
                continue
            self.records.append(rec)
        self.settle()

    def _check_unlisted(self) -> None:
        """Annotated categories missing from class_names: an error, or (skip) their images are dropped."""
        used = Counter(a["category_id"] for a in self.coco.dataset.get("annotations", []))
        unlisted = sorted(self.names_by_id[c] for c in used
                          if c in self.names_by_id and self.names_by_id[c] not in self.class_names)
        if unlisted and self.on_error == "error":
            raise DatasetError(
                f"{self.ann_path}: categories {unlisted} have annotations but are not in the config's "
                f"class_names {self.class_names}; list them, use a file without them, or set "
                f"data.on_error=skip to drop their images"
            )

    def _check_ids(self) -> None:
        images = self.coco.dataset.get("images", [])
        dup = [i for i, n in Counter(im.get("id") for im in images).items() if n > 1]
        for image_id in dup:
            self.problem(self.ann_path, f"{self.ann_path}: image id {image_id} appears "
                         f"{sum(im.get('id') == image_id for im in images)} "
                         "times in 'images' (pycocotools keeps the last)", "duplicate_id",
                         self.img_dir / self.coco.imgs[image_id].get("file_name", ""))

    def _parse(self, image_id: int, cat_to_label: dict[int, int]) -> ImageRecord | None:
        info = self.coco.imgs[image_id]
        path = self.img_dir / info.get("file_name", "")
        if not info.get("file_name"):
            self.problem(self.ann_path, f"{self.ann_path}: image id {image_id} has no file_name",
                         "unreadable_annotation")
            return None
        anns = self.coco.imgToAnns.get(image_id, [])
        for a in anns:
            name = self.names_by_id.get(a.get("category_id"))
            if name is None:
                self.problem(self.ann_path, f"{self.ann_path}: annotation {a.get('id')} of {path.name} has "
                             f"category_id {a.get('category_id')}, which is not in 'categories'",
                             "unknown_class", path, str(a.get("category_id")))
            elif a["category_id"] not in cat_to_label:
                self.problem(self.ann_path, f"{self.ann_path}: {path.name} has a '{name}' box, which is not "
                             f"in the config's class_names", "unknown_class", path, name)
        anns = [a for a in anns if a.get("category_id") in cat_to_label]
        try:
            xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        except (KeyError, ValueError, TypeError):
            self.problem(self.ann_path, f"{self.ann_path}: an annotation of {path.name} has a missing or "
                         "malformed bbox (expected [x, y, w, h])", "unreadable_annotation", path)
            return None
        width, height = int(info.get("width") or 0), int(info.get("height") or 0)
        if width <= 0 or height <= 0:
            try:
                height, width = image_size(path)
                self.quirks.add("images without width/height (read from the file)")
            except OSError as e:
                kind = "missing_image" if not path.exists() else "unreadable_image"
                self.problem(path, f"{self.ann_path}: {path.name} has no width/height and the file is "
                             f"unreadable: {e}", kind, path)
                return None
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        boxes, keep = sanitize_boxes(boxes, width, height, self.quirks)
        return ImageRecord(
            image_id=int(image_id), path=path, height=height, width=width, boxes=boxes[keep],
            labels=np.array([cat_to_label[a["category_id"]] for a in anns], np.int64)[keep],
            ignore=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)[keep],
            annotation=str(self.ann_path),
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
