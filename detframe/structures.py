"""The records that travel along the data path: Sample -> Batch -> (model) -> Detections.

Box convention everywhere: xyxy, absolute pixels, float32, continuous coordinates in which a pixel
(i, j) covers [j, j+1) x [i, i+1). A box covering pixel columns 10..19 is x1=10, x2=20. VOC's 1-based
inclusive XML coordinates are converted at the reader (x1 = xmin - 1, x2 = xmax), see data/datasets/voc.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor


@dataclass
class Sample:
    """One image and its annotations, as a dataset returns it and transforms modify it.

    `scale` and `offset` record the geometric test-time transforms so predictions can be mapped back:
    a point in the current image is `orig * scale + offset` (x and y separately).
    """

    image: np.ndarray  # uint8 [H, W, 3] RGB
    boxes: np.ndarray  # float32 [N, 4] xyxy, absolute pixels
    labels: np.ndarray  # int64 [N] in 0..num_classes-1; there is no background id
    image_id: int
    orig_size: tuple[int, int]  # (h, w) before any transform
    ignore: np.ndarray = None  # bool [N]: VOC "difficult" / COCO "iscrowd", neither positive nor negative
    scale: tuple[float, float] = (1.0, 1.0)  # (sx, sy)
    offset: tuple[float, float] = (0.0, 0.0)  # (ox, oy)
    file_name: str = ""
    # uint8 [N, H, W] per-instance binary bitmaps at the current image's size, one per box in the same
    # order; None when the dataset was read without masks (data.with_masks: false)
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.ignore is None:
            self.ignore = np.zeros(len(self.labels), dtype=bool)
        self.ignore = np.asarray(self.ignore, dtype=bool).reshape(-1)
        if not (len(self.boxes) == len(self.labels) == len(self.ignore)):
            raise ValueError(
                f"image {self.image_id}: {len(self.boxes)} boxes, {len(self.labels)} labels, "
                f"{len(self.ignore)} ignore flags"
            )
        if self.masks is not None and len(self.masks) != len(self.boxes):
            raise ValueError(f"image {self.image_id}: {len(self.boxes)} boxes, {len(self.masks)} masks")

    @property
    def size(self) -> tuple[int, int]:
        """(h, w) of the current image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def select(self, keep: np.ndarray) -> Sample:
        """A copy keeping only the instances where `keep` (bool mask or indices) is set."""
        masks = None if self.masks is None else self.masks[keep]
        return replace(self, boxes=self.boxes[keep], labels=self.labels[keep], ignore=self.ignore[keep],
                       masks=masks)


@dataclass
class Instances:
    """Ground truth of one image as tensors."""

    boxes: Tensor  # float32 [N, 4] xyxy absolute, in the transformed image
    labels: Tensor  # int64 [N]
    ignore: Tensor  # bool [N]
    # uint8 [N, h, w] binary, (h, w) = the image's size before batch padding (batch.image_sizes[i]),
    # so no padding is stored; None without masks
    masks: Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Instances:
        return Instances(*(None if t is None else t.to(device, non_blocking=non_blocking)
                           for t in (self.boxes, self.labels, self.ignore, self.masks)))

    def pin_memory(self) -> Instances:
        return Instances(*(None if t is None else t.pin_memory()
                           for t in (self.boxes, self.labels, self.ignore, self.masks)))

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Batch:
    """Padded images and per-image targets and metadata; made by `data.collate.collate`."""

    images: Tensor  # uint8 [B, 3, H, W], zero-padded at the bottom and right
    targets: list[Instances]
    image_sizes: list[tuple[int, int]]  # (h, w) of each image before padding
    orig_sizes: list[tuple[int, int]]  # (h, w) of each original image
    image_ids: list[int]
    scales: list[tuple[float, float]] = field(default_factory=list)
    offsets: list[tuple[float, float]] = field(default_factory=list)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return replace(
            self,
            images=self.images.to(device, non_blocking=non_blocking),
            targets=[t.to(device, non_blocking=non_blocking) for t in self.targets],
        )

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True) for custom batch types."""
        return replace(
            self,
            images=self.images.pin_memory(),
            targets=[t.pin_memory() for t in self.targets],
        )

    def __len__(self) -> int:
        return len(self.image_ids)


@dataclass
class Detections:
    """Post-processed predictions for one image, in original-image pixels."""

    boxes: Tensor  # float32 [K, 4] xyxy absolute
    scores: Tensor  # float32 [K]
    labels: Tensor  # int64 [K] in 0..num_classes-1
    # bool [K, H0, W0] in original-image pixels (pasted and thresholded by the model); None for box models
    masks: Tensor | None = None

    def to(self, device: torch.device | str) -> Detections:
        masks = None if self.masks is None else self.masks.to(device)
        return Detections(self.boxes.to(device), self.scores.to(device), self.labels.to(device), masks)

    def __len__(self) -> int:
        return len(self.scores)
