"""`DetectionDataset`, what every reader is: its records (records.py), image loading, the error/skip
policy for bad input, the report of quirks fixed on reading, and the COCO view for evaluation."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ...errors import ConfigError, DatasetError, choices_text
from ...ops.masks import decode_masks
from ...structures import Sample
from ..imagefile import SKIP_HINT, read_image
from ..samplers import seeded
from ..transforms import Compose, rescale_long_side
from .records import (
    DROPPED,
    UNKNOWN_CLASS_FIX,
    ImageRecord,
    Problem,
    Quirks,
)

log = logging.getLogger(__name__)

ON_ERROR = ("error", "skip", "collect")  # collect: keep the problems for a report (tools/check_dataset.py)
MAX_WARNINGS = 100  # under on_error=skip, skipped files are named one by one up to this many


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
        self.listed = 0  # images the source lists (the readers set it)
        self.skipped: set = set()  # images dropped for bad input under on_error=skip
        self.cache = None  # an ImageCache, see data/cache.py
        self.with_masks = False  # the records carry instance masks (readers that can read them set it)

    # -- bad input ------------------------------------------------------------------------------

    def problem(self, file: Any, message: str, kind: str, image: Path | None = None,
                detail: str = "", fix: str = "") -> None:
        self.problems.append(Problem(str(file), message, kind, image, detail, fix))

    def settle(self, problems: Sequence[Problem] | None = None) -> None:
        """Apply the on_error policy to `problems` (default: those found while reading) and report
        the quirks fixed on reading, once."""
        if problems is None:
            problems = self.problems
            self._report_quirks()
        else:
            self.problems.extend(problems)
        if not problems or self.on_error == "collect":
            return
        if self.on_error == "error":
            files = {p.file for p in problems}
            more = (f" (and {len(problems) - 1} more problems in {len(files)} files: python "
                    "tools/check_dataset.py lists them)" if len(problems) > 1 else "")
            raise DatasetError(f"{problems[0].message}; {problems[0].how_to_go_on}{more}")
        for p in problems[:MAX_WARNINGS]:
            log.warning("skipped %s: %s", p.image or p.file, p.message)
        if len(problems) > MAX_WARNINGS:
            log.warning("... and %d more problems (python tools/check_dataset.py lists them all)",
                        len(problems) - MAX_WARNINGS)
        bad = {p.image for p in problems if p.image is not None}
        # Images whose record was never made (unparseable annotation) count as much as those dropped here.
        self.skipped.update(p.image if p.image is not None else p.message for p in problems)
        self.records = [r for r in self.records if r.path not in bad]
        log.warning("%s: skipped %d of %d images for bad input, kept %d (data.on_error=skip)",
                    self.source or type(self).__name__, len(self.skipped),
                    max(self.listed, len(self.records) + len(self.skipped)), len(self.records))

    def _report_quirks(self) -> None:
        name = self.source or type(self).__name__
        if self.quirks.counts:
            log.info("%s: fixed on reading: %s", name, self.quirks.text())
        for line in self.quirks.warnings():
            log.warning("%s: %s", name, line)

    def no_boxes_reason(self) -> str | None:
        """Why no box is left to learn from or to evaluate (every box ignored, dropped, or never
        there), or None when there is one."""
        if any((~r.ignore).any() for r in self.records):
            return None
        ignored = sum(int(r.ignore.sum()) for r in self.records)
        dropped = {what: self.quirks.counts[what] for what in DROPPED if self.quirks.counts[what]}
        facts = []
        if self.skipped:
            facts.append(f"{len(self.skipped)} of its {max(self.listed, len(self.skipped))} images were "
                         "skipped for bad input (data.on_error=skip)")
        if not self.listed and not self.records:
            facts.append("it lists no images")
        elif self.records and not ignored and not dropped:
            facts.append(f"none of its {len(self.records)} {'other ' if self.skipped else ''}images has "
                         "an object")
        if ignored:
            facts.append(f"its {ignored} boxes are all ignored regions ({self.ignored_what()}), "
                         "which neither train nor count in evaluation")
        if dropped:
            facts.append("every box was dropped on reading: "
                         + ", ".join(f"{n} {what}" for what, n in dropped.items()))
        return "; ".join(facts)

    def no_masks_reason(self) -> str:
        """Why this dataset gives no instance masks (for the one-line error when they are needed)."""
        return f"the {type(self).__name__} layout has boxes only"

    def ignored_what(self) -> str:
        """What the ignored boxes are in this layout, and how to count them (for messages)."""
        return "difficult / crowd"

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
                _check_decoded_size(image, rec)
                break
            except DatasetError as e:
                if self.on_error != "skip":
                    raise
                log.warning("skipped %s: %s (using the next image)", rec.path, e)
        else:
            raise DatasetError(f"{self.source}: no readable image at all")
        masks = None if rec.masks is None else decode_masks(rec.masks, rec.height, rec.width)
        return Sample(
            image=image, boxes=rec.boxes.copy(), labels=rec.labels.copy(), ignore=rec.ignore.copy(),
            image_id=rec.image_id, orig_size=image.shape[:2], file_name=str(rec.path), masks=masks,
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
        regions that neither count as misses nor make detections false positives. Records read with
        masks give each annotation its `segmentation` (compressed RLE), for mask AP.
        """
        images, annotations = [], []
        for rec in self.records:
            images.append({"id": rec.image_id, "width": rec.width, "height": rec.height,
                           "file_name": rec.path.name})
            masks = rec.masks if rec.masks is not None else [None] * len(rec.labels)
            for box, label, ignore, rle in zip(rec.boxes, rec.labels, rec.ignore, masks):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": rec.image_id,
                    "category_id": self.category_ids[int(label)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(ignore),
                    **({"segmentation": _json_rle(rle)} if rle is not None else {}),
                })
        categories = [{"id": cid, "name": name} for cid, name in zip(self.category_ids, self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def __repr__(self) -> str:
        boxes = sum(len(r.labels) for r in self.records)
        return f"{type(self).__name__}({len(self)} images, {boxes} boxes, {len(self.class_names)} classes)"


def _json_rle(rle: dict) -> dict:
    """A compressed RLE with its `counts` as text, as COCO files write it."""
    counts = rle["counts"]
    text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    return {"size": list(rle["size"]), "counts": text}


def _check_decoded_size(image: np.ndarray, rec: ImageRecord) -> None:
    """The decoded image must have the size its boxes were read (and clipped) for: the start-up check
    compares headers, this catches files changed since and runs where the check was turned off."""
    if image.shape[:2] != (rec.height, rec.width):
        raise DatasetError(
            f"{rec.path} decodes to {image.shape[0]}x{image.shape[1]} (h x w), but "
            f"{rec.annotation or 'its annotation'} says {rec.height}x{rec.width}, so its boxes would not "
            f"match the pixels; fix the size in the annotation (or the image), or {SKIP_HINT}")


def class_problem(dataset: DetectionDataset, file: Any, name: str, image: Path | None,
                  did_you_mean_text: str) -> None:
    """Record an object whose class is not in the config's class_names."""
    dataset.problem(
        file, f"{file}: object class '{name}' is not in the config's class_names.{did_you_mean_text} "
              f"class_names: {choices_text(dataset.class_names)}", "unknown_class", image, name,
        fix=UNKNOWN_CLASS_FIX)


