"""YOLO txt layout reader (the format of darknet, YOLOv5 and ultralytics), so that datasets of that
ecosystem train unchanged.

    <root>/images/<split>/<name>.jpg        (or any folder, or a .txt file listing image paths)
    <root>/labels/<split>/<name>.txt        one object per line: class cx cy w h, normalised to 0..1

The label file of an image is found as ultralytics does: the last `/images/` of its path replaced by
`/labels/`, the extension by `.txt`. A missing or empty label file means an image without objects.
Lines with more than five numbers are segmentation polygons (class x1 y1 x2 y2 ...): their bounding
box is used. Class ids index `class_names` (the `names:` list of the dataset's YAML).
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
from .base import DetectionDataset, ImageRecord, image_size, sanitize_boxes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


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
            lines = [line.strip() for line in source.read_text().splitlines() if line.strip()]
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
        rows = self._read_labels(labels_file, path)
        if rows is None:
            return None
        classes = rows[:, 0].astype(np.int64)
        bad = (classes < 0) | (classes >= len(self.class_names)) | (rows[:, 0] != classes)
        for c in np.unique(rows[bad, 0]):
            self.problem(labels_file, f"{labels_file}: class id {c:g} is not an index of the config's "
                         f"class_names ({len(self.class_names)} names: 0..{len(self.class_names) - 1})",
                         "unknown_class", path, f"{c:g}")
        cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        boxes, keep = sanitize_boxes(boxes, width, height, self.quirks)
        keep &= ~bad
        return ImageRecord(image_id=index, path=path, height=height, width=width, boxes=boxes[keep],
                           labels=classes[keep], ignore=np.zeros(int(keep.sum()), bool),
                           annotation=str(labels_file))

    def _read_labels(self, labels_file: Path, image: Path) -> np.ndarray | None:
        """[N, 5] class cx cy w h, or None after recording a problem."""
        try:
            lines = [line.split() for line in labels_file.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            self.quirks.add("images without a label file (no objects)")
            return np.zeros((0, 5), np.float32)
        except (OSError, UnicodeDecodeError) as e:
            self.problem(labels_file, f"cannot read label file {labels_file}: {e}", "unreadable_annotation",
                         image)
            return None
        rows = []
        for number, parts in enumerate(lines, 1):
            try:
                values = [float(v) for v in parts]
            except ValueError:
                values = []
            if len(values) == 5:
                rows.append(values)
            elif len(values) > 5 and len(values) % 2 == 1:  # a polygon: its bounding box
                xy = np.array(values[1:]).reshape(-1, 2)
                (x1, y1), (x2, y2) = xy.min(0), xy.max(0)
                rows.append([values[0], (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
                self.quirks.add("polygon labels (their bounding box used)")
            else:
                self.problem(labels_file, f"{labels_file} line {number}: expected 'class cx cy w h' "
                             f"(5 numbers), got '{' '.join(parts)}'", "unreadable_annotation", image)
                return None
        rows = np.array(rows, np.float64).reshape(-1, 5)
        unique = np.unique(rows, axis=0)
        if len(unique) < len(rows):
            self.quirks.add("duplicate label lines removed", len(rows) - len(unique))
            rows = rows[np.sort(np.unique(rows, axis=0, return_index=True)[1])]
        return rows


def _size_or_error(path: Path) -> tuple[int, int] | str:
    try:
        return image_size(path)
    except OSError as e:
        return str(e) or type(e).__name__
