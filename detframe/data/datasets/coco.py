"""COCO-JSON reader (pycocotools), for COCO itself and any dataset in its format.

The file's structure is checked before pycocotools indexes it (a JSON object with lists of images,
categories and annotations, integer ids), so that a file of another kind fails with one line naming
it. Bad annotations (a bbox that is not four finite numbers, a category id not in 'categories' or not
in the config's class_names) are errors naming the file and the annotation id, or drop the image
under data.on_error=skip; degenerate and out-of-image boxes are dropped or clipped and named in a
warning. Boxes are in the stored pixel order of the images (see data/imagefile.py). With
`with_masks`, each kept box's `segmentation` is read as well (segmentation.py): a malformed one is bad
input like a malformed bbox, and a file with no segmentation at all is one error naming it.
"""
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
from ..imagefile import SKIP_HINT
from .base import DetectionDataset
from .records import UNKNOWN_CLASS_FIX, ImageRecord, finite_number, image_size, positive_int, sanitize_boxes
from .segmentation import MASK_FORMS, segmentation_error, to_rle

REFORMAT = "fix or re-export the file (a COCO instances JSON: images, annotations, categories)"
# The integer ids each entry of a list needs for pycocotools to index it (categories also a name).
REQUIRED = {"images": ("id",), "categories": ("id",), "annotations": ("id", "image_id", "category_id")}


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
        with_masks: also read each annotation's `segmentation` (polygons, RLE) as an instance mask
            (`Sample.masks`); a malformed one is bad input like a malformed bbox.
    """

    def __init__(
        self,
        ann_file: str,
        img_dir: str,
        class_names: Sequence[str] | None = None,
        filter_empty: bool = False,
        transforms: Callable[[Sample], Sample] | None = None,
        on_error: str = "error",
        with_masks: bool = False,
    ) -> None:
        ann_path, self.img_dir = Path(ann_file).expanduser(), Path(img_dir).expanduser()
        if not ann_path.is_file():
            raise DatasetError(
                f"COCO annotation file not found: '{ann_path}'. Expected a COCO instances JSON "
                f"(images, annotations, categories) with image files under '{self.img_dir}'; point the "
                "dataset's ann_file at it"
            )
        self.coco = load_coco(ann_path)
        cats = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        by_name = {c["name"]: c["id"] for c in cats}
        if class_names is None:
            class_names = [c["name"] for c in cats]
        unknown = [n for n in class_names if n not in by_name]
        if unknown:
            raise DatasetError(f"{ann_path}: class_names {unknown} are not categories of this file. "
                               f"Its categories: {choices_text(by_name)}; list those you train on in "
                               "data.class_names")
        super().__init__(class_names, transforms, on_error)
        self.source, self.ann_path, self.filter_empty = str(ann_path), ann_path, filter_empty
        self.with_masks = with_masks
        if with_masks:
            self._check_has_masks()
        self.category_ids = [by_name[n] for n in self.class_names]
        self.names_by_id = {c["id"]: c["name"] for c in cats}
        self._check_unlisted()
        self._check_ids()
        cat_to_label = {cid: i for i, cid in enumerate(self.category_ids)}
        self.listed = len(self.coco.imgs)
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

    def _check_has_masks(self) -> None:
        """A file without any segmentation is a boxes-only set: one line, not one problem per box."""
        anns = self.coco.dataset.get("annotations") or []
        if anns and not any("segmentation" in a for a in anns):
            raise DatasetError(f"{self.ann_path}: {self.no_masks_reason()}; data.with_masks=true (asked "
                               "for by a model that needs instance masks) needs a COCO file with "
                               "'segmentation' polygons or RLE")

    def no_masks_reason(self) -> str:
        return "none of its annotations has a 'segmentation': the dataset has no instance masks"

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
        if not info.get("file_name") or not isinstance(info["file_name"], str):
            self.problem(self.ann_path, f"{self.ann_path}: image id {image_id} has no file_name",
                         "unreadable_annotation")
            return None
        path = self.img_dir / info["file_name"]
        size = self._size(info, path)
        if size is None:
            return None
        height, width = size
        boxes, labels, ignore, names, masks = [], [], [], [], []
        for a in self.coco.imgToAnns.get(image_id, []):
            where = f"annotation {a['id']} ({path.name})"
            label = self._label(a, where, path, cat_to_label)
            box = self._box(a, where, path) if label is not None else None
            if label is not None and box is None:
                return None
            if box is None:
                continue
            if self.with_masks:
                rle = self._mask(a, where, path, height, width)
                if rle is None:
                    return None
                masks.append(rle)
            boxes.append(box)
            labels.append(label)
            ignore.append(bool(a.get("iscrowd", 0)))
            names.append(where)
        xywh = np.array(boxes, np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)  # x2 = x + w in float32
        boxes, keep = sanitize_boxes(boxes, width, height, self.quirks, names)
        return ImageRecord(
            image_id=int(image_id), path=path, height=height, width=width, boxes=boxes[keep],
            labels=np.array(labels, np.int64)[keep], ignore=np.array(ignore, bool)[keep],
            annotation=str(self.ann_path),
            masks=[m for m, k in zip(masks, keep) if k] if self.with_masks else None,
        )

    def _size(self, info: dict, path: Path) -> tuple[int, int] | None:
        """The image's (height, width) as the file states it, else from the image's header."""
        height, width = positive_int(info.get("height")), positive_int(info.get("width"))
        if height and width:
            return height, width
        try:
            size = image_size(path)
            self.quirks.add("images without width/height (read from the file)")
            return size
        except OSError as e:
            kind = "missing_image" if not path.exists() else "unreadable_image"
            self.problem(path, f"{self.ann_path}: {path.name} has no width/height and the file is "
                         f"unreadable: {e}", kind, path)
            return None

    def _mask(self, ann: dict, where: str, path: Path, height: int, width: int) -> dict | None:
        """An annotation's segmentation as compressed RLE, or None after recording a problem."""
        if "segmentation" not in ann:
            problem = "has no 'segmentation'"
        else:
            problem = segmentation_error(ann["segmentation"], height, width)
        if problem:
            self.problem(self.ann_path, f"{self.ann_path}: {where}: segmentation {problem}; expected "
                         f"{MASK_FORMS} (data.with_masks=true)", "bad_mask", path)
            return None
        return to_rle(ann["segmentation"], height, width)

    def _label(self, ann: dict, where: str, path: Path, cat_to_label: dict[int, int]) -> int | None:
        """The annotation's label, or None (a problem recorded unless it is merely unlisted)."""
        name = self.names_by_id.get(ann["category_id"])
        if name is None:
            self.problem(self.ann_path, f"{self.ann_path}: {where} has category_id {ann['category_id']}, "
                         "which is not in 'categories'", "unknown_class", path, str(ann["category_id"]),
                         fix=f"add the category to 'categories' or correct the annotation, or {SKIP_HINT}")
            return None
        if ann["category_id"] not in cat_to_label:
            self.problem(self.ann_path, f"{self.ann_path}: {where} is a '{name}' box, which is not in the "
                         "config's class_names", "unknown_class", path, name, fix=UNKNOWN_CLASS_FIX)
            return None
        return cat_to_label[ann["category_id"]]

    def _box(self, ann: dict, where: str, path: Path) -> list[float] | None:
        """An annotation's [x, y, w, h] bbox, or None after recording a problem: a missing, short or
        non-finite (NaN, Infinity) bbox must not reach training or evaluation."""
        bbox = ann.get("bbox")
        values = ([finite_number(v) if isinstance(v, (int, float)) else None for v in bbox]
                  if isinstance(bbox, list) and len(bbox) == 4 else [None])
        if any(v is None for v in values):
            self.problem(self.ann_path, f"{self.ann_path}: {where}: bbox {json.dumps(bbox)} is not "
                         "[x, y, w, h] of finite numbers", "bad_box", path)
            return None
        return values

    def no_boxes_reason(self) -> str | None:
        """What the file itself lacks (annotations, boxes other than crowd regions), or the generic
        reason."""
        reason = super().no_boxes_reason()
        if reason is None or self.skipped:
            return reason
        anns = self.coco.dataset.get("annotations")
        if "annotations" not in self.coco.dataset:
            return f"the file has no 'annotations' key ({self.listed} images)"
        if not anns:
            return f"its 'annotations' list is empty ({self.listed} images)"
        if all(a.get("iscrowd") for a in anns):
            return (f"its {len(anns)} annotations are all crowd regions (iscrowd: 1), which neither train "
                    "nor count in evaluation")
        return reason

    def to_coco(self) -> dict:
        """The annotation file itself: evaluation uses the dataset's own ids, areas and crowd flags."""
        kept = {r.image_id for r in self.records}
        data = self.coco.dataset
        return {
            **data,
            "images": [i for i in data["images"] if i["id"] in kept],
            "annotations": [a for a in data.get("annotations", []) if a["image_id"] in kept],
        }


