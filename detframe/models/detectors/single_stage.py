"""Backbone -> neck -> dense head, with the input normalisation kept as buffers (so checkpoints carry it)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ...registry import DETECTORS
from ...structures import Batch, Detections


@DETECTORS.register()
class SingleStageDetector(nn.Module):
    """A one-stage detector.

    Args:
        backbone, neck, head: built modules (neck may be None).
        pixel_mean, pixel_std: per-channel RGB statistics in 0..255 units; the uint8 input is mapped to
            (x - mean) / std inside `forward`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        neck: nn.Module | None = None,
        pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
        pixel_std: Sequence[float] = (58.395, 57.12, 57.375),
    ) -> None:
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=True)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), persistent=True)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 (or float 0..255) [B, 3, H, W] -> normalised float."""
        return (images.float() - self.pixel_mean) / self.pixel_std

    def forward(self, images: Tensor):
        features = self.backbone(self.normalize(images))
        if self.neck is not None:
            features = self.neck(features)
        return self.head(features)

    def loss(self, batch: Batch, forward: Callable[[Tensor], object] | None = None) -> dict[str, Tensor]:
        """Loss terms for a batch. `forward` is the (possibly DDP-wrapped) module to run the images through."""
        outputs = (forward or self)(batch.images)
        return self.head.loss(outputs, batch.targets, batch.images.shape[-2:])

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Detections]:
        """Detections per image, in original-image pixels."""
        return self.head.predict(self(batch.images), batch)
