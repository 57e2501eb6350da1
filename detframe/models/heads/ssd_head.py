"""SSD and SSDLite heads: one 3x3 (or depthwise-separable) predictor per level for classes and boxes."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from ...registry import HEADS
from ...rules import IoUThreshold, PositiveFloat, PositiveInt, Probability, StrictProbability
from ...structures import Batch, Detections, Instances
from ..assigners import IGNORED
from ..postprocess import keep_topk
from .base import DenseHead, DenseOutputs, flatten_levels, match_batch, num_positives


@HEADS.register()
class SSDHead(DenseHead):
    """Softmax classification over num_classes + 1 (background is logit 0) and delta regression.

    Loss: priors matched by `assigner`, targets encoded by `coder`, `loss_cls` (cross-entropy with hard
    negative mining) and `loss_box` (smooth L1), both divided by the number of positive priors.
    Inference: softmax, per class the `topk_candidates` best priors above `score_threshold`, class-aware
    NMS at `nms_iou`, the `max_detections` best kept (SSD: 0.01, 0.45, 200).

    Args:
        num_classes: object classes, background excluded.
        in_channels: channels of each feature level.
        prior_generator: gives the priors and how many per location (`num_anchors`).
        assigner, coder, loss_cls, loss_box: built components (see models/build.py).
        background_prior: if set, initialise the class biases so that every prior starts with this
            background probability (e.g. 0.99); None keeps the paper's / torchvision's zero bias.
    """

    separable = False

    def __init__(
        self,
        num_classes: PositiveInt,
        in_channels: Sequence[int],
        prior_generator: Callable,
        assigner: Callable,
        coder: object,
        loss_cls: Callable,
        loss_box: Callable,
        score_threshold: Probability = 0.01,
        nms_iou: IoUThreshold = 0.45,
        topk_candidates: PositiveInt = 400,
        max_detections: PositiveInt = 200,
        norm_eps: PositiveFloat = 0.001,
        norm_momentum: Probability = 0.03,
        background_prior: StrictProbability | None = None,
    ) -> None:
        super().__init__()
        anchors = prior_generator.num_anchors
        if len(anchors) != len(in_channels):
            raise ValueError(
                f"{type(self).__name__}: the prior generator has {len(anchors)} levels but the neck gives "
                f"{len(in_channels)} feature maps"
            )
        self.num_classes = num_classes
        self.prior_generator, self.assigner, self.coder = prior_generator, assigner, coder
        self.loss_cls, self.loss_box = loss_cls, loss_box
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.topk_candidates, self.max_detections = topk_candidates, max_detections
        norm = partial(nn.BatchNorm2d, eps=norm_eps, momentum=norm_momentum)
        k = num_classes + 1
        self.cls_convs = nn.ModuleList(self._predictor(c, a * k, norm) for c, a in zip(in_channels, anchors))
        self.reg_convs = nn.ModuleList(self._predictor(c, a * 4, norm) for c, a in zip(in_channels, anchors))
        self._init_weights()
        if background_prior is not None:
            self._init_background_bias(background_prior)

    def _init_background_bias(self, prob: float) -> None:
        """Start with P(background) = `prob` at every prior (RetinaNet's prior-probability init, for a
        softmax): early training then is not dominated by the loss of thousands of easy negatives."""
        if not 0.0 < prob < 1.0:
            raise ValueError(
                f"{type(self).__name__}.background_prior: expected a probability in (0, 1), got {prob}"
            )
        k = self.num_classes + 1
        logit = math.log(prob * (k - 1) / (1.0 - prob))
        for predictor in self.cls_convs:
            last = [m for m in predictor.modules() if isinstance(m, nn.Conv2d)][-1]
            with torch.no_grad():
                last.bias.view(-1, k).fill_(0.0)[:, 0] = logit

    def _predictor(self, channels: int, out: int, norm: Callable) -> nn.Module:
        return nn.Conv2d(channels, out, kernel_size=3, padding=1)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, features: list[Tensor]) -> DenseOutputs:
        cls = flatten_levels([conv(f) for conv, f in zip(self.cls_convs, features)], self.num_classes + 1)
        reg = flatten_levels([conv(f) for conv, f in zip(self.reg_convs, features)], 4)
        return DenseOutputs(cls, reg, [tuple(f.shape[-2:]) for f in features])

    def loss(
        self, outputs: DenseOutputs, targets: list[Instances], image_size: Sequence[int]
    ) -> dict[str, Tensor]:
        """Args:
            outputs: this head's forward output for a batch of B images.
            targets: per image, boxes (xyxy in the padded input's pixels), labels 0..C-1, ignore flags.
            image_size: (h, w) of the padded input tensor.

        Returns:
            {"loss_cls", "loss_box"}, each normalised by the number of positive priors in the batch (its
            mean over ranks in a distributed run, see `num_positives`).
        """
        priors = self.priors(outputs, image_size)
        gt_labels, gt_boxes = match_batch(self.assigner, priors, targets)
        positive = gt_labels >= 0
        # HardNegativeCrossEntropyLoss's targets: 0 background, 1..C the classes, -1 ignored.
        cls_targets = torch.where(positive, gt_labels + 1, 0)
        cls_targets[gt_labels == IGNORED] = -1
        num_pos = num_positives(positive)
        box_targets = self.coder.encode(priors.expand(len(targets), -1, -1)[positive], gt_boxes[positive])
        return {
            "loss_cls": self.loss_cls(outputs.cls_logits, cls_targets) / num_pos,
            "loss_box": self.loss_box(outputs.box_regression[positive], box_targets) / num_pos,
        }

    @torch.no_grad()
    def predict(self, outputs: DenseOutputs, batch: Batch) -> list[Detections]:
        """Softmax scores without the background, per class the top-k priors above the threshold, then
        the shared post-processing (`postprocess_dense`): class-aware NMS, boxes in original pixels."""
        priors = self.priors(outputs, batch.images.shape[-2:])
        # Every prior decoded, for the whole batch at once, as before the shared post-processing:
        # decoding only the candidates could round some boxes differently (see models/postprocess.py).
        boxes_all = self.coder.decode(priors, outputs.box_regression.float())
        scores_all = F.softmax(outputs.cls_logits.float(), dim=-1)[..., 1:]
        return [self.postprocess(batch, i, scores_all[i], boxes_all[i], "per_class")
                for i in range(len(batch))]

    def decode(self, outputs: DenseOutputs, image_size: Sequence[int],
               candidates: bool = False) -> tuple[Tensor, Tensor]:
        """Boxes [B, P, 4] and softmax scores without the background [B, P, C] of every prior; with
        `candidates`, only each class's `topk_candidates` best priors keep their score (as `predict`).
        See `DenseHead` for what exporting needs."""
        priors = self.priors(outputs, image_size)
        boxes = self.coder.decode(priors, outputs.box_regression.float())
        scores = F.softmax(outputs.cls_logits.float(), dim=-1)[..., 1:]
        return boxes, keep_topk(scores, self.topk_candidates, dim=1) if candidates else scores


@HEADS.register()
class SSDLiteHead(SSDHead):
    """SSDLite: each predictor is a depthwise 3x3 conv (BN, ReLU6) followed by a 1x1 conv (Sandler et al.
    2018, sec. 6.3), initialised as torchvision does (normal, std 0.03)."""

    def _predictor(self, channels: int, out: int, norm: Callable) -> nn.Module:
        return nn.Sequential(
            Conv2dNormActivation(
                channels, channels, 3, groups=channels, norm_layer=norm, activation_layer=nn.ReLU6
            ),
            nn.Conv2d(channels, out, 1),
        )

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, mean=0.0, std=0.03)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
