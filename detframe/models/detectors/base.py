"""The contract every detector family follows: `loss(batch)` and `predict(batch)`, nothing else.

Why an `nn.Module` base class and not a `typing.Protocol`: what the runner does with a detector besides
calling these two methods is `nn.Module`'s (parameters and their names for the optimizer and freezing,
`state_dict` for checkpoints and EMA, `train()` / `eval()`, `.to()`, wrapping for DDP), which a
Protocol would have to restate or leave unchecked. A base class says it once, lets the builder check
`isinstance(model, Detector)`, and (an `abc.ABC`) refuses to build a family that forgot a method.
"""
from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ...structures import Batch, Detections


class Detector(nn.Module, abc.ABC):
    """A detector, whatever its family: a module with `loss` and `predict`.

    What the runner, the evaluators and the tools (predict, export, benchmark) may rely on is this
    class's two methods, the `nn.Module` interface, and nothing else: not `forward`'s signature or
    outputs, not attributes such as `head` or `backbone`, which belong to a family (export, besides,
    traces the family's own `decode` where it has one: `SingleStageDetector`). The input is a
    `Batch` as `data.collate` makes it: uint8 images [B, 3, H, W] padded at the bottom and right (each
    detector normalises them itself, with its statistics kept as buffers so checkpoints carry them),
    per-image targets in the padded input's pixels, `image_sizes`, `orig_sizes`, `scales`, `offsets`.

    How the families fit:

    - One-stage dense detectors (`SingleStageDetector`: SSD, RetinaNet, YOLOv3; FCOS, CenterNet,
      YOLOX): backbone -> neck -> head; `loss` matches priors to objects and returns the head's terms;
      `predict` decodes through `models.postprocess.postprocess_dense` (score threshold, top-k, NMS,
      original pixels). CenterNet's peak picking replaces NMS through that function's `suppress` /
      `nms_iou=None`.
    - Two-stage (`TwoStageDetector(backbone, neck, rpn_head, roi_head)`; Faster / Cascade / Mask R-CNN):
      the RPN is a dense head whose "detections" are proposals (per level top-k, NMS within each level,
      kept in input pixels: `RPNHead.proposals`); the RoI head samples and matches them to the objects
      itself and ends in `postprocess_dense` (class-specific boxes, class-aware NMS). `loss` returns
      both stages' terms under distinct names (`loss_rpn_cls`,
      `loss_rpn_box`, `loss_cls`, `loss_box`, `loss_mask`; a cascade `loss_s1_cls` ...); `predict` runs
      RPN -> RoI head -> class-aware NMS -> original pixels.
    - Set predictors (DETR and its followers): `loss` does the Hungarian matching of queries to
      objects inside it and returns `loss_cls`, `loss_box`, `loss_giou` (plus one set per auxiliary
      decoder layer, `loss_cls_d0` ...); `predict` keeps the best queries with no NMS (one query per
      object by construction) and maps their boxes to original pixels.

    Instance segmentation (Mask R-CNN) reads `Instances.masks` (uint8 [N, h, w] at each image's
    unpadded size) and returns `Detections.masks` (bool [K, H0, W0], original pixels); it sets
    `requires_masks = True` so that a run on a dataset without masks stops before training
    (engine/preflight.py).
    """

    requires_masks: bool = False  # the model trains on Instances.masks (data.with_masks must be true)

    @abc.abstractmethod
    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """Loss terms of a batch, computed in train mode (the runner calls `train()` first).

        The runner sums the terms, backpropagates the total and logs each term (`train/loss_cls`). For
        DDP the engine wraps the detector in an adapter module whose `forward(batch)` calls this method,
        so everything that uses parameters happens inside this one call.

        Args:
            batch: images and targets (boxes xyxy in the padded input's pixels, labels 0..C-1, ignore
                flags); the detector moves nothing to another device.

        Returns:
            {"loss_<what>": float scalar}: named terms, each already normalised (by the positives or
            the images) and weighted by its config's `loss_weight`, so that their plain sum is the
            objective. Counts shared between ranks go through `detframe.dist` (e.g.
            `heads.base.num_positives`), never through torch.distributed inside a model.
        """

    @abc.abstractmethod
    def predict(self, batch: Batch) -> list[Detections]:
        """Detections of each image of a batch, called in eval mode without gradients.

        Args:
            batch: as for `loss`; targets, if any, are not used.

        Returns:
            One `Detections` per image, in batch order: boxes float32 [K, 4] xyxy in ORIGINAL-image
            pixels (the test-time resize / letterbox of `scales` and `offsets` undone, clipped to
            `orig_sizes`), scores float32 [K] best first, labels int64 [K] in 0..C-1 (there is no
            background id); `masks` bool [K, H0, W0] in original pixels (pasted and thresholded at
            0.5) when a model makes them, else None. The score threshold and the number kept are the
            model's (its config), not the caller's.
        """


class NormalizingDetector(Detector):
    """A `Detector` that normalises its uint8 input itself, with the statistics kept as buffers so that
    checkpoints carry them: the part the single- and two-stage families share.

    Args:
        pixel_mean, pixel_std: per-channel RGB statistics in 0..255 units; `normalize` maps x to
            (x - mean) / std.
    """

    def __init__(self, pixel_mean: Sequence[float], pixel_std: Sequence[float]) -> None:
        super().__init__()
        mean = torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=True)
        self.register_buffer("pixel_std", std, persistent=True)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 (or float 0..255) [B, 3, H, W] -> normalised, in the dtype of the statistics (float32;
        float16 in a model made `.half()` for export)."""
        return (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
