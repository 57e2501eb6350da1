"""Images of filled rectangles in known colours, and checks that boxes still cover their colour."""
from __future__ import annotations

import numpy as np

from detframe.structures import Sample

# Far apart in RGB, and far from the fills the transforms use (black, grey 114, the pixel mean).
COLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255),
                    (255, 128, 0), (128, 0, 255), (255, 255, 255)], np.int32)


def coloured_sample(size, rects, first_label=0, image_id=0) -> Sample:
    """A black (h, w) image with rectangle k (x1, y1, x2, y2, integer pixels) filled in
    COLOURS[first_label + k]; box k has label first_label + k, so every box is identified by its colour."""
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(rects):
        image[y1:y2, x1:x2] = COLOURS[first_label + k]
    labels = np.arange(first_label, first_label + len(rects))
    return Sample(image=image, boxes=np.array(rects, np.float32).reshape(-1, 4), labels=labels,
                  image_id=image_id, orig_size=(h, w))


def colour_mask(image: np.ndarray, label: int, tol: int = 40) -> np.ndarray:
    return (np.abs(image.astype(np.int32) - COLOURS[label]) <= tol).all(axis=-1)


def assert_boxes_cover_colours(sample: Sample, margin: float = 1.5, min_fill: float = 0.8) -> None:
    """Every box contains all pixels of its colour (within `margin` px) and is mostly filled by it."""
    for box, label in zip(sample.boxes, sample.labels):
        mask = colour_mask(sample.image, int(label))
        ys, xs = np.nonzero(mask)
        assert len(xs), f"box {box} (label {label}) kept, but its colour is gone from the image"
        x1, y1, x2, y2 = box
        assert xs.min() >= x1 - margin and xs.max() + 1 <= x2 + margin, (label, box, xs.min(), xs.max() + 1)
        assert ys.min() >= y1 - margin and ys.max() + 1 <= y2 + margin, (label, box, ys.min(), ys.max() + 1)
        inner = mask[int(np.ceil(y1)):int(y2), int(np.ceil(x1)):int(x2)]
        assert inner.size and inner.mean() >= min_fill, (label, box, inner.mean() if inner.size else 0)


def visible_fraction(sample: Sample, label: int, full_area: float) -> float:
    """Pixels of `label`'s colour in the image over the area the whole rectangle would have."""
    return float(colour_mask(sample.image, label).sum()) / full_area
