"""Backbone -> neck -> dense head, with the input normalisation kept as buffers (so checkpoints carry it)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor, nn

from ...registry import DETECTORS
from ...rules import Each, Range
from ...structures import Batch, Detections
from .base import NormalizingDetector


@DETECTORS.register()
class SingleStageDetector(NormalizingDetector):
    """A one-stage detector: the `Detector` contract over a dense head's `loss` and `predict`.

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
        pixel_mean: Annotated[Sequence[float], Each(Range(), length=3)] = (123.675, 116.28, 103.53),
        pixel_std: Annotated[Sequence[float], Each(Range(0, lo_open=True), length=3)] = (
            58.395, 57.12, 57.375),
    ) -> None:
        super().__init__(pixel_mean, pixel_std)
        self.backbone, self.neck, self.head = backbone, neck, head

    def forward(self, images: Tensor):
        """The head's raw outputs for uint8 images [B, 3, H, W] (this family's own; not the contract)."""
        features = self.backbone(self.normalize(images))
        if self.neck is not None:
            features = self.neck(features)
        return self.head(features)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """The head's loss terms for a batch (see `Detector.loss`)."""
        return self.head.loss(self(batch.images), batch.targets, batch.images.shape[-2:])

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Detections]:
        """Detections per image, in original-image pixels (see `Detector.predict`)."""
        return self.head.predict(self(batch.images), batch)

    @torch.no_grad()
    def decode(self, images: Tensor, candidates: bool = False) -> tuple[Tensor, Tensor]:
        """Every prior's box [B, P, 4] (xyxy, input pixels, not clipped) and class scores [B, P, C] for
        images [B, 3, H, W] as `data.collate` makes them: the traceable part of `predict`, which
        `detframe.export` puts in a graph. With `candidates`, the scores of the pairs `predict` would
        not hand to NMS are 0 (see `DenseHead` in models/heads/base.py)."""
        return self.head.decode(self(images), images.shape[-2:], candidates)

    def nms_settings(self) -> dict[str, float | int]:
        """The head's `score_threshold`, `nms_iou` and `max_detections`: what `predict` applies after
        `decode`'s candidates."""
        head = self.head
        return {"score_threshold": head.score_threshold, "nms_iou": head.nms_iou,
                "max_detections": head.max_detections}
