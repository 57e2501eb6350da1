"""YOLO txt layout reader (the format of darknet, YOLOv5 and ultralytics), so that datasets of that
ecosystem train unchanged.

    <root>/images/<split>/<name>.jpg        (or any folder, or a .txt file listing image paths)
    <root>/labels/<split>/<name>.txt        one object per line: class cx cy w h, normalised to 0..1

The label file of an image is found as ultralytics does: the last `/images/` of its path replaced by
`/labels/`, the extension by `.txt`. A missing or empty label file means an image without objects.
Lines with more than five numbers are segmentation polygons (class x1 y1 x2 y2 ...): their bounding
box is used. Class ids index `class_names` (the `names:` list of the dataset's YAML).

Bad lines are errors naming the file and the line (or drop the image under data.on_error=skip): a
wrong number of fields, a word, NaN or inf, a class id that is not an index of `class_names`, and
values beyond 0..1, which mean labels written in pixels ("labels not normalised?") and would otherwise
all be dropped as outside the image.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ...registry import DATASETS
from ...structures import Sample
from ..imagefile import SKIP_HINT
from .base import DetectionDataset
from .records import UNKNOWN_CLASS_FIX, ImageRecord, image_size, read_list, sanitize_boxes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
TOLERANCE = 1e-3  # normalised values a labelling tool rounded just past 0 or 1 are clipped, not errors
NOT_NORMALISED = ("labels not normalised? YOLO labels are class cx cy w h with x and w divided by the "
                  "image's width, y and h by its height")
# How to go on, per kind of bad line (the default: fix the file, or skip).
LINE_FIXES = {"class": UNKNOWN_CLASS_FIX,
              "range": f"write the labels normalised (0..1), or {SKIP_HINT}"}
LINE_KINDS = {"class": "unknown_class"}  # Problem kinds; the others are "bad_label"


def label_path(image: Path) -> Path:
    """ultralytics' rule: .../images/x/name.jpg -> .../labels/x/name.txt."""
    text = str(image)
    sep_images, sep_labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sep_images in text:
        head, _, tail = text.rpartition(sep_images)
        text = head + sep_labels + tail
    return Path(text).with_suffix(".txt")


