"""Image files: decoding, and what a file's header says (kind, size, EXIF orientation) without decoding.

One rule for every reader, the cache and the dataset check: images are taken in their STORED pixel
order, the EXIF orientation tag is not applied. That is the order pycocotools, the COCO and VOC
annotation files and their tools use (boxes and `<size>`/`width`/`height` are in stored pixels); OpenCV
would rotate by default (`cv2.imread` applies the tag), which once turned boxes away from their
objects. Files with a tag other than 1 are reported (`check.py`), since a box drawn on a viewer's
rotated picture would then be wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DatasetError

SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG": "png", b"BM": "bmp", b"GIF8": "gif", b"II*\x00": "tiff",
              b"MM\x00*": "tiff", b"RIFF": "webp"}
# Stored order, tag ignored (see the module docstring); IMREAD_COLOR alone would apply it.
DECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
FIRST_BYTES = 4096  # where a JPEG's size (SOF) usually is
HEAD_BYTES = 65536 + 1024  # an EXIF block (APP1, with its thumbnail) is at most 64 KiB; the size follows
EXIF_ORIENTATION = 0x0112
# JPEG start-of-frame markers (they hold the size): C0-CF but DHT (C4), JPG (C8) and DAC (CC).
SOF_MARKERS = {m for m in range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
SKIP_HINT = "set data.on_error=skip to drop the images concerned"


@dataclass
class ImageHeader:
    """What a file's header says."""

    kind: str  # jpeg | png | bmp | gif | tiff | webp
    size: tuple[int, int]  # (height, width) in stored pixel order
    orientation: int = 1  # the EXIF orientation tag (1: none or upright; 2-8: a viewer flips / rotates)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as uint8 RGB [H, W, 3] in stored pixel order; a missing or unreadable file
    names itself and says how to go on."""
    image = cv2.imread(str(path), DECODE_FLAGS)
    if image is None:
        if not Path(path).is_file():
            raise DatasetError(f"image file not found: {path}; restore it (python tools/check_dataset.py "
                               f"lists every missing file), or {SKIP_HINT}")
        raise DatasetError(f"cannot decode image file {path} (corrupt, truncated or not an image); replace "
                           f"it (python tools/check_dataset.py lists every such file), or {SKIP_HINT}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_kind(head: bytes) -> str | None:
    """The format named by a file's first bytes, or None."""
    return next((k for sig, k in SIGNATURES.items() if head.startswith(sig)), None)


def read_header(path: Path, head: bytes | None = None) -> ImageHeader:
    """Kind, stored size and EXIF orientation of an image file, read from its first bytes (JPEG, PNG)
    or by PIL (other formats, and JPEGs whose header is not where it usually is).

    Args:
        path: the file.
        head: its first bytes when the caller has read them already (FIRST_BYTES of them, or all).

    Raises:
        OSError: the file is missing, unreadable or not an image.
    """
    if head is None:
        head = _first_bytes(path, FIRST_BYTES)
    kind = image_kind(head)
    if kind == "jpeg":
        found = _jpeg_header(head)
        if found is None and len(head) >= FIRST_BYTES:  # a camera's EXIF block reaches further
            found = _jpeg_header(_first_bytes(path, HEAD_BYTES))
        if found is not None:
            return ImageHeader(kind, *found)
    elif kind == "png" and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return ImageHeader(kind, (height, width))
    return _pil_header(path, kind)


def _first_bytes(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _pil_header(path: Path, kind: str | None) -> ImageHeader:
    from PIL import Image

    with Image.open(path) as im:  # raises OSError (UnidentifiedImageError) for a non-image
        width, height = im.size
        try:
            orientation = int(im.getexif().get(EXIF_ORIENTATION, 1))
        except Exception:  # a broken EXIF block leaves the pixels as they are stored
            orientation = 1
    return ImageHeader(kind or (im.format or "").lower(), (height, width), orientation)


def _jpeg_header(head: bytes) -> tuple[tuple[int, int], int] | None:
    """((height, width), orientation) from the JPEG markers before the first frame, or None when
    `head` does not reach the frame header or the markers are unusual (PIL then reads the file)."""
    pos, orientation, exif_seen = 2, 1, False
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(head[pos + 2:pos + 4], "big")
        segment = head[pos + 4:pos + 2 + length]
        if marker == 0xE1 and not exif_seen and segment.startswith(b"Exif\x00\x00"):
            exif_seen = True  # the first EXIF block counts, as for PIL and OpenCV
            orientation = _exif_orientation(segment[6:])
        elif marker in SOF_MARKERS:
            if len(segment) < 5:
                return None
            return (int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big")), orientation
        elif marker == 0xDA:  # scan data before any frame header: not for us to judge
            return None
        pos += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int:
    """The orientation tag of IFD0 in a TIFF-structured EXIF block (1 when absent or unreadable)."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd:ifd + 2], order) if ifd + 2 <= len(tiff) else 0
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            break
        if int.from_bytes(tiff[entry:entry + 2], order) == EXIF_ORIENTATION:
            return int.from_bytes(tiff[entry + 8:entry + 10], order)  # a SHORT, left-justified
    return 1
