"""Instance masks <-> compressed RLE (pycocotools.mask), shared by the readers (decoding the dataset's
masks), the evaluators and the tools (encoding predicted ones: COCO results files, distributed
gathering, predictions.json)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils


def decode_masks(rles: Sequence[dict], height: int, width: int) -> np.ndarray:
    """uint8 [N, height, width] bitmaps (0/1) of N compressed RLEs."""
    if not rles:
        return np.zeros((0, height, width), np.uint8)
    return np.ascontiguousarray(mask_utils.decode(list(rles)).transpose(2, 0, 1))


def encode_masks(masks: np.ndarray) -> list[dict]:
    """Compressed RLEs, JSON-ready (`counts` as str), of [N, H, W] binary masks (bool or uint8)."""
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.asarray(masks, np.uint8).transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles
