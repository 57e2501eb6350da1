"""What the dataset readers share: parsed records, image loading, the error/skip policy for bad
input, the counters of annotation quirks fixed on reading, and the COCO view for evaluation."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from ...errors import ConfigError, DatasetError, choices_text
from ...structures import Sample
from ..samplers import seeded
from ..transforms import Compose, rescale_long_side

log = logging.getLogger(__name__)

ON_ERROR = ("error", "skip", "collect")  # collect: keep the problems for a report (tools/check_dataset.py)
MAX_WARNINGS = 100  # under on_error=skip, skipped files are named one by one up to this many


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
    annotation: str = ""  # the file the annotations came from (for messages)


@dataclass
class Problem:
    """Bad input found while reading or checking a dataset: the file, what is wrong, and its kind."""

    file: str
    message: str
    # unknown_class | unreadable_annotation | missing_annotation | missing_image | unreadable_image | ...
    kind: str
    image: Path | None = None  # the image whose record it spoils (dropped under on_error=skip)
    detail: str = ""  # e.g. the unknown class name


@dataclass
class Quirks:
    """Counts of annotation quirks fixed on reading, reported once per dataset."""

    counts: Counter = field(default_factory=Counter)

    def add(self, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] += n

    def text(self) -> str:
        return ", ".join(f"{n} {what}" for what, n in self.counts.items())


def sanitize_boxes(boxes: np.ndarray, width: int, height: int,
                   quirks: Quirks | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Drop degenerate boxes (no area as written), clip the others to the image, drop those left
    with no area (entirely outside), and count each case in `quirks`.

    Returns:
        (clipped boxes [N, 4], keep mask [N]).
    """
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, height)
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    changed = (clipped != boxes).any(axis=1)
    if quirks is not None:
        quirks.add("degenerate boxes (no area) dropped", int(degenerate.sum()))
        quirks.add("boxes outside the image dropped", int((empty & ~degenerate).sum()))
        quirks.add("boxes clipped to the image", int((changed & ~empty).sum()))
    return clipped, ~(degenerate | empty)


