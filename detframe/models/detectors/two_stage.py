"""Backbone -> neck (or none) -> RPN proposals -> RoI head (Faster, Cascade, Mask R-CNN; R-FCN)."""
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
class TwoStageDetector(NormalizingDetector):
    """The `Detector` contract over an RPN and a RoI head sharing the neck's features.

    `loss` adds the RPN's terms (`loss_rpn_cls`, `loss_rpn_box`) to the RoI head's (`loss_cls`,
    `loss_box`; a cascade's `loss_s1_cls` ...), the RoI head training on the proposals of the
    current weights, detached (the approximate joint training of Ren et al. 2015, sec. 3.2, as
    torchvision and mmdetection). `predict` runs RPN -> proposals -> RoI head -> detections.

    Args:
        backbone, rpn_head, roi_head: built modules.
        neck: built module, or None for heads that work on the backbone's maps themselves (R-FCN on
            the last stage).
        pixel_mean, pixel_std: see `NormalizingDetector`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module | None,
        rpn_head: nn.Module,
        roi_head: nn.Module,
        pixel_mean: Annotated[Sequence[float], Each(Range(), length=3)] = (123.675, 116.28, 103.53),
        pixel_std: Annotated[Sequence[float], Each(Range(0, lo_open=True), length=3)] = (
            58.395, 57.12, 57.375),
    ) -> None:
        super().__init__(pixel_mean, pixel_std)
        self.backbone, self.neck, self.rpn_head, self.roi_head = backbone, neck, rpn_head, roi_head

    @property
    def requires_masks(self) -> bool:
        """True with a RoI head that has a mask branch (Mask R-CNN): it trains on `Instances.masks`."""
        return getattr(self.roi_head, "mask_head", None) is not None

    def forward(self, images: Tensor) -> list[Tensor]:
        """The neck's maps (the backbone's without a neck), finest first, for uint8 images [B, 3, H, W]
        (this family's own; not the contract)."""
        features = self.backbone(self.normalize(images))
        return features if self.neck is None else self.neck(features)

    def proposals(self, batch: Batch, features: list[Tensor] | None = None) -> list[Tensor]:
        """The RPN's proposals per image, [n_i, 4] xyxy in input pixels (its train or test counts,
        by `self.training`)."""
        features = self(batch.images) if features is None else features
        return self.rpn_head.proposals(self.rpn_head(features), batch.image_sizes, batch.images.shape[-2:])

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """Both stages' terms for a batch (see `Detector.loss`)."""
        features = self(batch.images)
        outputs = self.rpn_head(features)
        input_size = batch.images.shape[-2:]
        losses = self.rpn_head.loss(outputs, batch.targets, input_size)
        proposals = self.rpn_head.proposals(outputs, batch.image_sizes, input_size)
        return {**losses, **self.roi_head.loss(features, proposals, batch)}

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Detections]:
        """Detections per image, in original-image pixels (see `Detector.predict`)."""
        features = self(batch.images)
        return self.roi_head.predict(features, self.proposals(batch, features), batch)
