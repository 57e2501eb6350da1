"""Resizing, letterboxing and flipping: the geometric steps of test pipelines (which record in
`Sample.scale`/`Sample.offset` how to map predictions back to the original image) and the cheap
training ones."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated

import cv2
import numpy as np

from ...errors import ConfigError, choices_text, did_you_mean
from ...registry import TRANSFORMS
from ...rules import OneOf, PixelValue, Probability, Size
from ...structures import Sample
from .masks import flip_masks, pad_masks, resize_masks

INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA,
                  "cubic": cv2.INTER_CUBIC}


Interpolation = Annotated[str, OneOf(*INTERPOLATIONS)]


def interpolation_flag(name: str, owner: str) -> int:
    if name not in INTERPOLATIONS:
        raise ConfigError(f"{owner}.interpolation: unknown '{name}'.{did_you_mean(name, INTERPOLATIONS)} "
                          f"Valid: {choices_text(INTERPOLATIONS)}")
    return INTERPOLATIONS[name]


def pair(size: int | Sequence[int]) -> tuple[int, int]:
    """An int (square) or [h, w] as (h, w)."""
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def scale_sample(sample: Sample, th: int, tw: int, interpolation: int = cv2.INTER_LINEAR) -> Sample:
    """Resize the image to (th, tw), scale the boxes, and compose the change into `scale`/`offset`."""
    h, w = sample.size
    if (th, tw) == (h, w):
        return sample
    sx, sy = tw / w, th / h
    image = cv2.resize(sample.image, (tw, th), interpolation=interpolation)
    boxes = sample.boxes * np.array([sx, sy, sx, sy], np.float32)
    (psx, psy), (pox, poy) = sample.scale, sample.offset
    return replace(sample, image=image, boxes=boxes, scale=(psx * sx, psy * sy), offset=(pox * sx, poy * sy),
                   masks=resize_masks(sample.masks, th, tw))


def rescale_long_side(sample: Sample, size: int) -> Sample:
    """Scale the sample so that its longer side is `size` (multi-scale training: one size per batch)."""
    h, w = sample.size
    factor = size / max(h, w)
    return scale_sample(sample, max(1, round(h * factor)), max(1, round(w * factor)))


@TRANSFORMS.register()
class Resize:
    """Resize to a fixed (h, w), or keep the aspect ratio and fit inside it.

    Args:
        size: int (square) or [h, w].
        keep_ratio: scale by one factor so the image fits inside `size` (no padding here).
        interpolation: OpenCV interpolation name: linear, nearest, area, cubic.
    """

    carries_masks = True

    def __init__(self, size: Size, keep_ratio: bool = False,
                 interpolation: Interpolation = "linear") -> None:
        self.size = pair(size)
        self.keep_ratio = keep_ratio
        self.interpolation = interpolation_flag(interpolation, "Resize")

    def __call__(self, sample: Sample) -> Sample:
        h, w = sample.size
        th, tw = self.size
        if self.keep_ratio:
            factor = min(th / h, tw / w)
            th, tw = max(1, round(h * factor)), max(1, round(w * factor))
        return scale_sample(sample, th, tw, self.interpolation)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, keep_ratio={self.keep_ratio})"


@TRANSFORMS.register()
class Letterbox:
    """Resize keeping the aspect ratio to fit `size`, then pad to exactly `size` (the YOLO test input).

    Written here because albumentations' LongestMaxSize + PadIfNeeded give the same pixels but do not
    report the scale and the padding offset that map predictions back to the original image; this
    records both in `Sample.scale` / `Sample.offset`.

    Args:
        size: int (square) or [h, w].
        fill: grey level of the padding (114 in the YOLO family).
        center: pad evenly on both sides (True, YOLO) or only at the bottom/right (False).
        scale_up: also enlarge images smaller than `size` (False: only shrink, as for evaluation
            at native resolution).
        interpolation: OpenCV interpolation name.
    """

    carries_masks = True

    def __init__(self, size: Size, fill: PixelValue = 114, center: bool = True, scale_up: bool = True,
                 interpolation: Interpolation = "linear") -> None:
        self.size = pair(size)
        self.fill, self.center, self.scale_up = int(fill), center, scale_up
        self.interpolation = interpolation_flag(interpolation, "Letterbox")

    def __call__(self, sample: Sample) -> Sample:
        h, w = sample.size
        th, tw = self.size
        factor = min(th / h, tw / w)
        if not self.scale_up:
            factor = min(factor, 1.0)
        sample = scale_sample(sample, max(1, round(h * factor)), max(1, round(w * factor)),
                              self.interpolation)
        nh, nw = sample.size
        top, left = ((th - nh) // 2, (tw - nw) // 2) if self.center else (0, 0)
        if (nh, nw) == (th, tw):
            return sample
        image = cv2.copyMakeBorder(sample.image, top, th - nh - top, left, tw - nw - left,
                                   cv2.BORDER_CONSTANT, value=(self.fill,) * 3)
        boxes = sample.boxes + np.array([left, top, left, top], np.float32)
        ox, oy = sample.offset
        masks = pad_masks(sample.masks, top, th - nh - top, left, tw - nw - left)
        return replace(sample, image=image, boxes=boxes, offset=(ox + left, oy + top), masks=masks)

    def __repr__(self) -> str:
        return f"Letterbox(size={self.size}, fill={self.fill})"


@TRANSFORMS.register()
class RandomHorizontalFlip:
    """Mirror the image and boxes left-right with probability `p` (training only: not tracked in `scale`)."""

    carries_masks = True

    def __init__(self, p: Probability = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        if np.random.random() >= self.p:
            return sample
        w = sample.size[1]
        boxes = sample.boxes.copy()
        boxes[:, [0, 2]] = w - sample.boxes[:, [2, 0]]
        # cv2: ~5x faster than a numpy copy
        return replace(sample, image=cv2.flip(sample.image, 1), boxes=boxes, masks=flip_masks(sample.masks))

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
