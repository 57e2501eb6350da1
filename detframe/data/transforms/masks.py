"""Instance masks through the geometric transforms: the same resize, pad, crop, flip or warp as the
image, with nearest-neighbour sampling so that a mask stays binary. Each helper takes `Sample.masks`
(uint8 [N, H, W], or None when the dataset was read without masks) and returns the same kind, so a
transform calls it unconditionally.

A transform declares that it carries masks with `carries_masks = True`; `check_carries_masks` refuses,
when the pipeline is built for a dataset read with masks, any transform that does not, so that no
mask silently falls out of step with its box mid-epoch.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from ...errors import ConfigError

Masks = np.ndarray | None


def resize_masks(masks: Masks, th: int, tw: int) -> Masks:
    """Each mask resized to (th, tw), nearest neighbour (the image's own resize, kept binary)."""
    if masks is None:
        return None
    out = np.zeros((len(masks), th, tw), np.uint8)
    for i, m in enumerate(masks):
        out[i] = cv2.resize(m, (tw, th), interpolation=cv2.INTER_NEAREST)
    return out


def pad_masks(masks: Masks, top: int, bottom: int, left: int, right: int) -> Masks:
    """Each mask on a larger zero canvas (letterbox, expand)."""
    if masks is None:
        return None
    return np.pad(masks, ((0, 0), (top, bottom), (left, right)))


def flip_masks(masks: Masks) -> Masks:
    """Each mask mirrored left-right."""
    return None if masks is None else np.ascontiguousarray(masks[:, :, ::-1])


def crop_masks(masks: Masks, x1: int, y1: int, x2: int, y2: int) -> Masks:
    """The window [y1:y2, x1:x2] of each mask (inside the image)."""
    return None if masks is None else np.ascontiguousarray(masks[:, y1:y2, x1:x2])


def place_masks(masks: Masks, size: tuple[int, int], window: tuple[int, int, int, int],
                source: tuple[int, int]) -> Masks:
    """Each mask's part starting at `source` = (x, y) copied to `window` = (x1, y1, x2, y2) of a zero
    canvas of `size` = (h, w): a mosaic's quadrant, a MixUp partner cut to the image."""
    if masks is None:
        return None
    xa1, ya1, xa2, ya2 = window
    xb1, yb1 = source
    out = np.zeros((len(masks), *size), np.uint8)
    out[:, ya1:ya2, xa1:xa2] = masks[:, yb1:yb1 + (ya2 - ya1), xb1:xb1 + (xa2 - xa1)]
    return out


def mosaic_masks(parts: Sequence[Masks], regions: Sequence[tuple[tuple[int, int, int, int], tuple[int, int]]],
                 keep: np.ndarray, size: tuple[int, int]) -> Masks:
    """The kept masks of several images on one canvas of `size` = (h, w): image k's masks (its rows of
    `keep`, in order) copied from `regions[k]` = (window, source) as in `place_masks`. Only kept masks
    are placed: a mosaic canvas is 4x the image, most of its masks would be dropped again."""
    if any(p is None for p in parts):
        return None
    out = np.zeros((int(keep.sum()), *size), np.uint8)
    start = placed = 0
    for masks, ((xa1, ya1, xa2, ya2), (xb1, yb1)) in zip(parts, regions):
        chosen = masks[keep[start:start + len(masks)]]
        start += len(masks)
        out[placed:placed + len(chosen), ya1:ya2, xa1:xa2] = chosen[:, yb1:yb1 + (ya2 - ya1),
                                                                   xb1:xb1 + (xa2 - xa1)]
        placed += len(chosen)
    return out


def warp_masks(masks: Masks, matrix: np.ndarray, size: tuple[int, int]) -> Masks:
    """Each mask through the 2x3 affine `matrix` onto an output of `size` = (h, w), nearest neighbour.

    Only the output window the mask's own extent maps to (with a 2-pixel margin) is warped: an object
    covers a small part of a mosaic canvas, and warping the whole canvas once per object dominated the
    YOLO pipeline's time.
    """
    if masks is None:
        return None
    h, w = size
    out = np.zeros((len(masks), h, w), np.uint8)
    for i, m in enumerate(masks):
        cols = np.flatnonzero(m.any(axis=0))
        if len(cols) == 0:
            continue
        rows = np.flatnonzero(m.any(axis=1))
        corners = np.array([[cols[0], rows[0]], [cols[-1] + 1, rows[0]], [cols[0], rows[-1] + 1],
                            [cols[-1] + 1, rows[-1] + 1]], np.float64)
        moved = corners @ matrix[:, :2].T + matrix[:, 2]
        x1, y1 = (max(0, int(np.floor(v)) - 2) for v in moved.min(axis=0))
        x2, y2 = (min(limit, int(np.ceil(v)) + 2) for v, limit in zip(moved.max(axis=0), (w, h)))
        if x2 <= x1 or y2 <= y1:
            continue
        shifted = np.array(matrix, np.float64)
        shifted[:, 2] -= (x1, y1)
        out[i, y1:y2, x1:x2] = cv2.warpAffine(m, shifted, (x2 - x1, y2 - y1), flags=cv2.INTER_NEAREST,
                                              borderValue=0)
    return out


def concat_masks(parts: Iterable[Masks]) -> Masks:
    """The masks of several samples (all at the same size) one after the other; None if any has none."""
    parts = list(parts)
    if any(p is None for p in parts):
        return None
    return np.concatenate(parts)


def check_carries_masks(transforms: Iterable[Any], where: str) -> None:
    """A transform that does not declare `carries_masks = True` in a pipeline for masked data: one line
    naming it, when the dataset is built rather than at the first sample that meets it."""
    for t in transforms:
        if not getattr(t, "carries_masks", False):
            name = getattr(t, "name", None) or type(t).__name__
            raise ConfigError(f"{where}: transform {name} does not carry instance masks, and the data is "
                              "read with masks (data.with_masks=true); remove it from the pipeline, or make "
                              "it move Sample.masks with the image and set carries_masks = True")
