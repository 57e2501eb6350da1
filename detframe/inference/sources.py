"""What tools/predict.py reads: `source=` as an image, a folder, a glob, a text file of paths or a video,
turned into a list of image files or one video, and read one image (or frame) at a time.

Files are chosen by their suffix; in a folder or a glob, files with other suffixes are left out and
counted (a VOC folder holds XML beside the JPEGs). A file with an image suffix that cannot be decoded is
reported by name when it is read and the run goes on.
"""
from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.imagefile import read_image
from ..errors import DatasetError, UserError

log = logging.getLogger("detframe")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
GLOB_CHARS = "*?["


@dataclass
class Source:
    """The resolved `source=`: image files (with the folder their output names are relative to), or one
    video."""

    text: str  # as given
    images: list[Path] = field(default_factory=list)
    root: Path | None = None  # output names of images are their paths relative to this folder
    video: Path | None = None
    not_images: list[Path] = field(default_factory=list)  # left out for their suffix
    missing: list[Path] = field(default_factory=list)  # listed in a .txt, not there

    def relative_name(self, path: Path) -> Path:
        """The name of an image's outputs: its path below `root`, else its file name."""
        if self.root is None:
            return Path(path.name)
        try:
            return path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return Path(path.name)


def resolve_source(text: str, recursive: bool = False) -> Source:
    """`source=` as files to read.

    Args:
        text: an image or video file, a folder, a glob pattern (`**` matches folders when `recursive`),
            or a `.txt` file listing images, one per line (relative paths are relative to the txt's folder;
            empty lines and lines starting with # are skipped).
        recursive: a folder's subfolders too.

    Raises:
        UserError: the path does not exist, names no image, or leaves nothing to predict on.
    """
    path = Path(text).expanduser()
    if any(c in text for c in GLOB_CHARS) and not path.exists():
        matches = [Path(p) for p in sorted(glob.glob(str(path), recursive=recursive))]
        return _from_files(text, [p for p in matches if p.is_file()], _common_folder(matches),
                           f"the pattern matches no image file (recursive={str(recursive).lower()})")
    if path.is_dir():
        files = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                       if p.is_file() and not p.name.startswith("."))
        return _from_files(text, files, path, f"the folder holds no image file ({', '.join(IMAGE_SUFFIXES)}; "
                                              f"recursive={str(recursive).lower()})")
    if not path.exists():
        raise UserError(f"source={text}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return Source(text, video=path)
    if suffix == ".txt":
        return _from_list(text, path)
    if suffix in IMAGE_SUFFIXES:
        return Source(text, images=[path], root=path.parent)
    raise UserError(f"source={text}: not an image ({', '.join(IMAGE_SUFFIXES)}), a video "
                    f"({', '.join(VIDEO_SUFFIXES)}), a .txt list of images, a folder or a glob pattern")


def _from_files(text: str, files: list[Path], root: Path | None, empty: str) -> Source:
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise UserError(f"source={text}: {empty}")
    return Source(text, images=images, root=root, not_images=[p for p in files if p not in set(images)])


def _from_list(text: str, path: Path) -> Source:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"source={text}: cannot read the list of images ({e})") from None
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    files = [p if p.is_absolute() else path.parent / p for p in map(Path, entries)]
    missing = [p for p in files if not p.is_file()]
    source = _from_files(text, [p for p in files if p.is_file()], _common_folder(files),
                         "the list names no existing image file (one path a line, relative to "
                         f"{path.parent})")
    for p in missing:
        log.warning("source=%s: %s is not a file; skipped", text, p)
    source.missing = missing
    return source


def _common_folder(paths: list[Path]) -> Path | None:
    import os

    folders = [str(p.parent.resolve()) for p in paths]
    return Path(os.path.commonpath(folders)) if folders else None


def read_images(paths: list[Path], skipped: list[Path]) -> Iterator[tuple[Path, np.ndarray]]:
    """(path, uint8 RGB image) for each readable file, in order; an unreadable one is logged by name,
    appended to `skipped`, and left out."""
    for path in paths:
        try:
            yield path, read_image(path)
        except DatasetError as e:
            log.warning("skipped %s: %s", path, str(e).split(";")[0])
            skipped.append(path)


class VideoFrames:
    """The frames of a video file (OpenCV), as uint8 RGB arrays; `fps`, `size` (h, w) and `count` (what
    the container says: an estimate for some formats) are known once opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise UserError(f"source={path}: OpenCV cannot open it as a video")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        self.size = (int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)))

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = self.capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            self.capture.release()
