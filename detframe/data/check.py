"""The dataset check: what `tools/check_dataset.py` prints, and the fast version run when training starts.

Per split: images, boxes per class, images without boxes, ignored (difficult/crowd) boxes, the
annotation quirks fixed on reading (degenerate and out-of-image boxes among them), missing or
unreadable image files, duplicate ids and files, class names in the annotations that the config does
not list (errors), and config classes with no instance (warnings).

Image files are checked at one of two levels: "quick" (the start-up default) opens each file and
reads its first and last bytes: it finds missing, empty, non-image and truncated JPEG/PNG files in
tens of microseconds per file; "full" decodes every image and compares its size with the annotation's.
"""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .datasets.base import DetectionDataset, ImageRecord, Problem

LEVELS = ("quick", "full", "off")
SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG": "png", b"BM": "bmp", b"GIF8": "gif", b"II*\x00": "tiff",
              b"MM\x00*": "tiff", b"RIFF": "webp"}


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
    quirks: Counter = field(default_factory=Counter)
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
    """What is wrong with an image file, or None. "quick": signature and end marker; "full": decode."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if not head:
                return "empty file"
            kind = next((k for sig, k in SIGNATURES.items() if head.startswith(sig)), None)
            if kind is None:
                return "not an image (unknown file signature)"
            f.seek(max(0, path.stat().st_size - 4096))
            tail = f.read()
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable: {e}"
    # JPEG entropy-coded data escapes 0xFF, so an end-of-image marker near the end means the file is
    # complete (cameras sometimes append bytes after it); none means it was cut short.
    if kind == "jpeg" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if kind == "png" and b"IEND" not in tail[-12:]:
        return "truncated PNG (no IEND chunk)"
    if level == "full":
        from PIL import Image

        try:
            with Image.open(path) as im:
                im.load()
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for bad data
            return f"cannot decode: {e}"
    return None


def _inspect(rec: ImageRecord, level: str) -> tuple[str | None, tuple[int, int] | None]:
    error = check_image(rec.path, level)
    if error is not None or level != "full":
        return error, None
    from .datasets.base import image_size

    return None, image_size(rec.path)


def check_images(records: list[ImageRecord], level: str, threads: int = 8) -> tuple[list[Problem], list[str]]:
    """Check every distinct image file of `records`.

    Returns:
        (problems: missing / unreadable files, size_mismatch: "file: annotation HxW, image HxW" texts;
        sizes are compared only at level "full").
    """
    unique = list({r.path: r for r in records}.values())
    with ThreadPoolExecutor(threads) as pool:  # mostly waiting on the disk; PIL decodes without the GIL
        results = list(pool.map(lambda r: _inspect(r, level), unique))
    problems, mismatch = [], []
    for rec, (error, size) in zip(unique, results):
        if error is not None:
            kind = "missing_image" if error == "missing" else "unreadable_image"
            text = (f"image file not found: {rec.path}" if error == "missing"
                    else f"bad image file {rec.path}: {error}")
            problems.append(Problem(str(rec.path),
                                    text + (f" (annotated in {rec.annotation})" if rec.annotation else ""),
                                    kind, rec.path))
        elif size is not None and size != (rec.height, rec.width):
            mismatch.append(f"{rec.annotation or rec.path}: annotation says {rec.height}x{rec.width} "
                            f"(h x w), the image is {size[0]}x{size[1]}")
    return problems, mismatch


def check_dataset(dataset: DetectionDataset, name: str, level: str = "quick",
                  settle: bool = True) -> SplitReport:
    """Check `dataset`'s records (and image files, unless level is "off"); with `settle`, apply the
    dataset's on_error policy to the image problems (raise, or drop the images)."""
    if level not in LEVELS:
        raise ConfigError(f"data.check: expected one of {', '.join(LEVELS)}, got '{level}'")
    start = time.perf_counter()
    report = SplitReport(name, repr(dataset), list(dataset.class_names), level=level)
    report.quirks.update(dataset.quirks.counts)
    report.problems.extend(dataset.problems)
    if level != "off":
        problems, report.size_mismatch = check_images(dataset.records, level)
        report.checked_files = len({r.path for r in dataset.records})
        report.problems.extend(problems)
        if settle and problems:
            dataset.settle(problems)
    _count(report, dataset.records)
    report.seconds = time.perf_counter() - start
    return report


def _count(report: SplitReport, records: list[ImageRecord]) -> None:
    names = report.class_names
    report.images = len(records)
    for rec in records:
        labels = [names[int(i)] for i in rec.labels]
        report.boxes.update(labels)
        report.images_with.update(set(labels))
        report.ignored.update(n for n, ig in zip(labels, rec.ignore) if ig)
        report.empty_images += int(not (~rec.ignore).any())
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
    if report.level != "off":
        lines.append(f"  image files: {report.checked_files} checked ({report.level}) "
                     f"in {report.seconds:.1f}s")
    if report.quirks:
        lines.append("  fixed on reading: " + ", ".join(f"{n} {what}" for what, n in report.quirks.items()))
    for text in report.size_mismatch[:10]:
        lines.append(f"  warning: {text}")
    if len(report.size_mismatch) > 10:
        lines.append(f"  warning: ... {len(report.size_mismatch) - 10} more images whose size differs "
                     "from the annotation")
    for c in report.missing_classes:
        lines.append(f"  warning: class '{c}' of the config has no instance in this split")
    unknown = report.unknown_classes
    if unknown:
        lines.append("  error: class names in the annotations that the config does not list: "
                     + ", ".join(f"'{n}' ({k} objects)" for n, k in unknown.most_common()))
    for p in report.problems:
        if p.kind != "unknown_class":
            lines.append(f"  error: {p.message}")
    return "\n".join(lines)


def summary_line(report: SplitReport) -> str:
    """One line for the training log."""
    text = (f"{report.name}: {report.dataset}; {report.empty_images} images without boxes, "
            f"{sum(report.ignored.values())} ignored boxes")
    if report.level != "off":
        text += f"; {report.checked_files} image files checked ({report.level}, {report.seconds:.2f}s)"
    return text
