"""Registered transforms: each is `__call__(Sample) -> Sample`, moving image and boxes together.

A pipeline is a config-listed sequence of these, built by `build_pipeline`. Photometric and most
geometric operations go through albumentations (`Albu`); the ones written here are those whose
metadata (the scale/offset needed to map predictions back) albumentations does not track.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import albumentations as A
import cv2
import numpy as np

from ..errors import ConfigError, choices_text, did_you_mean
from ..registry import TRANSFORMS
from ..structures import Sample


@TRANSFORMS.register()
class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


def build_pipeline(cfgs: Sequence[Mapping[str, Any]] | None) -> Compose:
    """Build a `Compose` from a list of transform configs (each with a `type`)."""
    return Compose([TRANSFORMS.build(c) for c in (cfgs or [])])


@TRANSFORMS.register()
class Resize:
    """Resize to a fixed (h, w), or keep the aspect ratio and fit inside it.

    Args:
        size: int (square) or [h, w].
        keep_ratio: scale by one factor so the image fits inside `size` (no padding here).
        interpolation: OpenCV interpolation name: linear, nearest, area, cubic.
    """

    _INTERP = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}

    def __init__(self, size: int | Sequence[int], keep_ratio: bool = False, interpolation: str = "linear") -> None:
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.keep_ratio = keep_ratio
        if interpolation not in self._INTERP:
            raise ConfigError(f"Resize.interpolation: unknown '{interpolation}'.{did_you_mean(interpolation, self._INTERP)} Valid: {choices_text(self._INTERP)}")
        self.interpolation = self._INTERP[interpolation]

    def __call__(self, sample: Sample) -> Sample:
        h, w = sample.size
        th, tw = self.size
        if self.keep_ratio:
            factor = min(th / h, tw / w)
            th, tw = max(1, round(h * factor)), max(1, round(w * factor))
        sx, sy = tw / w, th / h
        image = cv2.resize(sample.image, (tw, th), interpolation=self.interpolation) if (th, tw) != (h, w) else sample.image
        boxes = sample.boxes * np.array([sx, sy, sx, sy], np.float32)
        (psx, psy), (pox, poy) = sample.scale, sample.offset
        return replace(sample, image=image, boxes=boxes, scale=(psx * sx, psy * sy), offset=(pox * sx, poy * sy))

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, keep_ratio={self.keep_ratio})"


@TRANSFORMS.register()
class RandomHorizontalFlip:
    """Mirror the image and boxes left-right with probability `p` (training only: not tracked in `scale`)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample) -> Sample:
        if np.random.random() >= self.p:
            return sample
        w = sample.size[1]
        boxes = sample.boxes.copy()
        boxes[:, [0, 2]] = w - sample.boxes[:, [2, 0]]
        return replace(sample, image=np.ascontiguousarray(sample.image[:, ::-1]), boxes=boxes)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


@TRANSFORMS.register()
class Albu:
    """Any albumentations transform by name, bbox-aware: `{type: Albu, transform: RandomBrightnessContrast, p: 0.5}`.

    Boxes go through albumentations' `pascal_voc` format (absolute xyxy); boxes that a geometric
    transform pushes out of the image, or shrinks below `min_visibility`, are dropped with their labels.
    Geometric transforms here are for training: they are not tracked in `Sample.scale`.
    """

    def __init__(self, transform: str, min_visibility: float = 0.0, min_area: float = 1.0, **kwargs: Any) -> None:
        if not hasattr(A, transform):
            names = [n for n in dir(A) if n[:1].isupper()]
            raise ConfigError(f"Albu.transform: albumentations has no transform '{transform}'.{did_you_mean(transform, names)}")
        try:
            op = getattr(A, transform)(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"Albu({transform}): {e}") from None
        self.name = transform
        # Pixel-only transforms leave boxes alone; only geometric ones need albumentations' box handling.
        self.geometric = not isinstance(op, A.ImageOnlyTransform)
        bbox_params = A.BboxParams(format="pascal_voc", label_fields=["indices"], min_visibility=min_visibility, min_area=min_area)
        self.pipeline = A.Compose([op], bbox_params=bbox_params if self.geometric else None)

    def __call__(self, sample: Sample) -> Sample:
        if not self.geometric:
            return replace(sample, image=self.pipeline(image=sample.image)["image"])
        h, w = sample.size
        boxes = sample.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        out = self.pipeline(image=sample.image, bboxes=boxes, indices=np.arange(len(boxes)))
        keep = np.asarray(out["indices"], np.int64)
        new_boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        return replace(
            sample, image=out["image"], boxes=new_boxes, labels=sample.labels[keep], ignore=sample.ignore[keep]
        )

    def __repr__(self) -> str:
        return f"Albu({self.name})"
