"""Caching decoded images, for small datasets whose decoding costs more than the training step
(`data.cache: ram` or `disk`, as ultralytics' and YOLOX's `cache` options).

ram: every image is decoded once, in the main process, before the loaders start; forked workers
share the arrays copy-on-write. The memory needed is estimated first: if it exceeds 80% of what is
available, caching is refused with a warning. disk: each image is decoded once into an .npy file
under `cache_dir` (keyed by the file's path, size and modification time, so an edited image is
decoded again); reading an .npy is a memory copy instead of a JPEG decode. Images are decoded as every
reader decodes them (`imagefile.read_image`: stored pixel order).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .datasets.records import ImageRecord
from .imagefile import read_image

log = logging.getLogger(__name__)

MODES = ("ram", "disk")
# Part of each disk cache key: arrays decoded under another rule (EXIF orientation applied, before the
# stored-order rule of imagefile.py) must not be reused.
DECODING = "stored-order"


def available_memory() -> int | None:
    """Bytes of memory available (Linux /proc/meminfo), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class ImageCache:
    """Decoded images by path, in RAM or as .npy files.

    Args:
        mode: "ram" or "disk".
        cache_dir: where disk mode writes (default ~/.cache/detframe/images).
    """

    def __init__(self, mode: str, cache_dir: str | None = None) -> None:
        if mode not in MODES:
            raise ConfigError(f"data.cache: expected one of {', '.join(MODES)} or null, got '{mode}'")
        self.mode = mode
        self.dir = Path(cache_dir or Path.home() / ".cache" / "detframe" / "images").expanduser()
        self.images: dict[Path, np.ndarray] = {}

    def npy_path(self, path: Path) -> Path:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{DECODING}"
        key = hashlib.sha1(key.encode()).hexdigest()
        return self.dir / key[:2] / f"{key}.npy"

    def fill(self, records: Sequence[ImageRecord], threads: int = 4) -> bool:
        """Decode every image of `records` into the cache. Returns False (and warns) when RAM is short."""
        if self.mode == "ram":
            need = sum(r.height * r.width * 3 for r in records)
            free = available_memory()
            if free is not None and need > 0.8 * free:
                log.warning("data.cache=ram: the %d images need about %.1f GB, more than 80%% of the %.1f GB "
                            "available; not caching (data.cache=disk needs no memory)",
                            len(records), need / 1e9, free / 1e9)
                return False
        start = time.perf_counter()
        unique = list(dict.fromkeys(r.path for r in records))
        with ThreadPoolExecutor(threads) as pool:  # OpenCV releases the GIL while decoding
            for path, image in zip(unique, pool.map(self._load, unique)):
                if self.mode == "ram":
                    self.images[path] = image
        size = sum(im.nbytes for im in self.images.values()) if self.mode == "ram" else 0
        log.info("data.cache=%s: %d images cached in %.1fs%s", self.mode, len(unique),
                 time.perf_counter() - start, f" ({size / 1e9:.2f} GB)" if size else f" under {self.dir}")
        return True

    def _load(self, path: Path) -> np.ndarray | None:
        if self.mode == "ram":
            return read_image(path)
        target = self.npy_path(path)
        if not target.is_file():
            image = read_image(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, image)
            os.replace(tmp, target)  # atomic: a crash never leaves half an array behind
        return None

    def get(self, path: Path) -> np.ndarray:
        if self.mode == "ram":
            image = self.images.get(path)
            # A copy: a transform that works in place must not alter the cached original.
            return image.copy() if image is not None else read_image(path)
        try:
            return np.load(self.npy_path(path))
        except (OSError, ValueError):
            return read_image(path)
