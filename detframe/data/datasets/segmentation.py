"""COCO `segmentation` entries as instance masks: checked, turned into compressed RLE when the file is
read (a few hundred bytes per object instead of a bitmap per object for the whole run), and decoded
into bitmaps when a sample is loaded. Every conversion is pycocotools.mask's (`frPyObjects`, `merge`,
`decode`, through ops/masks.py), so that the masks we train on are the ones COCOeval scores against.

The three forms COCO uses: polygons (a list of [x1, y1, x2, y2, ...] lists, continuous pixel
coordinates), uncompressed RLE ({"counts": [ints], "size": [h, w]}, column-major runs starting with
background; crowd regions are written so) and compressed RLE ({"counts": "string", "size": [h, w]}).
"""
from __future__ import annotations

import json
import math

from pycocotools import mask as mask_utils

MASK_FORMS = ("a list of polygons [[x1, y1, x2, y2, ...], ...] with at least 3 points each, or an RLE "
              "{counts, size: [h, w]}")


def segmentation_error(segmentation: object, height: int, width: int) -> str | None:
    """What is wrong with a COCO segmentation for an image of (height, width), or None if it is one
    of the three forms pycocotools reads."""
    if isinstance(segmentation, list):
        if not segmentation:
            return "is an empty list (no polygon)"
        for i, polygon in enumerate(segmentation):
            problem = _polygon_error(polygon)
            if problem:
                return f"polygon {i} {problem}"
        return None
    if isinstance(segmentation, dict):
        return _rle_error(segmentation, height, width)
    return f"is a {type(segmentation).__name__}, not a list of polygons or an RLE object"


def _polygon_error(polygon: object) -> str | None:
    if not isinstance(polygon, list):
        return f"is a {type(polygon).__name__}, not a list of numbers"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in polygon):
        return "holds values that are not finite numbers"
    if len(polygon) < 6 or len(polygon) % 2:
        return f"has {len(polygon)} numbers (expected an even count, at least 6: x, y of 3 points or more)"
    return None


def _rle_error(rle: dict, height: int, width: int) -> str | None:
    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        return f"is an RLE whose size {json.dumps(size)} is not [height, width]"
    if tuple(size) != (height, width):
        return f"is an RLE of size {size} (h, w), but the image is [{height}, {width}]"
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            return "is an RLE whose counts are not non-negative integers"
        if sum(counts) != height * width:
            return f"is an RLE whose counts add up to {sum(counts)}, not {height} x {width} pixels"
        return None
    if not isinstance(counts, str):
        return "is an RLE without 'counts' (a list of run lengths or a compressed string)"
    return None


def to_rle(segmentation: list | dict, height: int, width: int) -> dict:
    """One compressed RLE for a checked segmentation (several polygons of an object merged)."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return {"size": list(segmentation["size"]), "counts": segmentation["counts"].encode()}