class DetectionDataset(Dataset):
    """A list of `ImageRecord`s; `__getitem__` reads the image and applies `transforms`.

    Subclasses parse their layout into `self.records` (calling `self.problem(...)` for bad input and
    `self.quirks.add(...)` for what they fix), set `self.category_ids` (the dataset's own id for each
    contiguous label, used by evaluators and exported results), then call `self.settle()`.

    Args:
        class_names: the classes, in label order.
        transforms: a `Compose` (or any callable on a `Sample`).
        on_error: "error" (default): bad input raises `DatasetError` naming the file; "skip": the
            images concerned are dropped with a warning naming each, and a count.
    """

    def __init__(self, class_names: Sequence[str], transforms: Callable[[Sample], Sample] | None = None,
                 on_error: str = "error") -> None:
        if on_error not in ON_ERROR:
            raise ConfigError(f"data.on_error: expected 'error' or 'skip', got '{on_error}'")
        self.class_names = list(class_names)
        self.transforms = transforms
        self.on_error = on_error
        self.records: list[ImageRecord] = []
        self.category_ids: list[int] = list(range(1, len(self.class_names) + 1))
        self.quirks = Quirks()
        self.problems: list[Problem] = []
        self.source = ""  # what was read (list file, annotation file), for messages
        self.cache = None  # an ImageCache, see data/cache.py

    # -- bad input ------------------------------------------------------------------------------

    def problem(self, file: Any, message: str, kind: str, image: Path | None = None,
                detail: str = "") -> None:
        self.problems.append(Problem(str(file), message, kind, image, detail))

    def settle(self, problems: Sequence[Problem] | None = None) -> None:
        """Apply the on_error policy to `problems` (default: those found while reading) and report
        the quirks fixed on reading, once."""
        if problems is None:
            problems = self.problems
            if self.quirks.counts:
                log.info("%s: fixed on reading: %s", self.source or type(self).__name__, self.quirks.text())
        else:
            self.problems.extend(problems)
        if not problems or self.on_error == "collect":
            return
        if self.on_error == "error":
            files = {p.file for p in problems}
            more = (f" (and {len(problems) - 1} more problems in {len(files)} files: python "
                    "tools/check_dataset.py lists them; data.on_error=skip drops the images concerned)"
                    if len(problems) > 1 else "")
            raise DatasetError(problems[0].message + more)
        bad = {p.image for p in problems if p.image is not None}
        for p in problems[:MAX_WARNINGS]:
            log.warning("skipped %s: %s", p.image or p.file, p.message)
        if len(problems) > MAX_WARNINGS:
            log.warning("... and %d more problems (python tools/check_dataset.py lists them all)",
                        len(problems) - MAX_WARNINGS)
        before = len(self.records)
        self.records = [r for r in self.records if r.path not in bad]
        log.warning("%s: skipped %d of %d images for bad input (data.on_error=skip)",
                    self.source or type(self).__name__, before - len(self.records), before)

    # -- samples --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.records)

    def record(self, index: int) -> ImageRecord:
        return self.records[index]

    def read_image(self, rec: ImageRecord) -> np.ndarray:
        if self.cache is not None:
            return self.cache.get(rec.path)
        return read_image(rec.path)

    def load_sample(self, index: int) -> Sample:
        """The untransformed sample at `index`. Under on_error=skip an unreadable image is replaced,
        with a warning, by the next readable one."""
        for attempt in range(len(self)):
            rec = self.record((index + attempt) % len(self))
            try:
                image = self.read_image(rec)
                break
            except DatasetError as e:
                if self.on_error != "skip":
                    raise
                log.warning("skipped %s: %s (using the next image)", rec.path, e)
        else:
            raise DatasetError(f"{self.source}: no readable image at all")
        return Sample(
            image=image, boxes=rec.boxes.copy(), labels=rec.labels.copy(), ignore=rec.ignore.copy(),
            image_id=rec.image_id, orig_size=image.shape[:2], file_name=str(rec.path),
        )

    def __getitem__(self, key: Any) -> Sample:
        """The transformed sample for an index, or for a `SampleKey` from the training sampler,
        which also carries the sample's random seed, the batch's size (multi-scale training) and
        the transforms to skip (PipelineSwitchHook)."""
        index, seed, size, skip = key if isinstance(key, tuple) else (key, None, None, ())
        with seeded(seed):
            return self._transformed(index, size, skip)

    def _transformed(self, index: int, size: int | None, skip: Sequence[str]) -> Sample:
        sample = self.load_sample(index)
        if isinstance(self.transforms, Compose):
            sample = self.transforms(sample, source=self, skip=skip)
        elif self.transforms is not None:
            sample = self.transforms(sample)
        if size:
            sample = rescale_long_side(sample, size)
        return sample

    def aspect_ratios(self) -> np.ndarray:
        """[len(self)] width / height of each image (for aspect-ratio grouping)."""
        return np.array([self.record(i).width / max(self.record(i).height, 1) for i in range(len(self))],
                        np.float32)

    # -- ground truth ---------------------------------------------------------------------------

    def to_coco(self) -> dict:
        """Ground truth as a COCO-format dict (original pixels, this dataset's category ids).

        Ignored instances (VOC difficult, COCO crowd) become `iscrowd: 1`, which pycocotools treats as
        regions that neither count as misses nor make detections false positives.
        """
        images, annotations = [], []
        for rec in self.records:
            images.append({"id": rec.image_id, "width": rec.width, "height": rec.height,
                           "file_name": rec.path.name})
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
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        if not Path(path).is_file():
            raise DatasetError(f"image file not found: {path}")
        raise DatasetError(f"cannot decode image file {path} (corrupt, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file from its header, as decoded (EXIF rotation applied, as
    OpenCV does). Raises OSError if the file is missing or not an image."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        try:
            orientation = im.getexif().get(0x0112, 1)
        except Exception:  # a broken EXIF block is not our concern here
            orientation = 1
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def class_problem(dataset: DetectionDataset, file: Any, name: str, image: Path | None,
                  did_you_mean_text: str) -> None:
    """Record an object whose class is not in the config's class_names."""
    dataset.problem(
        file, f"{file}: object class '{name}' is not in the config's class_names.{did_you_mean_text} "
              f"class_names: {choices_text(dataset.class_names)}", "unknown_class", image, name)


def unique_ids(records: Iterable[ImageRecord]) -> bool:
    ids = [r.image_id for r in records]
    return len(ids) == len(set(ids))
