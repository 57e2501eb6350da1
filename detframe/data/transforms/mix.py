"""The YOLO family's geometric augmentation: mosaic, random affine after it, and mixup.

Written here rather than taken from albumentations: `A.Mosaic` (2.0) fits every image into a fixed
cell and returns a fixed-size window, so the random affine after it cannot zoom out onto the other
images as YOLOX and ultralytics do, and `A.Affine` keeps the input size, while the YOLO affine maps the
2s x 2s mosaic canvas onto the s x s output in one warp. albumentations has no two-image blend with boxes.
The geometry follows ultralytics' `Mosaic` / `RandomPerspective` / `MixUp` (and YOLOX's equivalents).
"""
from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from ...registry import TRANSFORMS
from ...rules import NonNegativeFloat, PixelValue, PositiveFloat, Probability, Range, Size, min_max
from ...structures import Sample
from .base import MixTransform, clip_and_filter, keep_boxes
from .geometric import pair
from .masks import concat_masks, mosaic_masks, place_masks, warp_masks


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


UnitPair = min_max(Range(0, 1))  # [min, max] within [0, 1]
ScalePair = min_max(Range(0, lo_open=True))


@TRANSFORMS.register()
class Mosaic(MixTransform):
    """Four images around a random centre on a 2s x 2s canvas (YOLOv4/v5, YOLOX).

    The current image fills the top-left quadrant up to the centre, three random images of the
    dataset the other three; each keeps the scale the transforms before Mosaic gave it (put a
    `Resize(size, keep_ratio: true)` first), and is cut where it would leave the canvas. Boxes are
    clipped to the canvas; a box keeping less than `min_visibility` of its area, or narrower than
    `min_size` pixels, is dropped. Follow it with `RandomAffine(size)`, which maps the canvas to s x s.

    Args:
        size: s, the training input size (int or [h, w]); the canvas is twice that.
        center_range: the centre is drawn in [lo, hi] x canvas side (0.25-0.75: ultralytics/YOLOX).
        fill: grey level of canvas areas no image covers.
        min_visibility, min_size: the box filter above.
        p: probability of building a mosaic (otherwise the image passes unchanged).
    """

    num_mix = 3
    carries_masks = True

    def __init__(self, size: Size, center_range: UnitPair = (0.25, 0.75),
                 fill: PixelValue = 114, min_visibility: Probability = 0.1, min_size: NonNegativeFloat = 2.0,
                 p: Probability = 1.0) -> None:
        self.size = pair(size)
        self.center_range = (float(center_range[0]), float(center_range[1]))
        self.fill, self.min_visibility, self.min_size, self.p = int(fill), min_visibility, min_size, p

    def get_params(self) -> tuple[int, int]:
        """The centre (xc, yc) on the canvas."""
        ch, cw = 2 * self.size[0], 2 * self.size[1]
        return (int(np.random.uniform(*self.center_range) * cw),
                int(np.random.uniform(*self.center_range) * ch))

    def mix(self, sample: Sample, others: list[Sample]) -> Sample:
        return self.apply([sample, *others], self.get_params())

    def apply(self, samples: list[Sample], centre: tuple[int, int]) -> Sample:
        ch, cw = 2 * self.size[0], 2 * self.size[1]
        xc, yc = centre
        canvas = np.full((ch, cw, 3), self.fill, np.uint8)
        boxes, labels, ignore, regions = [], [], [], []
        for quadrant, s in enumerate(samples[:4]):
            h, w = s.size
            # Region on the canvas (a) and the part of the image that lands there (b).
            if quadrant == 0:  # top-left: the image's bottom-right corner at the centre
                xa1, ya1, xa2, ya2 = max(xc - w, 0), max(yc - h, 0), xc, yc
                xb1, yb1 = w - (xa2 - xa1), h - (ya2 - ya1)
            elif quadrant == 1:  # top-right
                xa1, ya1, xa2, ya2 = xc, max(yc - h, 0), min(xc + w, cw), yc
                xb1, yb1 = 0, h - (ya2 - ya1)
            elif quadrant == 2:  # bottom-left
                xa1, ya1, xa2, ya2 = max(xc - w, 0), yc, xc, min(yc + h, ch)
                xb1, yb1 = w - (xa2 - xa1), 0
            else:  # bottom-right
                xa1, ya1, xa2, ya2 = xc, yc, min(xc + w, cw), min(yc + h, ch)
                xb1, yb1 = 0, 0
            canvas[ya1:ya2, xa1:xa2] = s.image[yb1:yb1 + (ya2 - ya1), xb1:xb1 + (xa2 - xa1)]
            boxes.append(s.boxes + np.array([xa1 - xb1, ya1 - yb1] * 2, np.float32))
            labels.append(s.labels)
            ignore.append(s.ignore)
            regions.append(((xa1, ya1, xa2, ya2), (xb1, yb1)))
        boxes_all = np.concatenate(boxes)
        clipped, keep = clip_and_filter(boxes_all, (ch, cw), _box_areas(boxes_all), self.min_visibility,
                                        self.min_size)
        masks = mosaic_masks([s.masks for s in samples[:4]], regions, keep, (ch, cw))
        return replace(samples[0], image=canvas, boxes=clipped[keep], labels=np.concatenate(labels)[keep],
                       ignore=np.concatenate(ignore)[keep], masks=masks)

    def __repr__(self) -> str:
        return f"Mosaic(size={self.size}, p={self.p})"


