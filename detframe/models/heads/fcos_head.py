"""FCOS's head (Tian et al. 2019; "FCOS: a simple and strong anchor-free object detector", 2020): per
FPN location, class logits, the distances to the four sides of the box and a centre-ness logit."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import HEADS
from ...rules import IoUThreshold, NonNegativeInt, OneOf, PositiveInt, Probability, StrictProbability
from ...structures import Batch, Detections, Instances
from ..assigners import IGNORED
from .base import DenseHead, DenseOutputs, flatten_levels, match_batch, num_positives


@dataclass
class FCOSOutputs(DenseOutputs):
    """`DenseOutputs` whose `box_regression` holds (l, t, r, b) distances (>= 0, in strides), plus the
    centre-ness logits."""

    centerness: Tensor  # [B, P]


def _tower(channels: int, feat_channels: int, num_convs: int, norm: str | None) -> nn.Sequential:
    """`num_convs` x (3x3 conv, GroupNorm(32) when `norm` is "GN", ReLU), flat: the layout (and so the
    tensor names) of torchvision's FCOS towers."""
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers.append(nn.Conv2d(channels if i == 0 else feat_channels, feat_channels, 3, padding=1))
        if norm == "GN":
            layers.append(nn.GroupNorm(32, feat_channels))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def centerness_target(distances: Tensor) -> Tensor:
    """sqrt(min(l, r) / max(l, r) x min(t, b) / max(t, b)) of [N, 4] (l, t, r, b) distances, all > 0:
    1 at the box centre, falling to 0 at its sides (FCOS, eq. 3)."""
    left_right, top_bottom = distances[:, 0::2], distances[:, 1::2]
    return torch.sqrt(left_right.amin(dim=1) / left_right.amax(dim=1)
                      * (top_bottom.amin(dim=1) / top_bottom.amax(dim=1)))


