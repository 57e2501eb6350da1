"""A task-aligned dense head, as YOLOv8's and RTMDet's: anchor-free points, decoupled class and box
branches per level, positives and soft class targets from TOOD's task-aligned assigner, box sides
predicted as distributions (GFL's integral regression, Li et al. 2020) trained by distribution focal
loss and CIoU, classes by quality focal loss (or varifocal, or BCE) against the soft targets."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from ...dist import reduce_mean
from ...errors import ConfigError
from ...registry import HEADS
from ...rules import IoUThreshold, NonNegativeInt, PositiveFloat, PositiveInt, Probability, StrictProbability
from ...structures import Batch, Detections, Instances
from ..assigners import IGNORED
from ..layers.csp import Activation, conv_bn_act
from .base import DenseHead, DenseOutputs, flatten_levels

# Box-branch bias at the start: with bins, equal logits (the expectation is reg_max / 2 strides per side,
# large boxes that overlap every object, so the assigner's IoUs start non-zero, as YOLOv8's bias of 1);
# without bins, softplus(b) = 2 strides per side.
DISTRIBUTION_BIAS, PLAIN_BIAS = 1.0, math.log(math.expm1(2.0))


def pad_targets(targets: list[Instances], device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image objects as [B, M] tensors, M the most objects in an image (0 when there are none).

    Returns: boxes [B, M, 4] xyxy (zeros on padding), labels int64 [B, M] (-1 on padding), valid bool
    [B, M], ignore bool [B, M].
    """
    boxes = pad_sequence([t.boxes.float().reshape(-1, 4) for t in targets], batch_first=True)
    labels = pad_sequence([t.labels for t in targets], batch_first=True, padding_value=-1)
    ignore = pad_sequence([t.ignore for t in targets], batch_first=True, padding_value=False)
    return boxes.to(device), labels.to(device), (labels >= 0).to(device), ignore.to(device)


def target_score_sum(scores: Tensor) -> Tensor:
    """The loss normaliser: the sum of the soft class targets, averaged over ranks (as
    `heads.base.num_positives` does for counts, so that DDP's gradient is one big batch's), >= 1."""
    return reduce_mean(scores.sum().float()).clamp(min=1)


def _branch(in_channels: int, feat_channels: int, num_convs: int, act: str, depthwise: bool,
            **norm) -> nn.Sequential:
    """`num_convs` 3x3 ConvBNAct (BatchNorm with `norm`'s eps and momentum, then `act`), each
    depthwise-separable when `depthwise`."""
    return nn.Sequential(*(conv_bn_act(in_channels if i == 0 else feat_channels, feat_channels, 3,
                                       depthwise=depthwise, act=act, **norm)
                           for i in range(num_convs)))


