"""The parsed form of a dataset's annotations, and the helpers every reader uses to get there: image
records, problems found in the files (with how to go on), the counters of quirks fixed on reading
(with the first places of each), box sanitising, and number and list parsing that refuses what is not
finite."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetError
from ..imagefile import SKIP_HINT, read_header

MAX_EXAMPLES = 3  # files named per kind of dropped or clipped box
# Quirks that change or drop a box: each is logged as a warning naming its first files and objects.
DEGENERATE, OUTSIDE, CLIPPED = ("degenerate boxes (no area) dropped", "boxes outside the image dropped",
                                "boxes clipped to the image")
DROPPED = (DEGENERATE, OUTSIDE)
UNKNOWN_CLASS_FIX = f"add the class to data.class_names or correct the file, or {SKIP_HINT}"


@dataclass
class ImageRecord:
    """One image's annotations as parsed from disk, before any transform."""

    image_id: int
    path: Path
    height: int  # as the annotation states it (or read from the image's header), stored pixel order
    width: int
    boxes: np.ndarray  # float32 [N, 4] xyxy absolute
    labels: np.ndarray  # int64 [N]
    ignore: np.ndarray  # bool [N]
    annotation: str = ""  # the file the annotations came from (for messages)
    masks: list[dict] | None = None  # [N] compressed RLEs (pycocotools), one per box; None: no masks read


@dataclass
class Problem:
    """Bad input found while reading or checking a dataset: the file, what is wrong, and its kind."""

    file: str
    message: str
    # unknown_class | unreadable_annotation | missing_annotation | missing_image | unreadable_image |
    # bad_box | bad_label | bad_mask | size_mismatch | duplicate_id
    kind: str
    image: Path | None = None  # the image whose record it spoils (dropped under on_error=skip)
    detail: str = ""  # e.g. the unknown class name
    fix: str = ""  # how to go on, when not "fix the file, or set data.on_error=skip ..."

    @property
    def how_to_go_on(self) -> str:
        return self.fix or f"fix the file, or {SKIP_HINT}"


@dataclass
class Quirks:
    """Counts of annotation quirks fixed on reading, reported once per dataset, with the first few
    places of each (`examples`, e.g. "a.xml (object 2)") for those that change or drop boxes."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, what: str, n: int = 1, examples: Iterable[str] = ()) -> None:
        if n:
            self.counts[what] += n
        examples = list(examples)
        if examples:
            named = self.examples.setdefault(what, [])
            named.extend(examples[:max(0, MAX_EXAMPLES - len(named))])

    def update(self, other: Quirks) -> None:
        self.counts.update(other.counts)
        for what, names in other.examples.items():
            self.add(what, 0, names)

    def text(self) -> str:
        return ", ".join(f"{n} {what}" for what, n in self.counts.items())

    def warnings(self) -> list[str]:
        """One line per kind of changed or dropped box: the count and the first places."""
        return [f"{self.counts[what]} {what}: " + ", ".join(names)
                + (", ..." if self.counts[what] > len(names) else "")
                for what, names in self.examples.items() if names]


def sanitize_boxes(boxes: np.ndarray, width: int, height: int, quirks: Quirks | None = None,
                   names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Drop degenerate boxes (no area as written), clip the others to the image, drop those left
    with no area (entirely outside), and count each case in `quirks`.

    Args:
        boxes: [N, 4] xyxy absolute, finite (the readers refuse non-finite coordinates first).
        width, height: the image's size.
        quirks: where to count (and name) the boxes dropped or clipped.
        names: [N] where each box comes from, e.g. "a.xml (object 2)", for the warnings.

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
        kinds = ((DEGENERATE, degenerate), (OUTSIDE, empty & ~degenerate), (CLIPPED, changed & ~empty))
        for what, mask in kinds:
            where = np.flatnonzero(mask)
            quirks.add(what, len(where), [names[i] for i in where[:MAX_EXAMPLES]] if names else ())
    return clipped, ~(degenerate | empty)


def finite_number(text: Any) -> float | None:
    """`text` (a string or a JSON value) as a finite float, or None: NaN, inf, '', None, words, bools."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        return None
    try:
        value = float(text)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def positive_int(value: Any) -> int:
    """A stated image width or height as a positive int, or 0 when missing or not a finite number."""
    number = finite_number(value)
    return int(number) if number is not None and number >= 1 else 0


def read_list(path: Path, what: str) -> list[str]:
    """The non-blank lines of a list file (split list, image list), or a DatasetError naming it."""
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read the {what} {path}: {e}; it must be a text file with one entry "
                           "a line") from None


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file from its header, in stored pixel order (the EXIF orientation
    is not applied, see data/imagefile.py). Raises OSError if the file is missing or not an image."""
    return read_header(path).size


def unique_ids(records: Iterable[ImageRecord]) -> bool:
    ids = [r.image_id for r in records]
    return len(ids) == len(set(ids))