@TRANSFORMS.register()
class RandomAffine:
    """Rotation, scaling, shear and translation about the image centre, output `size` (ultralytics'
    RandomPerspective without perspective; YOLOX's random_affine).

    The input's centre goes to the output's centre: after `Mosaic` (a 2s canvas) the output is an
    s x s view of it, zoomed by the random scale. Boxes are the bounding boxes of their transformed
    corners, clipped to the output; a box is dropped when it keeps less than `min_visibility` of its
    transformed area, is narrower than `min_size` pixels, or has an aspect ratio above `max_aspect`.

    Args:
        size: output size, int or [h, w].
        degrees: rotation uniform in [-degrees, degrees].
        translate: shift uniform in [-translate, translate] x output side.
        scale: zoom factor range.
        shear: shear angles uniform in [-shear, shear] degrees, x and y.
        fill: grey level of uncovered areas.
        min_visibility, min_size, max_aspect: the box filter above.
    """

    carries_masks = True

    def __init__(self, size: Size, degrees: NonNegativeFloat = 0.0, translate: Probability = 0.1,
                 scale: ScalePair = (0.5, 1.5), shear: NonNegativeFloat = 0.0, fill: PixelValue = 114,
                 min_visibility: Probability = 0.1, min_size: NonNegativeFloat = 2.0,
                 max_aspect: PositiveFloat = 20.0) -> None:
        self.size = pair(size)
        self.degrees, self.translate, self.shear = degrees, translate, shear
        self.scale = (float(scale[0]), float(scale[1]))
        self.fill, self.min_visibility, self.min_size, self.max_aspect = (
            int(fill), min_visibility, min_size, max_aspect)

    def get_params(self, in_size: tuple[int, int]) -> np.ndarray:
        """The 2x3 matrix mapping input pixels to output pixels."""
        h, w = in_size
        oh, ow = self.size
        centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
        angle = math.radians(np.random.uniform(-self.degrees, self.degrees))
        s = np.random.uniform(*self.scale)
        rotate = np.array([[s * math.cos(angle), -s * math.sin(angle), 0],
                           [s * math.sin(angle), s * math.cos(angle), 0],
                           [0, 0, 1]])
        shx, shy = (math.tan(math.radians(np.random.uniform(-self.shear, self.shear))) for _ in range(2))
        shear = np.array([[1, shx, 0], [shy, 1, 0], [0, 0, 1]])
        tx, ty = np.random.uniform(0.5 - self.translate, 0.5 + self.translate, 2) * (ow, oh)
        move = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        return (move @ shear @ rotate @ centre)[:2]

    def apply(self, sample: Sample, matrix: np.ndarray) -> Sample:
        oh, ow = self.size
        image = cv2.warpAffine(sample.image, matrix, (ow, oh), flags=cv2.INTER_LINEAR,
                               borderValue=(self.fill,) * 3)
        n = len(sample.boxes)
        masks = warp_masks(sample.masks, matrix, (oh, ow))
        if n == 0:
            return replace(sample, image=image, masks=masks)
        b = sample.boxes
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1).reshape(-1, 2)
        moved = (corners @ matrix[:, :2].T + matrix[:, 2]).reshape(n, 4, 2)
        boxes = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1).astype(np.float32)
        clipped, keep = clip_and_filter(boxes, (oh, ow), _box_areas(boxes), self.min_visibility,
                                        self.min_size)
        bw, bh = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        keep &= np.maximum(bw / np.maximum(bh, 1e-6), bh / np.maximum(bw, 1e-6)) < self.max_aspect
        return keep_boxes(sample, clipped, keep, image=image, masks=masks)

    def __call__(self, sample: Sample) -> Sample:
        return self.apply(sample, self.get_params(sample.size))

    def __repr__(self) -> str:
        return (f"RandomAffine(size={self.size}, degrees={self.degrees}, translate={self.translate}, "
                f"scale={self.scale}, shear={self.shear})")


@TRANSFORMS.register()
class MixUp(MixTransform):
    """Blend the image with another training sample and keep both box sets (Zhang et al. 2018; the
    YOLO variant: the partner has been through the same transforms, i.e. is a mosaic too).

    The weight of the current image is drawn from Beta(alpha, alpha) (32: close to 0.5, ultralytics).
    A partner of another size is placed at the top-left and cropped or padded with `fill`.

    Args:
        alpha: Beta distribution parameter.
        fill: grey level where the partner does not reach.
        p: probability of mixing.
    """

    num_mix = 1
    carries_masks = True

    def __init__(self, alpha: PositiveFloat = 32.0, fill: PixelValue = 114, p: Probability = 1.0) -> None:
        self.alpha, self.fill, self.p = alpha, int(fill), p

    def mix(self, sample: Sample, others: list[Sample]) -> Sample:
        return self.apply(sample, others[0], float(np.random.beta(self.alpha, self.alpha)))

    def apply(self, sample: Sample, other: Sample, ratio: float) -> Sample:
        h, w = sample.size
        partner = other.image
        if other.size != (h, w):
            partner = np.full((h, w, 3), self.fill, np.uint8)
            oh, ow = min(h, other.size[0]), min(w, other.size[1])
            partner[:oh, :ow] = other.image[:oh, :ow]
        image = cv2.addWeighted(sample.image, ratio, partner, 1.0 - ratio, 0.0)
        boxes = other.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        oh, ow = min(h, other.size[0]), min(w, other.size[1])
        other_masks = place_masks(other.masks, (h, w), (0, 0, ow, oh), (0, 0))
        masks = concat_masks([sample.masks, None if other_masks is None else other_masks[keep]])
        return replace(sample, image=image, boxes=np.concatenate([sample.boxes, boxes[keep]]),
                       labels=np.concatenate([sample.labels, other.labels[keep]]),
                       ignore=np.concatenate([sample.ignore, other.ignore[keep]]), masks=masks)

    def __repr__(self) -> str:
        return f"MixUp(alpha={self.alpha}, p={self.p})"
