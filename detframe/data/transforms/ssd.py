"""SSD's geometric augmentation (Liu et al. 2016, sec. 2.2 "Data augmentation"): zoom out onto a
mean-filled canvas, then sample a patch whose IoU with the objects is at least one of a few
thresholds. albumentations has neither (its PadIfNeeded pads to a fixed size, and its bbox-safe
crops do not sample by IoU), so both are written here, with the randomness split from the
application (`get_params` / `apply`) so that tests can check the box rules exactly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from ...registry import TRANSFORMS
from ...rules import Each, PositiveInt, Probability, Range, min_max
from ...structures import Sample
from .base import keep_boxes
from .masks import crop_masks, pad_masks

Mean = Annotated[Sequence[float], Each(Range(0, 255), length=3)]  # RGB pixel values
CropSize = Annotated[float, Range(0, 1, lo_open=True)]  # a fraction of the image side
AspectPair = min_max(Range(0, lo_open=True))
RatioPair = min_max(Range(1))  # zoom-out factors


@TRANSFORMS.register()
class Expand:
    """Zoom out: place the image at a random position on a canvas `ratio` times larger, filled with
    the mean colour (so that after normalisation the border is zero).

    Args:
        mean: RGB fill colour, 0..255 (the model's pixel mean).
        ratio_range: the canvas side is `ratio` times the image side, ratio uniform in this range.
        p: probability of expanding at all.
    """

    carries_masks = True

    def __init__(self, mean: Mean = (123.675, 116.28, 103.53),
                 ratio_range: RatioPair = (1.0, 4.0), p: Probability = 0.5) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.p = p

    def get_params(self, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """(left, top, canvas_w, canvas_h), or None for no expansion."""
        if np.random.random() >= self.p:
            return None
        h, w = size
        ratio = np.random.uniform(*self.ratio_range)
        cw, ch = int(w * ratio), int(h * ratio)
        return int(np.random.uniform(0, cw - w)), int(np.random.uniform(0, ch - h)), cw, ch

    def apply(self, sample: Sample, params: tuple[int, int, int, int] | None) -> Sample:
        if params is None:
            return sample
        left, top, cw, ch = params
        h, w = sample.size
        # copyMakeBorder allocates, fills and copies in one pass (faster than np.full + slice assign).
        image = cv2.copyMakeBorder(sample.image, top, ch - h - top, left, cw - w - left, cv2.BORDER_CONSTANT,
                                   value=tuple(round(m) for m in self.mean))
        return replace(sample, image=image, boxes=sample.boxes + np.array([left, top, left, top], np.float32),
                       masks=pad_masks(sample.masks, top, ch - h - top, left, cw - w - left))

    def __call__(self, sample: Sample) -> Sample:
        return self.apply(sample, self.get_params(sample.size))

    def __repr__(self) -> str:
        return f"Expand(ratio_range={self.ratio_range}, p={self.p})"


@TRANSFORMS.register()
class MinIoURandomCrop:
    """SSD's random patch sampling.

    A mode is drawn uniformly from: the whole image, each of `min_ious`, and "unconstrained" (0).
    For a threshold t, up to `max_trials` patches are drawn (sides uniform in [min_crop_size, 1] of
    the image's, aspect ratio h/w in `aspect_range`) until one has IoU >= t with every object (as in
    mmdetection). Objects whose centre lies in the patch are kept, clipped to it; the others are
    dropped. A patch holding no object centre is rejected. If no trial succeeds, the next mode is drawn.

    Args:
        min_ious: the IoU thresholds.
        min_crop_size: smallest patch side as a fraction of the image side.
        aspect_range: allowed patch height/width ratios.
        max_trials: patches tried per mode.
    """

    carries_masks = True

    def __init__(self, min_ious: Annotated[Sequence[float], Each(Range(0, 1))] = (0.1, 0.3, 0.5, 0.7, 0.9),
                 min_crop_size: CropSize = 0.3,
                 aspect_range: AspectPair = (0.5, 2.0), max_trials: PositiveInt = 50) -> None:
        self.modes = (1.0, *[float(t) for t in min_ious], 0.0)  # 1.0: the whole image, 0.0: unconstrained
        self.min_crop_size = min_crop_size
        self.aspect_range = (float(aspect_range[0]), float(aspect_range[1]))
        self.max_trials = max_trials

    def get_params(self, sample: Sample) -> np.ndarray | None:
        """The patch [x1, y1, x2, y2] in pixels, or None for the whole image."""
        h, w = sample.size
        boxes = torch.from_numpy(sample.boxes)
        centres = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
        for _ in range(100):  # each round draws a mode; returning the whole image ends it
            min_iou = self.modes[np.random.randint(len(self.modes))]
            if min_iou >= 1.0:
                return None
            # All trials of a mode are drawn at once and the first that passes is used.
            n = self.max_trials
            pw = np.random.uniform(self.min_crop_size * w, w, n)
            ph = np.random.uniform(self.min_crop_size * h, h, n)
            left = np.random.uniform(0, 1, n) * (w - pw)
            top = np.random.uniform(0, 1, n) * (h - ph)
            patches = np.stack([left, top, left + pw, top + ph], axis=1).astype(np.float32).round()
            ok = (ph / pw >= self.aspect_range[0]) & (ph / pw <= self.aspect_range[1])
            ok &= (patches[:, 2] > patches[:, 0]) & (patches[:, 3] > patches[:, 1])
            if len(boxes):
                iou = box_iou(torch.from_numpy(patches), boxes).numpy()
                ok &= iou.min(axis=1) >= min_iou
                inside = ((centres[None, :, 0] > patches[:, None, 0])
                          & (centres[None, :, 1] > patches[:, None, 1])
                          & (centres[None, :, 0] < patches[:, None, 2])
                          & (centres[None, :, 1] < patches[:, None, 3]))
                ok &= inside.any(axis=1)
            found = np.flatnonzero(ok)
            if len(found):
                return patches[found[0]]
        return None

    def apply(self, sample: Sample, patch: np.ndarray | None) -> Sample:
        if patch is None:
            return sample
        x1, y1, x2, y2 = (int(v) for v in patch)
        centres = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
        keep = (centres[:, 0] > x1) & (centres[:, 1] > y1) & (centres[:, 0] < x2) & (centres[:, 1] < y2)
        boxes = sample.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(x1, x2) - x1
        boxes[:, 1::2] = boxes[:, 1::2].clip(y1, y2) - y1
        return keep_boxes(sample, boxes, keep, image=sample.image[y1:y2, x1:x2],
                          masks=crop_masks(sample.masks, x1, y1, x2, y2))

    def __call__(self, sample: Sample) -> Sample:
        return self.apply(sample, self.get_params(sample))

    def __repr__(self) -> str:
        return f"MinIoURandomCrop(modes={self.modes}, min_crop_size={self.min_crop_size})"