@HEADS.register()
class TALHead(DenseHead):
    """Per level a class branch and a box branch (`stacked_convs` 3x3 ConvBNAct each), ending in 1x1
    convs: C class logits, and 4 x (reg_max + 1) logits, a distribution per side over 0..reg_max
    strides whose expectation is the side's distance (GFL). `reg_max: 0` predicts plain distances
    (softplus, in strides) and drops the DFL term: the ablation of the distributions.

    Loss over a batch: `assigner` (TaskAlignedAssigner) gives each point its class, box and soft score
    from the detached predictions. `loss_cls` (QFL, VFL or BCE) over all non-ignored points against the
    soft scores; `loss_box` (CIoU on decoded boxes) and `loss_dfl` (on the sides in strides, the mean of
    the four) over the positives, weighted by their soft score. All three divided by the sum of the soft
    scores (TOOD, YOLOv8), averaged over ranks.

    Inference: sigmoid scores, per level the `topk_candidates` best (point, class) pairs above
    `score_threshold`, class-aware NMS at `nms_iou`, the `max_detections` best (YOLOv8: 0.001
    for mAP, 0.7; RTMDet: 0.001, 0.65, 300; 0.05 here keeps evaluation quick).

    Args:
        num_classes: object classes (a sigmoid per class).
        in_channels: channels of each level (the builder passes the neck's).
        prior_generator, assigner, coder, loss_cls, loss_box, loss_dfl: built components (PointGenerator,
            TaskAlignedAssigner, DistancePointCoder with normalize_by_stride, QualityFocalLoss, CIoULoss,
            DistributionFocalLoss); `loss_dfl` may be None when `reg_max` is 0.
        feat_channels: channels of the branches' convs.
        stacked_convs: 3x3 convs per branch (2 in YOLOv8 and RTMDet).
        reg_max: the largest distance a side's distribution covers, in strides (16 in GFL and YOLOv8).
        share_convs: one pair of branches for all levels (RTMDet shares its convs, not its norms; here
            both are shared) instead of one pair per level (YOLOv8); needs equal channels.
        depthwise: each branch conv depthwise-separable (3x3 per channel, then 1x1), as YOLOX-nano's head:
            at 64 channels a seventh of the multiply-adds of a full 3x3 conv.
        act: activation after each branch conv's BatchNorm (silu, mish or leaky_relu).
        norm_eps, norm_momentum: the branches' BatchNorm settings (YOLOX's by default, as the CSP
            backbone and PAFPN; a small set with few steps per epoch wants PyTorch's momentum 0.1).
        prior_prob: the class biases start at -log((1 - pi) / pi) (RetinaNet's prior).
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
        loss_dfl: Callable | None = None,
        feat_channels: PositiveInt = 64,
        stacked_convs: NonNegativeInt = 2,
        reg_max: NonNegativeInt = 16,
        share_convs: bool = False,
        depthwise: bool = False,
        act: Activation = "silu",
        norm_eps: PositiveFloat = 1e-3,
        norm_momentum: Probability = 0.03,
        prior_prob: StrictProbability = 0.01,
        score_threshold: Probability = 0.05,
        nms_iou: IoUThreshold = 0.65,
        topk_candidates: PositiveInt = 1000,
        max_detections: PositiveInt = 100,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in in_channels]
        levels = len(getattr(prior_generator, "strides", ()))
        if len(channels) != levels or (share_convs and len(set(channels)) != 1):
            raise ConfigError(f"TALHead: expects one level per prior_generator stride (and equal channels "
                              f"with share_convs); got channels {channels} and {levels} strides")
        if reg_max > 0 and loss_dfl is None:
            raise ConfigError(f"TALHead: reg_max={reg_max} predicts distributions, which need a loss_dfl "
                              "(DistributionFocalLoss); set reg_max: 0 for plain distances")
        self.num_classes, self.reg_max = num_classes, reg_max
        self.prior_generator, self.assigner, self.coder = prior_generator, assigner, coder
        self.loss_cls, self.loss_box, self.loss_dfl = loss_cls, loss_box, loss_dfl
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.topk_candidates, self.max_detections = topk_candidates, max_detections
        self.box_channels = 4 * (reg_max + 1)
        count = 1 if share_convs else levels
        branch = partial(_branch, feat_channels=feat_channels, num_convs=stacked_convs, act=act,
                         depthwise=depthwise, norm_eps=norm_eps, norm_momentum=norm_momentum)
        self.cls_branches = nn.ModuleList(branch(channels[i]) for i in range(count))
        self.reg_branches = nn.ModuleList(branch(channels[i]) for i in range(count))
        last = [feat_channels if stacked_convs else channels[i] for i in range(count)]
        self.cls_preds = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in last)
        self.reg_preds = nn.ModuleList(nn.Conv2d(c, self.box_channels, 1) for c in last)
        self.register_buffer("bins", torch.arange(reg_max + 1, dtype=torch.float32), persistent=False)
        self._init_weights(prior_prob)

    def _init_weights(self, prior_prob: float) -> None:
        for conv in [*self.cls_preds, *self.reg_preds]:
            nn.init.normal_(conv.weight, std=0.01)
        for conv in self.cls_preds:
            nn.init.constant_(conv.bias, -math.log((1 - prior_prob) / prior_prob))
        for conv in self.reg_preds:
            nn.init.constant_(conv.bias, DISTRIBUTION_BIAS if self.reg_max else PLAIN_BIAS)

    def forward(self, features: list[Tensor]) -> DenseOutputs:
        cls, reg = [], []
        for level, f in enumerate(features):
            i = level if len(self.cls_branches) > 1 else 0
            cls.append(self.cls_preds[i](self.cls_branches[i](f)))
            reg.append(self.reg_preds[i](self.reg_branches[i](f)))
        return DenseOutputs(flatten_levels(cls, self.num_classes), flatten_levels(reg, self.box_channels),
                            [tuple(f.shape[-2:]) for f in features])

    def distances(self, box_regression: Tensor) -> Tensor:
        """[..., 4 (reg_max + 1)] box outputs -> [..., 4] (l, t, r, b) distances in strides: each side's
        expectation over 0..reg_max, or softplus of the plain outputs when reg_max is 0."""
        if self.reg_max == 0:
            return F.softplus(box_regression.float())
        probs = box_regression.float().unflatten(-1, (4, self.reg_max + 1)).softmax(dim=-1)
        return probs @ self.bins

    def loss(self, outputs: DenseOutputs, targets: list[Instances],
             image_size: Sequence[int]) -> dict[str, Tensor]:
        """Args:
            outputs: this head's forward output for a batch of B images.
            targets: per image, boxes (xyxy in the padded input's pixels), labels 0..C-1, ignore flags.
            image_size: (h, w) of the padded input tensor.

        Returns:
            {"loss_cls", "loss_box"} and "loss_dfl" when reg_max > 0, each divided by the sum of the
            soft class targets (`target_score_sum`).
        """
        points, strides = self.points(outputs, image_size)
        pred_boxes = self.coder.decode(points, strides, self.distances(outputs.box_regression))
        assigned = self.assigner(outputs.cls_logits.detach().sigmoid(), pred_boxes.detach(), points, strides,
                                 *pad_targets(targets, points.device))
        positive, valid = assigned.labels >= 0, assigned.labels != IGNORED
        target_scores = torch.zeros_like(outputs.cls_logits, dtype=torch.float32)
        target_scores[positive] = (F.one_hot(assigned.labels[positive], self.num_classes).float()
                                   * assigned.scores[positive, None])
        norm = target_score_sum(assigned.scores)
        losses = {"loss_cls": self.loss_cls(outputs.cls_logits[valid], target_scores[valid]) / norm}
        weight = assigned.scores[positive]
        gt_boxes = assigned.boxes[positive]
        losses["loss_box"] = self.loss_box(pred_boxes[positive], gt_boxes, weight) / norm
        if self.reg_max:
            pos_points = points.expand(positive.shape[0], -1, -1)[positive]
            pos_strides = strides.expand_as(positive)[positive]
            sides = self.coder.encode(pos_points, pos_strides, gt_boxes).clamp(0, self.reg_max - 0.01)
            logits = outputs.box_regression[positive].unflatten(-1, (4, self.reg_max + 1))
            losses["loss_dfl"] = self.loss_dfl(logits, sides, weight[:, None].expand(-1, 4)) / (4 * norm)
        return losses

    @torch.no_grad()
    def predict(self, outputs: DenseOutputs, batch: Batch) -> list[Detections]:
        """Sigmoid scores, per level the top-k (point, class) pairs above the threshold, then the shared
        post-processing (`postprocess_dense`): decode, class-aware NMS, original pixels."""
        points, strides = self.points(outputs, batch.images.shape[-2:])
        sizes = [h * w for h, w in outputs.feature_shapes]
        results = []
        for i in range(len(batch)):
            scores = list(outputs.cls_logits[i].float().sigmoid().split(sizes))
            decode = partial(self._decode, points, strides, outputs.box_regression[i])
            results.append(self.postprocess(batch, i, scores, decode, "pairs"))
        return results

    def decode(self, outputs: DenseOutputs, image_size: Sequence[int],
               candidates: bool = False) -> tuple[Tensor, Tensor]:
        """Boxes [B, P, 4] and sigmoid scores [B, P, C] of every point; with `candidates`, only the
        `topk_candidates` best (point, class) pairs of each level keep their score (as `predict`). See
        `DenseHead` for what exporting needs."""
        points, strides = self.points(outputs, image_size)
        boxes = self.coder.decode(points, strides, self.distances(outputs.box_regression))
        scores = outputs.cls_logits.float().sigmoid()
        if not candidates:
            return boxes, scores
        return boxes, self.keep_topk_per_level(scores, outputs.feature_shapes)

    def _decode(self, points: Tensor, strides: Tensor, box_regression: Tensor, index: Tensor) -> Tensor:
        """Boxes [n, 4] of the points `index` [n] (only the candidates are decoded)."""
        return self.coder.decode(points[index], strides[index], self.distances(box_regression[index]))