@HEADS.register()
class FCOSHead(DenseHead):
    """A class tower and a box tower (`stacked_convs` 3x3 convs, GroupNorm, ReLU each) shared across
    the levels. The class tower ends in C sigmoid logits; the box tower in the four distances, as
    ReLU(s_k x conv) with a learnt scale s_k per level (the paper's "exp(s_k x)" in its later ReLU
    form), in units of the level's stride ("norm-on-bbox"), and in the centre-ness logit
    ("centre-ness on the regression branch"). Both improvements, with centre sampling and GIoU,
    are those of mmdetection's FCOS "tricks" recipe and of torchvision's fcos_resnet50_fpn.

    Loss: points assigned by `assigner` (FCOSAssigner), `loss_cls` (sigmoid focal loss) over all
    non-ignored points, `loss_box` (GIoU on decoded boxes, or a loss on the stride-normalised
    distances) and `loss_centerness` (BCE against the centre-ness of the target distances) over the
    positives; all three divided by the number of positive points in the batch (`num_positives`).
    Inference: score = sqrt(sigmoid(class) x sigmoid(centre-ness)) (torchvision's FCOS; the
    centre-ness down-weights boxes predicted far from an object's centre), per level the
    `topk_candidates` best (point, class) pairs above `score_threshold`, class-aware NMS at `nms_iou`,
    the `max_detections` best. torchvision: 1000, 0.2, 0.6, 100; mmdetection 1000, 0.05 (on the
    class score), 0.5 (0.6 in the FCOS repository), 100. 0.05 is kept here since COCO AP rewards
    low-scoring detections and 0.2 on a square root is cls x ctr > 0.04.

    Args:
        num_classes: object classes (a sigmoid per class, no background).
        in_channels: channels of each level (all equal: the FPN's).
        prior_generator, assigner, coder, loss_cls, loss_box, loss_centerness: built components
            (PointGenerator, FCOSAssigner, DistancePointCoder, ...; see models/build.py).
        feat_channels: channels of the towers' convs (256 in the paper).
        stacked_convs: convs per tower (4 in the paper).
        norm: "GN" (GroupNorm(32) after each tower conv, the paper's improved head) or None.
        prior_prob: the class biases start at -log((1 - pi) / pi), every point at probability pi.
        score_threshold, nms_iou, topk_candidates, max_detections: inference, see above.
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
        loss_centerness: Callable,
        feat_channels: PositiveInt = 256,
        stacked_convs: NonNegativeInt = 4,
        norm: Annotated[str, OneOf("GN")] | None = "GN",
        prior_prob: StrictProbability = 0.01,
        score_threshold: Probability = 0.05,
        nms_iou: IoUThreshold = 0.6,
        topk_candidates: PositiveInt = 1000,
        max_detections: PositiveInt = 100,
    ) -> None:
        super().__init__()
        levels = len(getattr(prior_generator, "strides", ()))
        if len(set(in_channels)) != 1 or len(in_channels) != levels:
            raise ConfigError(
                f"FCOSHead: expects one channel count over all levels and one level per prior_generator "
                f"stride; got channels {list(in_channels)} and {levels} strides"
            )
        self.num_classes = num_classes
        self.prior_generator, self.assigner, self.coder = prior_generator, assigner, coder
        self.loss_cls, self.loss_box, self.loss_centerness = loss_cls, loss_box, loss_centerness
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.topk_candidates, self.max_detections = topk_candidates, max_detections
        channels = in_channels[0]
        self.cls_convs = _tower(channels, feat_channels, stacked_convs, norm)
        self.reg_convs = _tower(channels, feat_channels, stacked_convs, norm)
        last = feat_channels if stacked_convs else channels
        self.cls_logits = nn.Conv2d(last, num_classes, 3, padding=1)
        self.bbox_reg = nn.Conv2d(last, 4, 3, padding=1)
        self.centerness = nn.Conv2d(last, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(levels))
        self._init_weights(prior_prob)

    def _init_weights(self, prior_prob: float) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: list[Tensor]) -> FCOSOutputs:
        cls, reg, ctr = [], [], []
        for level, f in enumerate(features):
            box_features = self.reg_convs(f)
            cls.append(self.cls_logits(self.cls_convs(f)))
            reg.append(nn.functional.relu(self.bbox_reg(box_features) * self.scales[level]))
            ctr.append(self.centerness(box_features))
        return FCOSOutputs(flatten_levels(cls, self.num_classes), flatten_levels(reg, 4),
                           [tuple(f.shape[-2:]) for f in features], flatten_levels(ctr, 1).squeeze(-1))

    def loss(
        self, outputs: FCOSOutputs, targets: list[Instances], image_size: Sequence[int]
    ) -> dict[str, Tensor]:
        """Args:
            outputs: this head's forward output for a batch of B images.
            targets: per image, boxes (xyxy in the padded input's pixels), labels 0..C-1, ignore flags.
            image_size: (h, w) of the padded input tensor.

        Returns:
            {"loss_cls", "loss_box", "loss_centerness"}, each divided by the number of positive points
            in the batch (its mean over ranks in a distributed run, see `num_positives`).
        """
        points, strides = self.points(outputs, image_size)
        gt_labels, gt_boxes = match_batch(self.assigner, points, targets, strides=strides)
        positive = gt_labels >= 0
        valid = gt_labels != IGNORED
        num_pos = num_positives(positive)
        onehot = torch.zeros_like(outputs.cls_logits)
        onehot[positive] = nn.functional.one_hot(gt_labels[positive], self.num_classes).to(onehot.dtype)
        loss_cls = self.loss_cls(outputs.cls_logits[valid], onehot[valid])
        batch = len(targets)
        pos_points, pos_strides = points.expand(batch, -1, -1)[positive], strides.expand(batch, -1)[positive]
        target = self.coder.encode(pos_points, pos_strides, gt_boxes[positive])
        pred = outputs.box_regression[positive]
        if getattr(self.loss_box, "decoded", False):
            loss_box = self.loss_box(self.coder.decode(pos_points, pos_strides, pred), gt_boxes[positive])
        else:
            loss_box = self.loss_box(pred, target)
        loss_ctr = self.loss_centerness(outputs.centerness[positive], centerness_target(target))
        return {"loss_cls": loss_cls / num_pos, "loss_box": loss_box / num_pos,
                "loss_centerness": loss_ctr / num_pos}

    @torch.no_grad()
    def predict(self, outputs: FCOSOutputs, batch: Batch) -> list[Detections]:
        """Scores sqrt(class x centre-ness), per level the top-k (point, class) pairs above the threshold,
        then the shared post-processing (`postprocess_dense`): decode, class-aware NMS, original pixels."""
        points, strides = self.points(outputs, batch.images.shape[-2:])
        sizes = [h * w for h, w in outputs.feature_shapes]
        results = []
        for i in range(len(batch)):
            scores = [
                torch.sqrt(torch.sigmoid(cls) * torch.sigmoid(ctr)[:, None])
                for cls, ctr in zip(outputs.cls_logits[i].float().split(sizes),
                                    outputs.centerness[i].float().split(sizes))
            ]
            decode = partial(self._decode, points, strides, outputs.box_regression[i].float())
            results.append(self.postprocess(batch, i, scores, decode, "pairs"))
        return results

    def decode(self, outputs: FCOSOutputs, image_size: Sequence[int],
               candidates: bool = False) -> tuple[Tensor, Tensor]:
        """Boxes [B, P, 4] and scores sqrt(class x centre-ness) [B, P, C] of every point; with
        `candidates`, only the `topk_candidates` best (point, class) pairs of each level keep their
        score (as `predict`). See `DenseHead` for what exporting needs."""
        points, strides = self.points(outputs, image_size)
        boxes = self.coder.decode(points, strides, outputs.box_regression.float())
        scores = torch.sqrt(torch.sigmoid(outputs.cls_logits.float())
                            * torch.sigmoid(outputs.centerness.float())[..., None])
        if not candidates:
            return boxes, scores
        return boxes, self.keep_topk_per_level(scores, outputs.feature_shapes)

    def _decode(self, points: Tensor, strides: Tensor, distances: Tensor, index: Tensor) -> Tensor:
        """Boxes [n, 4] of the points `index` [n] from their distances (only the candidates are decoded)."""
        return self.coder.decode(points[index], strides[index], distances[index])
