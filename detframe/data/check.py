"""The dataset check: what `tools/check_dataset.py` prints, and the fast version run when training starts.

Per split: images, boxes per class, images without boxes, ignored (difficult/crowd) boxes, the
annotation quirks fixed on reading (degenerate and out-of-image boxes among them), missing or
unreadable image files, duplicate ids and files, class names in the annotations that the config does
not list (errors), and config classes with no instance (warnings). Read with masks (data.with_masks),
the instance masks are counted and malformed segmentations are errors like malformed boxes.

Image files are checked at one of two levels: "quick" (the start-up default) opens each file and
reads its header and last bytes: it finds missing, empty, non-image and truncated JPEG/PNG files, sizes
that differ from the annotation's (an error: boxes would not match the pixels) and EXIF orientation
tags (a warning: boxes are taken in stored pixel order, see imagefile.py) in tens of microseconds per
file; "full" also decodes every image.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .datasets.base import DetectionDataset
from .datasets.records import MAX_EXAMPLES, ImageRecord, Problem
from .imagefile import FIRST_BYTES, SKIP_HINT, ImageHeader, image_kind, read_header

LEVELS = ("quick", "full", "off")
TAIL_BYTES = 4096
TRUNCATED_JPEG = ("truncated JPEG (no end-of-image marker: OpenCV would decode the part that is there and "
                  "fill the rest grey)")
TRUNCATED_FIX = (f"replace the file (re-download it), or {SKIP_HINT} (data.check=off trains on it as "
                 "OpenCV decodes it)")
ORIENTATIONS = {2: "mirrored", 3: "rotated 180", 4: "flipped", 5: "transposed", 6: "rotated 90 clockwise",
                7: "transversed", 8: "rotated 90 counter-clockwise"}
EXIF_NOTE = ("boxes are taken in stored pixel order, as pycocotools and the COCO/VOC tools do, while "
             "photo viewers show these images turned; look at them with tools/browse_dataset.py")


@dataclass
class SplitReport:
    """What the check found in one split."""

    name: str
    dataset: str
    class_names: list[str]
    images: int = 0
    boxes: Counter = field(default_factory=Counter)  # class name -> boxes (ignored ones included)
    images_with: Counter = field(default_factory=Counter)  # class name -> images having one
    ignored: Counter = field(default_factory=Counter)  # class name -> ignored (difficult / crowd) boxes
    empty_images: int = 0
    duplicate_ids: int = 0
    duplicate_files: int = 0
    size_mismatch: list[str] = field(default_factory=list)
    exif_rotated: list[str] = field(default_factory=list)  # "path (orientation 6: rotated 90 clockwise)"
    quirks: Counter = field(default_factory=Counter)
    box_warnings: list[str] = field(default_factory=list)  # boxes dropped or clipped, the first places
    no_boxes: str | None = None  # why nothing is left to train on or evaluate
    masks: int | None = None  # instance masks read (one per box); None: read without masks
    problems: list[Problem] = field(default_factory=list)
    level: str = "quick"
    checked_files: int = 0
    seconds: float = 0.0

    @property
    def unknown_classes(self) -> Counter:
        return Counter(p.detail for p in self.problems if p.kind == "unknown_class")

    @property
    def missing_classes(self) -> list[str]:
        return [c for c in self.class_names if self.boxes[c] == 0]


def check_image(path: Path, level: str) -> str | None:
    """What is wrong with an image file, or None. "quick": header and end marker; "full": decode."""
    return inspect_image(path, level)[0]


def inspect_image(path: Path, level: str) -> tuple[str | None, ImageHeader | None]:
    """(what is wrong with the file or None, its header when readable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(FIRST_BYTES)
            if not head:
                return "empty file", None
            if image_kind(head) is None:
                return "not an image (unknown file signature)", None
            f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        return "missing", None
    except OSError as e:
        return f"unreadable: {e}", None
    kind = image_kind(head)
    # JPEG entropy-coded data escapes 0xFF, so an end-of-image marker near the end means the file is
    # complete (cameras sometimes append bytes after it); none means it was cut short.
    if kind == "jpeg" and b"\xff\xd9" not in tail:
        return TRUNCATED_JPEG, None
    if kind == "png" and b"IEND" not in tail[-12:]:
        return "truncated PNG (no IEND chunk)", None
    try:
        header = read_header(path, head)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for bad data
        return f"unreadable header: {e}", None
    if level == "full":
        from PIL import Image

        try:
            with Image.open(path) as im:
                im.load()
        except Exception as e:
            return f"cannot decode: {e}", None
    return None, header


def check_images(records: list[ImageRecord], level: str,
                 threads: int = 8) -> tuple[list[Problem], list[str], list[str]]:
    """Check every distinct image file of `records`.

    Returns:
        (problems: missing / unreadable files and sizes that differ from the annotation's,
        size_mismatch: "annotation: annotation says HxW (h x w), the image is HxW ..." texts (among
        the problems too), exif_rotated: "path (orientation k: ...)" of files with an orientation tag).
    """
    unique = list({r.path: r for r in records}.values())
    with ThreadPoolExecutor(threads) as pool:  # mostly waiting on the disk; PIL decodes without the GIL
        results = list(pool.map(lambda r: inspect_image(r.path, level), unique))
    problems, mismatch, rotated = [], [], []
    for rec, (error, header) in zip(unique, results):
        if error is not None:
            problems.append(_file_problem(rec, error))
            continue
        if header.orientation in ORIENTATIONS:
            rotated.append(f"{rec.path} (orientation {header.orientation}: "
                           f"{ORIENTATIONS[header.orientation]})")
        if header.size != (rec.height, rec.width):
            problem = _size_problem(rec, header)
            mismatch.append(problem.message)
            problems.append(problem)
    return problems, mismatch, rotated


def _file_problem(rec: ImageRecord, error: str) -> Problem:
    where = f" (annotated in {rec.annotation})" if rec.annotation else ""
    if error == "missing":
        return Problem(str(rec.path), f"image file not found: {rec.path}{where}", "missing_image", rec.path,
                       fix=f"restore the file, or {SKIP_HINT}")
    return Problem(str(rec.path), f"bad image file {rec.path}: {error}{where}", "unreadable_image", rec.path,
                   fix=TRUNCATED_FIX if error == TRUNCATED_JPEG else f"replace the file, or {SKIP_HINT}")


def _size_problem(rec: ImageRecord, header: ImageHeader) -> Problem:
    """The annotation states another size than the image's: its boxes were drawn for other pixels."""
    (height, width), rotated = header.size, header.orientation in (5, 6, 7, 8)
    text = (f"{rec.annotation or rec.path}: annotation says {rec.height}x{rec.width} (h x w), the image is "
            f"{height}x{width} ({rec.path.name}), so its boxes would not match the pixels")
    fix = f"correct the size (and boxes) in the annotation, or {SKIP_HINT}"
    if rotated and (rec.height, rec.width) == (width, height):
        text += (f"; that is the image's size turned by its EXIF orientation tag ({header.orientation}): "
                 "the boxes were likely drawn on the turned view")
        fix = ("write the turn into the pixels and drop the tag (PIL.ImageOps.exif_transpose, "
               f"exiftran -ai, mogrify -auto-orient), or {SKIP_HINT}")
    return Problem(str(rec.path), text, "size_mismatch", rec.path, fix=fix)


def check_dataset(dataset: DetectionDataset, name: str, level: str = "quick",
                  settle: bool = True) -> SplitReport:
    """Check `dataset`'s records (and image files, unless level is "off"); with `settle`, apply the
    dataset's on_error policy to the image problems (raise, or drop the images)."""
    if level not in LEVELS:
        raise ConfigError(f"data.check: expected one of {', '.join(LEVELS)}, got '{level}'")
    start = time.perf_counter()
    report = SplitReport(name, repr(dataset), list(dataset.class_names), level=level)
    report.quirks.update(dataset.quirks.counts)
    report.box_warnings = dataset.quirks.warnings()
    report.problems.extend(dataset.problems)
    if level != "off":
        problems, report.size_mismatch, report.exif_rotated = check_images(dataset.records, level)
        report.checked_files = len({r.path for r in dataset.records})
        report.problems.extend(problems)
        if settle and problems:
            dataset.settle(problems)
    _count(report, dataset.records)
    reason = dataset.no_boxes_reason()
    if reason is not None:
        use = "train on" if name.endswith("train") else "evaluate"
        report.no_boxes = (f"{name}: {dataset.source or type(dataset).__name__} has no boxes to {use}: "
                           f"{reason}; annotate it, or point {name} at an annotated set")
    report.seconds = time.perf_counter() - start
    return report


def exif_warning(report: SplitReport) -> str | None:
    """One log line on the images with an EXIF orientation tag: how many, the first few."""
    if not report.exif_rotated:
        return None
    more = ", ..." if len(report.exif_rotated) > MAX_EXAMPLES else ""
    return (f"{report.name}: {len(report.exif_rotated)} images carry an EXIF orientation tag; {EXIF_NOTE}: "
            + ", ".join(report.exif_rotated[:MAX_EXAMPLES]) + more)


def _count(report: SplitReport, records: list[ImageRecord]) -> None:
    names = report.class_names
    report.images = len(records)
    for rec in records:
        labels = [names[int(i)] for i in rec.labels]
        report.boxes.update(labels)
        report.images_with.update(set(labels))
        report.ignored.update(n for n, ig in zip(labels, rec.ignore) if ig)
        report.empty_images += int(not (~rec.ignore).any())
        if rec.masks is not None:
            report.masks = (report.masks or 0) + len(rec.masks)
    ids = Counter(r.image_id for r in records)
    files = Counter(r.path for r in records)
    report.duplicate_ids = sum(n - 1 for n in ids.values() if n > 1)
    report.duplicate_files = sum(n - 1 for n in files.values() if n > 1)


def format_report(report: SplitReport) -> str:
    """The report of one split as a few lines of text (tools/check_dataset.py)."""
    lines = [f"{report.name}: {report.dataset}"]
    width = max([len(c) for c in report.class_names] + [5])
    lines.append(f"  {'class':<{width}}  {'boxes':>7}  {'images':>7}  {'ignored':>7}")
    for c in report.class_names:
        lines.append(f"  {c:<{width}}  {report.boxes[c]:>7}  {report.images_with[c]:>7}  "
                     f"{report.ignored[c]:>7}")
    lines.append(f"  {'all':<{width}}  {sum(report.boxes.values()):>7}  {report.images:>7}  "
                 f"{sum(report.ignored.values()):>7}")
    lines.append(f"  images without boxes: {report.empty_images}; duplicate ids: {report.duplicate_ids}; "
                 f"files listed twice: {report.duplicate_files}")
    if report.masks is not None:
        bad = sum(p.kind == "bad_mask" for p in report.problems)
        lines.append(f"  instance masks: {report.masks} (one per box); malformed segmentations: {bad}")
    if report.level != "off":
        lines.append(f"  image files: {report.checked_files} checked ({report.level}) "
                     f"in {report.seconds:.1f}s")
    if report.quirks:
        lines.append("  fixed on reading: " + ", ".join(f"{n} {what}" for what, n in report.quirks.items()))
    lines += [f"  warning: {text}" for text in report.box_warnings]
    if report.exif_rotated:
        lines.append(f"  warning: {len(report.exif_rotated)} images carry an EXIF orientation tag; "
                     f"{EXIF_NOTE}:")
        lines += _capped([f"    {text}" for text in report.exif_rotated], "    ... {} more")
    for c in report.missing_classes:
        lines.append(f"  warning: class '{c}' of the config has no instance in this split")
    unknown = report.unknown_classes
    if unknown:
        lines.append("  error: class names in the annotations that the config does not list: "
                     + ", ".join(f"'{n}' ({k} objects)" for n, k in unknown.most_common()))
    for kind in dict.fromkeys(p.kind for p in report.problems):
        lines += _capped([f"  error: {p.message}" for p in report.problems if p.kind == kind],
                         "  error: ... {} more like it")
    if report.no_boxes:
        lines.append(f"  error: {report.no_boxes}")
    return "\n".join(lines)


def _capped(lines: list[str], more: str, limit: int = 10) -> list[str]:
    """The first `limit` lines, and `more` with the count of the rest."""
    return lines[:limit] + ([more.format(len(lines) - limit)] if len(lines) > limit else [])


def warning_count(report: SplitReport) -> int:
    """Warnings in the report (the start-up check goes on after them)."""
    return len(report.box_warnings) + bool(report.exif_rotated) + len(report.missing_classes)


def summary_line(report: SplitReport) -> str:
    """One line for the training log."""
    text = (f"{report.name}: {report.dataset}; {report.empty_images} images without boxes, "
            f"{sum(report.ignored.values())} ignored boxes")
    if report.masks is not None:
        text += f", {report.masks} instance masks"
    if report.level != "off":
        text += f"; {report.checked_files} image files checked ({report.level}, {report.seconds:.2f}s)"
    return text
