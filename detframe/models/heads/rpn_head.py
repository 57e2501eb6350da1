"""Faster R-CNN's Region Proposal Network (Ren et al. 2015, sec. 3.1) over FPN levels (Lin et al. 2017)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ...ops.boxes import batched_nms, clip_boxes
from ...registry import HEADS
from ...rules import IoUThreshold, NonNegativeFloat
from ...structures import Instances
from .base import DenseHead, DenseOutputs, flatten_levels, match_batch

MODES = ("train", "test")


def _per_mode(name: str, value: Mapping[str, int]) -> dict[str, int]:
    """A `{train: n, test: m}` config value checked: both keys, positive integers."""
    ok = (isinstance(value, Mapping) and set(value) == set(MODES)
          and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value.values()))
    if not ok:
        raise ConfigError(f"RPNHead.{name}: expected {{train: int >= 1, test: int >= 1}}, got {value}")
    return {mode: int(value[mode]) for mode in MODES}


@HEADS.register()
class RPNHead(DenseHead):
    """A 3x3 conv shared by the levels, then per anchor one objectness logit (sigmoid) and 4 deltas.

    Loss: anchors matched by `assigner` (IoU >= 0.7 positive, < 0.3 negative, plus each object's best
    anchors), `sampler` draws 256 per image (at most half positive); `loss_rpn_cls` (BCE on the
    objectness) and `loss_rpn_box` (on the positives' deltas) are both divided by the number sampled
    in the batch, as torchvision does.

    Proposals (`proposals`): per image and level the `pre_nms_top_n` anchors of highest objectness,
    decoded and clipped to the image; boxes narrower or lower than `min_size` or with a non-finite
    coordinate or score are dropped (they must never reach RoIAlign); NMS at `nms_iou` within each
    level (torchvision's `batched_nms` with the level as the class); the `post_nms_top_n` best over
    all levels. Both counts are `{train, test}` pairs, picked by the module's `training` flag. This is
    not `postprocess_dense`: proposals stay in input pixels, their NMS is per level, not per class.

    Args:
        in_channels: channels of each level (all equal: the FPN's).
        prior_generator, assigner, sampler, coder, loss_cls, loss_box: built components.
        pre_nms_top_n, post_nms_top_n: {train: n, test: m} (torchvision: 2000/1000 and 2000/1000).
        nms_iou: IoU above which a proposal suppresses another of the same level.
        min_size: smallest proposal side in pixels kept.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        prior_generator: Callable,
        assigner: Callable,
        sampler: Callable,
        coder: object,
        loss_cls: Callable,
        loss_box: Callable,
        pre_nms_top_n: Mapping[str, int] = {"train": 2000, "test": 1000},  # read, never mutated
        post_nms_top_n: Mapping[str, int] = {"train": 2000, "test": 1000},
        nms_iou: IoUThreshold = 0.7,
        min_size: NonNegativeFloat = 1e-3,
    ) -> None:
        super().__init__()
        anchors = prior_generator.num_anchors
        if len(anchors) != len(in_channels) or len(set(in_channels)) != 1 or len(set(anchors)) != 1:
            raise ConfigError(
                f"RPNHead: expects one channel count and one anchor count over all levels; got channels "
                f"{list(in_channels)} and anchors {anchors} per location"
            )
        self.pre_nms_top_n = _per_mode("pre_nms_top_n", pre_nms_top_n)
        self.post_nms_top_n = _per_mode("post_nms_top_n", post_nms_top_n)
        self.num_anchors = anchors[0]
        self.prior_generator, self.assigner, self.sampler = prior_generator, assigner, sampler
        self.coder = coder
        self.loss_cls, self.loss_box = loss_cls, loss_box
        self.nms_iou, self.min_size = nms_iou, min_size
        channels = in_channels[0]
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, self.num_anchors, 1)
        self.deltas = nn.Conv2d(channels, self.num_anchors * 4, 1)
        for layer in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: list[Tensor]) -> DenseOutputs:
        hidden = [torch.relu(self.conv(f)) for f in features]
        return DenseOutputs(flatten_levels([self.objectness(h) for h in hidden], 1),
                            flatten_levels([self.deltas(h) for h in hidden], 4),
                            [tuple(f.shape[-2:]) for f in features])

    def loss(self, outputs: DenseOutputs, targets: list[Instances],
             image_size: Sequence[int]) -> dict[str, Tensor]:
        """{"loss_rpn_cls", "loss_rpn_box"} of a batch, each divided by the anchors sampled in it.

        Args:
            outputs: this head's forward output for B images.
            targets: per image, boxes (xyxy, padded input's pixels), labels, ignore flags.
            image_size: (h, w) of the padded input.
        """
        priors = self.priors(outputs, image_size)
        gt_labels, gt_boxes = match_batch(self.assigner, priors, targets)
        sampled = torch.zeros_like(gt_labels, dtype=torch.bool)
        positive = torch.zeros_like(sampled)
        for i, labels in enumerate(gt_labels):
            pos, neg = self.sampler(labels)
            positive[i, pos] = True
            sampled[i, pos] = sampled[i, neg] = True
        num_sampled = sampled.sum().clamp(min=1)
        logits = outputs.cls_logits[..., 0]
        loss_cls = self.loss_cls(logits[sampled], positive[sampled].to(logits.dtype))
        pos_priors = priors.expand(len(targets), -1, -1)[positive]
        target = self.coder.encode(pos_priors, gt_boxes[positive])
        loss_box = self.loss_box(outputs.box_regression[positive], target)
        return {"loss_rpn_cls": loss_cls / num_sampled, "loss_rpn_box": loss_box / num_sampled}

    @torch.no_grad()
    def proposals(self, outputs: DenseOutputs, image_sizes: Sequence[tuple[int, int]],
                  input_size: Sequence[int]) -> list[Tensor]:
        """Proposals of each image: float32 [n_i, 4] xyxy in the input's pixels, n_i <= post_nms_top_n,
        best first (see the class docstring). Nothing here carries a gradient to the RPN."""
        mode = "train" if self.training else "test"
        priors = self.priors(outputs, input_size)
        boxes = self.coder.decode(priors, outputs.box_regression.detach().float())  # [B, P, 4]
        logits = outputs.cls_logits.detach().float()[..., 0]
        usable = torch.isfinite(logits) & torch.isfinite(boxes).all(-1)
        logits = logits.masked_fill(~usable, -float("inf"))
        index, levels, start = [], [], 0
        for level, (h, w) in enumerate(outputs.feature_shapes):
            size = h * w * self.num_anchors
            top = logits[:, start:start + size].topk(min(self.pre_nms_top_n[mode], size), dim=1).indices
            index.append(top + start)
            levels.append(torch.full((top.shape[1],), level, device=top.device))
            start += size
        index, levels = torch.cat(index, dim=1), torch.cat(levels)
        scores, usable = torch.sigmoid(logits.gather(1, index)), usable.gather(1, index)
        boxes = boxes.gather(1, index[..., None].expand(-1, -1, 4))
        return [self._filter(b, s, u, levels, size, self.post_nms_top_n[mode])
                for b, s, u, size in zip(boxes, scores, usable, image_sizes)]

    def _filter(self, boxes: Tensor, scores: Tensor, usable: Tensor, levels: Tensor,
                image_size: tuple[int, int], keep_top: int) -> Tensor:
        """One image's top-k candidates [K, 4] -> clipped, usable, NMS'd per level, the best `keep_top`."""
        boxes = clip_boxes(boxes, image_size)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = torch.where(usable & (wh >= self.min_size).all(1))[0]
        kept = batched_nms(boxes[keep], scores[keep], levels[keep], self.nms_iou)[:keep_top]
        return boxes[keep[kept]]
