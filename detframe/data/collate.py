"""Stack samples into a `Batch`: images padded at the bottom/right to a common, divisible size.
Instance masks stay per image at the image's own size: padding them would only store zeros."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..structures import Batch, Instances, Sample


class Collate:
    """Collate function for DataLoader (a class so that it pickles into worker processes).

    Args:
        size_divisor: pad height and width up to a multiple of this (1 = no extra padding).
    """

    def __init__(self, size_divisor: int = 1) -> None:
        self.size_divisor = max(1, int(size_divisor))

    def __call__(self, samples: Sequence[Sample]) -> Batch:
        d = self.size_divisor
        max_h = math.ceil(max(s.image.shape[0] for s in samples) / d) * d
        max_w = math.ceil(max(s.image.shape[1] for s in samples) / d) * d
        images = torch.zeros((len(samples), 3, max_h, max_w), dtype=torch.uint8)
        for i, s in enumerate(samples):
            h, w = s.image.shape[:2]
            images[i, :, :h, :w] = torch.from_numpy(s.image).permute(2, 0, 1)
        targets = [
            Instances(torch.from_numpy(s.boxes).float(), torch.from_numpy(s.labels).long(),
                      torch.from_numpy(s.ignore).bool(), _masks(s))
            for s in samples
        ]
        return Batch(
            images=images,
            targets=targets,
            image_sizes=[s.size for s in samples],
            orig_sizes=[tuple(s.orig_size) for s in samples],
            image_ids=[int(s.image_id) for s in samples],
            scales=[tuple(s.scale) for s in samples],
            offsets=[tuple(s.offset) for s in samples],
        )


def _masks(sample: Sample) -> torch.Tensor | None:
    """The sample's masks as uint8 [N, h, w] (an empty [0, h, w] for an image without objects)."""
    if sample.masks is None:
        return None
    masks = np.ascontiguousarray(sample.masks, dtype=np.uint8)
    if len(masks) and masks.shape[1:] != sample.size:
        raise ValueError(f"image {sample.image_id}: masks of {masks.shape[1:]} (h, w) on an image of "
                         f"{sample.size}: a transform moved the image without its masks")
    return torch.from_numpy(masks.reshape(-1, *sample.size))