def load_coco(path: Path) -> COCO:
    """pycocotools' index of a COCO instances file whose structure has been checked first, so that
    any other JSON fails with one line naming the file and the entry."""
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read COCO annotation file {path}: not valid JSON ({e}); "
                           f"{REFORMAT}") from None
    except OSError as e:
        raise DatasetError(f"cannot read COCO annotation file {path}: {e}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path} is not a COCO instances file: it holds a JSON {type(data).__name__}, "
                           f"not an object; {REFORMAT}")
    for key in REQUIRED:
        if key not in data and key != "annotations":  # no annotations: an unlabelled set, said later
            raise DatasetError(f"{path}: the '{key}' list is missing; {REFORMAT}")
        if not isinstance(data.get(key, []), list):
            raise DatasetError(f"{path}: '{key}' is not a list; {REFORMAT}")
        for i, entry in enumerate(data.get(key, [])):
            _check_entry(path, key, i, entry)
    coco = COCO()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.dataset = data
        coco.createIndex()
    return coco


def _check_entry(path: Path, key: str, index: int, entry: object) -> None:
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: {key}[{index}] is not an object; {REFORMAT}")
    missing = [f"integer '{k}'" for k in REQUIRED[key] if not _is_int(entry.get(k))]
    if key == "categories" and "name" not in entry:
        missing.append("'name'")
    if missing:
        named = f" (id {entry['id']})" if "id" in entry else ""
        raise DatasetError(f"{path}: {key}[{index}]{named} has no {' or '.join(missing)}; {REFORMAT}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