@DATASETS.register()
class YOLODetection(DetectionDataset):
    """Images and normalised cx cy w h labels in the YOLO txt layout.

    Args:
        root: dataset folder (the `path:` of an ultralytics data YAML).
        images: relative to `root`: a folder of images (searched recursively), or a .txt file with one
            image path per line (relative paths are relative to `root`).
        class_names: the `names:` list, in class-id order.
        transforms: callable applied to each `Sample`.
        on_error: "error" or "skip" (see `DetectionDataset`).
    """

    def no_masks_reason(self) -> str:
        return ("YOLO txt labels are read as boxes only (a polygon line gives its bounding box; its mask "
                "is not read)")

    def __init__(
        self,
        root: str,
        images: str,
        class_names: Sequence[str],
        transforms: Callable[[Sample], Sample] | None = None,
        on_error: str = "error",
    ) -> None:
        super().__init__(class_names, transforms, on_error)
        self.root = Path(root).expanduser()
        source = self.root / images
        self.source = str(source)
        paths = self._list_images(source)
        self.listed = len(paths)
        # Image headers are read in threads: on a network disk most of the time is waiting.
        with ThreadPoolExecutor(8) as pool:
            sizes = list(pool.map(_size_or_error, paths))
        for index, (path, size) in enumerate(zip(paths, sizes)):
            rec = self._parse(index, path, size)
            if rec is not None:
                self.records.append(rec)
        self.settle()

    def _list_images(self, source: Path) -> list[Path]:
        if source.is_file() and source.suffix == ".txt":
            lines = read_list(source, "image list")
            return [p if p.is_absolute() else self.root / p for p in map(Path, lines)]
        if source.is_dir():
            return sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        raise DatasetError(f"YOLO images not found: '{source}'. Expected a folder of images "
                           "(<root>/images/<split>, labels in <root>/labels/<split>/<name>.txt) "
                           "or a .txt file listing image paths")

    def _parse(self, index: int, path: Path, size: tuple[int, int] | str) -> ImageRecord | None:
        if isinstance(size, str):
            kind = "missing_image" if not path.exists() else "unreadable_image"
            self.problem(path, f"cannot read image {path}: {size}", kind, path)
            return None
        height, width = size
        labels_file = label_path(path)
        found = self._read_labels(labels_file, path)
        if found is None:
            return None
        rows, numbers = found
        cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        name = _relative(labels_file, self.root)
        boxes, keep = sanitize_boxes(boxes, width, height, self.quirks, [f"{name} line {n}" for n in numbers])
        return ImageRecord(image_id=index, path=path, height=height, width=width, boxes=boxes[keep],
                           labels=rows[keep, 0].astype(np.int64), ignore=np.zeros(int(keep.sum()), bool),
                           annotation=str(labels_file))

    def _read_labels(self, labels_file: Path, image: Path) -> tuple[np.ndarray, list[int]] | None:
        """([N, 5] class cx cy w h, the line number of each row), or None after recording a problem
        per kind of bad line (its first line, and how many more)."""
        try:
            lines = labels_file.read_text().splitlines()
        except FileNotFoundError:
            self.quirks.add("images without a label file (no objects)")
            return np.zeros((0, 5), np.float64), []
        except (OSError, UnicodeDecodeError) as e:
            self.problem(labels_file, f"cannot read label file {labels_file}: {e}", "unreadable_annotation",
                         image)
            return None
        rows, numbers, bad = [], [], {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row, error = self._row(line.split())
            if error is None:
                rows.append(row)
                numbers.append(number)
            else:
                kind, message, detail = error
                bad.setdefault(kind, []).append((f"{labels_file} line {number}: {message}", detail))
        for kind, found in bad.items():
            (text, detail), more = found[0], len(found) - 1
            self.problem(labels_file, text + (f" (and {more} more lines like it)" if more else ""),
                         LINE_KINDS.get(kind, "bad_label"), image, detail, LINE_FIXES.get(kind, ""))
        if bad:
            return None
        return self._unique(np.array(rows, np.float64).reshape(-1, 5), numbers)

    def _row(self, parts: list[str]) -> tuple[list[float], None] | tuple[None, tuple[str, str, str]]:
        """One label line as [class, cx, cy, w, h], or (kind, message, detail) of what is wrong."""
        text = " ".join(parts)
        try:
            values = [float(v) for v in parts]
        except ValueError:
            values = []
        if len(values) < 5 or len(values) > 5 and len(values) % 2 == 0:
            return None, ("format", f"expected 'class cx cy w h' (5 numbers), got '{text}'", "")
        if not np.isfinite(values).all():
            return None, ("finite", f"'{text}' holds a non-finite value (NaN or inf)", "")
        n = len(self.class_names)
        if values[0] != int(values[0]) or not 0 <= values[0] < n:
            return None, ("class", f"class id {values[0]:g} is not an index of the config's class_names "
                                   f"({n} names: 0..{n - 1})", f"{values[0]:g}")
        if max(values[1:]) > 1 + TOLERANCE or min(values[1:]) < -TOLERANCE:
            over = "over 1" if max(values[1:]) > 1 + TOLERANCE else "below 0"
            return None, ("range", f"'{text}' has values {over}: {NOT_NORMALISED}", "")
        if len(values) > 5:  # a polygon: its bounding box
            xy = np.array(values[1:]).reshape(-1, 2)
            (x1, y1), (x2, y2) = xy.min(0), xy.max(0)
            self.quirks.add("polygon labels (their bounding box used)")
            return [values[0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], None
        return values, None

    def _unique(self, rows: np.ndarray, numbers: list[int]) -> tuple[np.ndarray, list[int]]:
        """The rows without repeated lines (first occurrence kept, in file order)."""
        first = np.sort(np.unique(rows, axis=0, return_index=True)[1]) if len(rows) else np.zeros(0, int)
        if len(first) < len(rows):
            self.quirks.add("duplicate label lines removed", len(rows) - len(first))
        return rows[first], [numbers[i] for i in first]


def _relative(path: Path, root: Path) -> str:
    """`path` relative to `root` when it is below it (shorter messages), else as it is."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _size_or_error(path: Path) -> tuple[int, int] | str:
    try:
        return image_size(path)
    except OSError as e:
        return str(e) or type(e).__name__
