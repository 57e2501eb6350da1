"""YOLOX's decoupled head (Ge et al. 2021, "YOLOX: Exceeding YOLO series in 2021"): per level, a class
branch and a box branch, objectness on the box branch, anchor-free points, SimOTA assignment."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import HEADS
from ...rules import IoUThreshold, PositiveFloat, PositiveInt, Probability, StrictProbability
from ...structures import Batch, Detections, Instances
from ..assigners import IGNORED
from ..layers.csp import Activation, ConvBNAct, conv_bn_act
from ..postprocess import keep_topk
from .base import DenseHead, DenseOutputs, flatten_levels, num_positives


@dataclass
class YOLOXOutputs(DenseOutputs):
    """`DenseOutputs` whose `box_regression` holds YOLOX's raw (tx, ty, tw, th), plus the objectness."""

    objectness: Tensor  # [B, P] logits


def pad_targets(targets: list[Instances], device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image objects as batch tensors for a batched assigner: boxes [B, M, 4], labels int64 [B, M],
    valid bool [B, M] and ignore bool [B, M], M the most objects in an image and at least 1, so that a
    batch without objects still has a row to gather from (padding rows: zero box, label 0, not valid,
    not ignored)."""
    batch, most = len(targets), max(1, *(len(t) for t in targets))
    boxes = torch.zeros((batch, most, 4), device=device)
    labels = torch.zeros((batch, most), dtype=torch.long, device=device)
    valid = torch.zeros((batch, most), dtype=torch.bool, device=device)
    ignore = torch.zeros((batch, most), dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        n = len(t)
        boxes[i, :n], labels[i, :n], valid[i, :n], ignore[i, :n] = t.boxes, t.labels, True, t.ignore
    return boxes, labels, valid, ignore


def _branch(channels: int, num_convs: int, depthwise: bool, conv: dict) -> nn.Sequential:
    """`num_convs` 3x3 ConvBNAct (depthwise-separable for nano) at `channels`."""
    convs = [conv_bn_act(channels, channels, 3, 1, depthwise, **conv) for _ in range(num_convs)]
    return nn.Sequential(*convs)


@HEADS.register()
class YOLOXHead(DenseHead):
    """Per level (not shared, as YOLOX): a 1x1 stem to `feat_channels`, then a class branch and a box
    branch of `stacked_convs` 3x3 convs each; 1x1 predictors for C class logits (class branch), the
    four box numbers and one objectness logit (box branch). Boxes are YOLOX's (tx, ty, tw, th) in
    strides (`coder`, YOLOXCoder) around points on the cells' corners (PointGenerator offset 0).

    Loss: SimOTA (`assigner`) over the batch in one call, on the cell centres, the predicted boxes and
    sqrt(class x objectness); then, divided by the positive count (`num_positives`),
    `loss_box` (IoULoss: 1 - IoU^2, weight 5 in YOLOX) on the positives' decoded boxes, `loss_obj`
    (BCE) over every non-ignored point (target 1 on positives), `loss_cls` (BCE) on the positives
    against one-hot x the IoU of their prediction with their object (YOLOX's soft class target), and,
    when `use_l1` is True, `loss_l1` on the raw outputs against the encoded object (YOLOX switches it
    on with the no-augmentation epochs; `PipelineSwitchHook(enable=[use_l1])` does that here). The
    `loss_l1` term is always returned, 0 while off, so that a run logs the same keys throughout.

    Inference: score = objectness x class probability per (point, class) pair, the
    `topk_candidates` best pairs of the image above `score_threshold`, class-aware NMS at `nms_iou`,
    the `max_detections` best (YOLOX: 0.01 for its demo and COCO eval scripts, 0.001 for the best
    COCO AP; 0.65; 100 per image in COCO's metric).

    Args:
        num_classes: object classes (a sigmoid each).
        in_channels: channels of the neck's maps, finest first.
        prior_generator, assigner, coder: PointGenerator, SimOTAAssigner, YOLOXCoder.
        loss_cls, loss_obj, loss_box, loss_l1: built losses (BCE, BCE, IoU, L1 in YOLOX).
        feat_channels: channels of the stems and branches (YOLOX: 256 x widen factor).
        stacked_convs: 3x3 convs per branch (YOLOX: 2).
        depthwise: depthwise-separable 3x3 convs (YOLOX-nano).
        act: activation of every conv.
        prior_prob: class and objectness biases start at probability `prior_prob` (YOLOX: 0.01).
        use_l1: start with the L1 term on (normally left off and switched on by the hook).
        score_threshold, nms_iou, topk_candidates, max_detections: inference, see above.
        norm_eps, norm_momentum: BatchNorm settings (YOLOX's by default).
    """

    def __init__(
        self,
        num_classes: PositiveInt,
        in_channels: Sequence[int],
        prior_generator: Callable,
        assigner: Callable,
        coder: object,
        loss_cls: Callable,
        loss_obj: Callable,
        loss_box: Callable,
        loss_l1: Callable,
        feat_channels: PositiveInt = 256,
        stacked_convs: PositiveInt = 2,
        depthwise: bool = False,
        act: Activation = "silu",
        prior_prob: StrictProbability = 0.01,
        use_l1: bool = False,
        score_threshold: Probability = 0.01,
        nms_iou: IoUThreshold = 0.65,
        topk_candidates: PositiveInt = 1000,
        max_detections: PositiveInt = 100,
        norm_eps: PositiveFloat = 1e-3,
        norm_momentum: Probability = 0.03,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(getattr(prior_generator, "strides", ())):
            raise ConfigError(f"YOLOXHead: {len(in_channels)} input maps but prior_generator has strides "
                              f"{list(getattr(prior_generator, 'strides', []))}; expected one map per stride")
        self.num_classes = num_classes
        self.prior_generator, self.assigner, self.coder = prior_generator, assigner, coder
        self.loss_cls, self.loss_obj, self.loss_box, self.loss_l1 = loss_cls, loss_obj, loss_box, loss_l1
        self.use_l1 = use_l1
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.topk_candidates, self.max_detections = topk_candidates, max_detections
        conv = {"act": act, "norm_eps": norm_eps, "norm_momentum": norm_momentum}
        self.stems = nn.ModuleList(ConvBNAct(c, feat_channels, 1, **conv) for c in in_channels)
        self.cls_branches = nn.ModuleList(
            _branch(feat_channels, stacked_convs, depthwise, conv) for _ in in_channels)
        self.reg_branches = nn.ModuleList(
            _branch(feat_channels, stacked_convs, depthwise, conv) for _ in in_channels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(feat_channels, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(feat_channels, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(feat_channels, 1, 1) for _ in in_channels)
        bias = -math.log((1 - prior_prob) / prior_prob)
        for conv_layer in (*self.cls_preds, *self.obj_preds):
            nn.init.constant_(conv_layer.bias, bias)

    def forward(self, features: list[Tensor]) -> YOLOXOutputs:
        cls, reg, obj = [], [], []
        for level, f in enumerate(features):
            x = self.stems[level](f)
            cls.append(self.cls_preds[level](self.cls_branches[level](x)))
            box_features = self.reg_branches[level](x)
            reg.append(self.reg_preds[level](box_features))
            obj.append(self.obj_preds[level](box_features))
        return YOLOXOutputs(flatten_levels(cls, self.num_classes), flatten_levels(reg, 4),
                            [tuple(f.shape[-2:]) for f in features], flatten_levels(obj, 1).squeeze(-1))

    def loss(
        self, outputs: YOLOXOutputs, targets: list[Instances], image_size: Sequence[int]
    ) -> dict[str, Tensor]:
        """Args:
            outputs: this head's forward output for a batch of B images.
            targets: per image, boxes (xyxy in the padded input's pixels), labels 0..C-1, ignore flags.
            image_size: (h, w) of the padded input tensor.

        Returns:
            {"loss_cls", "loss_box", "loss_obj", "loss_l1"}, each divided by the number of positive
            points in the batch (its mean over ranks in a distributed run, see `num_positives`).
        """
        points, strides = self.points(outputs, image_size)
        raw = outputs.box_regression
        pred_boxes = self.coder.decode(points, strides, raw.float())
        gt_boxes, gt_labels, gt_valid, gt_ignore = pad_targets(targets, raw.device)
        scores = torch.sqrt(torch.sigmoid(outputs.cls_logits.detach().float())
                            * torch.sigmoid(outputs.objectness.detach().float())[..., None])
        centres = points + strides[:, None] / 2  # YOLOX's centre prior is measured from the cell centres
        assignment = self.assigner(centres, strides, scores, pred_boxes.detach(), gt_boxes, gt_labels,
                                   gt_valid, gt_ignore)
        positive, index = assignment.positive, assignment.gt_index.clamp(min=0)
        num_pos = num_positives(positive)
        matched = gt_boxes.gather(1, index[..., None].expand(-1, -1, 4))[positive]  # [N, 4]
        cls_target = nn.functional.one_hot(gt_labels.gather(1, index)[positive], self.num_classes)
        cls_target = cls_target.to(raw.dtype) * assignment.iou[positive, None].to(raw.dtype)
        valid = assignment.gt_index != IGNORED
        losses = {
            "loss_cls": self.loss_cls(outputs.cls_logits[positive], cls_target),
            "loss_box": self.loss_box(pred_boxes[positive], matched),
            "loss_obj": self.loss_obj(outputs.objectness[valid], positive[valid].to(raw.dtype)),
            "loss_l1": raw.new_zeros(()),
        }
        if self.use_l1:
            batch = len(targets)
            target = self.coder.encode(points.expand(batch, -1, -1)[positive],
                                       strides.expand(batch, -1)[positive], matched)
            losses["loss_l1"] = self.loss_l1(raw[positive], target)
        return {name: value / num_pos for name, value in losses.items()}

    def _scores(self, cls_logits: Tensor, objectness: Tensor) -> Tensor:
        """objectness x class probability, [..., C] from [..., C] and [...] logits."""
        return torch.sigmoid(cls_logits.float()) * torch.sigmoid(objectness.float())[..., None]

    @torch.no_grad()
    def predict(self, outputs: YOLOXOutputs, batch: Batch) -> list[Detections]:
        """Scores objectness x class, the image's top-k (point, class) pairs above the threshold, then the
        shared post-processing (`postprocess_dense`): decode, class-aware NMS, original pixels."""
        points, strides = self.points(outputs, batch.images.shape[-2:])
        results = []
        for i in range(len(batch)):
            scores = self._scores(outputs.cls_logits[i], outputs.objectness[i])
            decode = partial(self._decode, points, strides, outputs.box_regression[i].float())
            results.append(self.postprocess(batch, i, scores, decode, "pairs"))
        return results

    def decode(self, outputs: YOLOXOutputs, image_size: Sequence[int],
               candidates: bool = False) -> tuple[Tensor, Tensor]:
        """Boxes [B, P, 4] and scores objectness x class [B, P, C] of every point; with `candidates`, only
        the image's `topk_candidates` best (point, class) pairs keep their score (as `predict`). See
        `DenseHead` for what exporting needs."""
        points, strides = self.points(outputs, image_size)
        boxes = self.coder.decode(points, strides, outputs.box_regression.float())
        scores = self._scores(outputs.cls_logits, outputs.objectness)
        if not candidates:
            return boxes, scores
        return boxes, keep_topk(scores.flatten(1), self.topk_candidates, dim=1).view_as(scores)

    def _decode(self, points: Tensor, strides: Tensor, deltas: Tensor, index: Tensor) -> Tensor:
        """Boxes [n, 4] of the points `index` [n] (only the candidates are decoded)."""
        return self.coder.decode(points[index], strides[index], deltas[index])
