"""RetinaNet's head (Lin et al. 2017, sec. 4): class and box subnets shared across the FPN levels."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated

import torch
from torch import Tensor, nn
from torchvision.ops.misc import Conv2dNormActivation

from ...errors import ConfigError
from ...registry import HEADS
from ...rules import IoUThreshold, NonNegativeInt, OneOf, PositiveInt, Probability, StrictProbability
from ...structures import Batch, Detections, Instances
from ..assigners import IGNORED
from .base import DenseHead, DenseOutputs, flatten_levels, match_batch, num_positives


def _subnet(in_channels: int, channels: int, num_convs: int, norm: str | None) -> nn.Sequential:
    norm_layer = (lambda c: nn.GroupNorm(32, c)) if norm == "GN" else None
    layers, prev = [], in_channels
    for _ in range(num_convs):
        layers.append(Conv2dNormActivation(prev, channels, 3, norm_layer=norm_layer, bias=norm_layer is None))
        prev = channels
    return nn.Sequential(*layers)


@HEADS.register()
class RetinaHead(DenseHead):
    """Per level, a class subnet (`stacked_convs` 3x3 convs + ReLU, then a 3x3 conv to A x C sigmoid
    logits) and a box subnet of the same shape ending in A x 4 deltas; weights shared across levels.

    Loss: anchors matched by `assigner` (IoU >= 0.5 positive, < 0.4 negative, in between ignored),
    `loss_cls` (sigmoid focal loss) over all non-ignored anchors, `loss_box` over the positives (on
    deltas from `coder`, or on decoded boxes when the loss says `decoded`), both divided by the number
    of positive anchors in the batch. Inference: per level the `topk_candidates` best (anchor, class)
    scores above `score_threshold`, decoded, then class-aware NMS at `nms_iou` and the
    `max_detections` best (paper: 1000 per level, 0.05, 0.5, 100).

    Args:
        num_classes: object classes (no background: a sigmoid per class).
        in_channels: channels of each level (all equal: the FPN's).
        prior_generator, assigner, coder, loss_cls, loss_box: built components (see models/build.py).
        feat_channels: channels of the subnets' hidden convs.
        stacked_convs: hidden convs per subnet (4 in the paper).
        prior_prob: the class biases start at -log((1 - pi) / pi), so every anchor starts with
            foreground probability pi (0.01), which keeps the focal loss of the many easy negatives
            from swamping the first iterations.
        norm: None (the paper) or "GN" (GroupNorm(32) after each hidden conv, torchvision's v2 head).
    """

    def __init__(
        self,
        num_classes: PositiveInt,
        in_channels: Sequence[int],
        prior_generator: Callable,
        assigner: Callable,
        coder: object,
        loss_cls: Callable,
        loss_box: Callable,
        feat_channels: PositiveInt = 256,
        stacked_convs: NonNegativeInt = 4,
        prior_prob: StrictProbability = 0.01,
        norm: Annotated[str, OneOf("GN")] | None = None,
        score_threshold: Probability = 0.05,
        nms_iou: IoUThreshold = 0.5,
        topk_candidates: PositiveInt = 1000,
        max_detections: PositiveInt = 100,
    ) -> None:
        super().__init__()
        anchors = prior_generator.num_anchors
        if len(anchors) != len(in_channels) or len(set(in_channels)) != 1 or len(set(anchors)) != 1:
            raise ConfigError(
                f"RetinaHead: expects one channel count and one anchor count over all levels; got channels "
                f"{list(in_channels)} and anchors {anchors} per location"
            )
        if norm not in (None, "GN"):
            raise ConfigError(f"RetinaHead.norm: expected null or GN, got '{norm}'")
        self.num_classes, self.num_anchors = num_classes, anchors[0]
        self.prior_generator, self.assigner, self.coder = prior_generator, assigner, coder
        self.loss_cls, self.loss_box = loss_cls, loss_box
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.topk_candidates, self.max_detections = topk_candidates, max_detections
        channels = in_channels[0]
        self.cls_convs = _subnet(channels, feat_channels, stacked_convs, norm)
        self.reg_convs = _subnet(channels, feat_channels, stacked_convs, norm)
        last = feat_channels if stacked_convs else channels
        self.cls_logits = nn.Conv2d(last, self.num_anchors * num_classes, 3, padding=1)
        self.bbox_reg = nn.Conv2d(last, self.num_anchors * 4, 3, padding=1)
        self._init_weights(prior_prob)

    def _init_weights(self, prior_prob: float) -> None:
        if not 0.0 < prior_prob < 1.0:
            raise ConfigError(f"RetinaHead.prior_prob: expected a probability in (0, 1), got {prior_prob}")
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: list[Tensor]) -> DenseOutputs:
        cls = flatten_levels([self.cls_logits(self.cls_convs(f)) for f in features], self.num_classes)
        reg = flatten_levels([self.bbox_reg(self.reg_convs(f)) for f in features], 4)
        return DenseOutputs(cls, reg, [tuple(f.shape[-2:]) for f in features])

    def loss(
        self, outputs: DenseOutputs, targets: list[Instances], image_size: Sequence[int]
    ) -> dict[str, Tensor]:
        """Args:
            outputs: this head's forward output for a batch of B images.
            targets: per image, boxes (xyxy in the padded input's pixels), labels 0..C-1, ignore flags.
            image_size: (h, w) of the padded input tensor.

        Returns:
            {"loss_cls", "loss_box"}, each divided by the number of positive anchors in the batch (its
            mean over ranks in a distributed run, see `num_positives`).
        """
        priors = self.priors(outputs, image_size)
        gt_labels, gt_boxes = match_batch(self.assigner, priors, targets)
        positive = gt_labels >= 0
        valid = gt_labels != IGNORED
        num_pos = num_positives(positive)
        onehot = torch.zeros_like(outputs.cls_logits)
        onehot[positive] = nn.functional.one_hot(gt_labels[positive], self.num_classes).to(onehot.dtype)
        loss_cls = self.loss_cls(outputs.cls_logits[valid], onehot[valid])
        pos_priors = priors.expand(len(targets), -1, -1)[positive]
        pred = outputs.box_regression[positive]
        if getattr(self.loss_box, "decoded", False):
            loss_box = self.loss_box(self.coder.decode(pos_priors, pred), gt_boxes[positive])
        else:
            loss_box = self.loss_box(pred, self.coder.encode(pos_priors, gt_boxes[positive]))
        return {"loss_cls": loss_cls / num_pos, "loss_box": loss_box / num_pos}

    @torch.no_grad()
    def predict(self, outputs: DenseOutputs, batch: Batch) -> list[Detections]:
        """Sigmoid scores, per level the top-k (anchor, class) pairs above the threshold, then the shared
        post-processing (`postprocess_dense`): decode, class-aware NMS, boxes in original pixels."""
        priors = self.priors(outputs, batch.images.shape[-2:])
        sizes = [h * w * self.num_anchors for h, w in outputs.feature_shapes]
        results = []
        for i in range(len(batch)):
            scores = [torch.sigmoid(logits) for logits in outputs.cls_logits[i].float().split(sizes)]
            decode = partial(self._decode, priors, outputs.box_regression[i].float())
            results.append(self.postprocess(batch, i, scores, decode, "pairs"))
        return results

    def decode(self, outputs: DenseOutputs, image_size: Sequence[int],
               candidates: bool = False) -> tuple[Tensor, Tensor]:
        """Boxes [B, P, 4] and sigmoid scores [B, P, C] of every anchor; with `candidates`, only the
        `topk_candidates` best (anchor, class) pairs of each level keep their score (as `predict`).
        See `DenseHead` for what exporting needs."""
        priors = self.priors(outputs, image_size)
        boxes = self.coder.decode(priors, outputs.box_regression.float())
        scores = torch.sigmoid(outputs.cls_logits.float())
        if not candidates:
            return boxes, scores
        return boxes, self.keep_topk_per_level(scores, outputs.feature_shapes, self.num_anchors)

    def _decode(self, priors: Tensor, deltas: Tensor, index: Tensor) -> Tensor:
        """Boxes [n, 4] of the anchors `index` [n] from their deltas (only the candidates are decoded)."""
        return self.coder.decode(priors[index], deltas[index])
