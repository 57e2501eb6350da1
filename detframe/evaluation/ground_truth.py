"""Ground truth as flat arrays, read from the COCO-format view every dataset gives (`to_coco()`).

All evaluators (COCO, VOC, confusion matrix) start from the same view so that they agree on which
boxes exist, which are ignored (COCO crowd, VOC difficult: `iscrowd: 1`) and which ids name them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from ..errors import DatasetError


@dataclass
class GroundTruth:
    """The evaluated images and their boxes, in the dataset's own ids and original pixels.

    Annotations keep the order of the annotation file (pycocotools' matching depends on it) and only
    those on listed images with listed categories are kept, as pycocotools does.
    """

    image_ids: np.ndarray  # int64 [I], sorted, unique
    image_names: list[str]  # [I] file stem of each image ("" when unknown), for VOC-style result ids
    category_ids: np.ndarray  # int64 [K], sorted, unique
    category_names: list[str]  # [K]
    ann_ids: np.ndarray  # int64 [G]
    image_id: np.ndarray  # int64 [G]
    category_id: np.ndarray  # int64 [G]
    bbox: np.ndarray  # float64 [G, 4] xywh, absolute pixels
    area: np.ndarray  # float64 [G] the file's `area` (what COCO's small/medium/large use)
    iscrowd: np.ndarray  # bool [G] ignored regions: COCO crowd, VOC difficult

    @classmethod
    def from_coco(cls, data: dict[str, Any]) -> GroundTruth:
        """Parse a COCO instances dict (images, annotations, categories)."""
        images = data.get("images") or []
        cats = sorted(data.get("categories") or [], key=lambda c: c["id"])
        image_ids = np.array([int(i["id"]) for i in images], np.int64)
        order = np.argsort(image_ids, kind="stable")
        names = [PurePath(str(images[i].get("file_name", ""))).stem for i in order]
        image_ids = image_ids[order]
        if len(np.unique(image_ids)) != len(image_ids):
            dup = image_ids[np.flatnonzero(np.diff(image_ids) == 0)[0]]
            raise DatasetError(f"ground truth: image id {dup} is listed more than once")
        category_ids = np.array([int(c["id"]) for c in cats], np.int64)
        anns = [a for a in data.get("annotations") or []]
        gt = cls(
            image_ids=image_ids, image_names=names, category_ids=category_ids,
            category_names=[str(c.get("name", c["id"])) for c in cats],
            ann_ids=np.array([int(a.get("id", 0)) for a in anns], np.int64),
            image_id=np.array([int(a["image_id"]) for a in anns], np.int64),
            category_id=np.array([int(a["category_id"]) for a in anns], np.int64),
            bbox=np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4),
            area=np.array([a["area"] if "area" in a else a["bbox"][2] * a["bbox"][3] for a in anns],
                          np.float64),
            iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
        )
        keep = np.isin(gt.image_id, image_ids) & np.isin(gt.category_id, category_ids)
        return gt.select(keep) if not keep.all() else gt

    @classmethod
    def from_dataset(cls, dataset: Any) -> GroundTruth:
        """From any dataset with `to_coco()` (detframe.data.DetectionDataset and subclasses)."""
        if not hasattr(dataset, "to_coco"):
            raise DatasetError(f"{type(dataset).__name__} has no to_coco(): evaluators need the ground truth "
                               "in COCO form")
        return cls.from_coco(dataset.to_coco())

    def select(self, keep: np.ndarray) -> GroundTruth:
        """A copy with the annotations where `keep` is set (images and categories unchanged)."""
        return GroundTruth(
            self.image_ids, self.image_names, self.category_ids, self.category_names, self.ann_ids[keep],
            self.image_id[keep], self.category_id[keep], self.bbox[keep], self.area[keep], self.iscrowd[keep],
        )

    def __len__(self) -> int:
        return len(self.ann_ids)

    @property
    def boxes_xyxy(self) -> np.ndarray:
        """float64 [G, 4] xyxy absolute."""
        return np.concatenate([self.bbox[:, :2], self.bbox[:, :2] + self.bbox[:, 2:]], axis=1)

    def image_rank(self, image_id: np.ndarray) -> np.ndarray:
        """Position of each id in `image_ids`, -1 for an unknown id."""
        return _lookup(self.image_ids, image_id)

    def category_index(self, category_id: np.ndarray) -> np.ndarray:
        """Position of each id in `category_ids`, -1 for an unknown id."""
        return _lookup(self.category_ids, category_id)


# Ids up to this use a dense table (4 bytes per possible id): one array read per lookup instead of a binary
# search; COCO's largest image id (581,929) is far below it.
_DENSE_LIMIT = 1 << 24


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions of `ids` in the sorted unique array `sorted_ids`; -1 where absent."""
    ids = np.asarray(ids, np.int64)
    if len(sorted_ids) == 0 or len(ids) == 0:
        return np.full(len(ids), -1, np.int64)
    low, high = int(sorted_ids[0]), int(sorted_ids[-1])
    if 0 <= low and high < _DENSE_LIMIT:
        table = np.full(high + 2, -1, np.int64)
        table[sorted_ids] = np.arange(len(sorted_ids))
        return table[np.clip(ids, -1, high + 1)]  # out of range -> the -1 at index high + 1 (or -1 itself)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)
