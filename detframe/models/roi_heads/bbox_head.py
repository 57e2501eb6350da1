"""The R-CNN box head and the steps every RoI head shares: sampling RoIs for the loss, its two terms,
and turning scored, regressed RoIs into `Detections` through the one post-processing path."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...ops.boxes import batched_nms
from ...structures import Detections, Instances
from ..postprocess import postprocess_dense


class Shared2FCBBoxHead(nn.Module):
    """Two fully connected layers (ReLU) shared by a classifier over C + 1 classes (background first)
    and a box regressor: 4 deltas per class, or 4 for all with `class_agnostic` (Cascade R-CNN).

    Args:
        in_features: C x S x S of the pooled RoI features.
        fc_channels: width of the two hidden layers (1024).
        num_classes: object classes C.
        class_agnostic: one set of deltas for every class.
    """

    def __init__(self, in_features: int, fc_channels: int, num_classes: int,
                 class_agnostic: bool = False) -> None:
        super().__init__()
        self.fc6, self.fc7 = nn.Linear(in_features, fc_channels), nn.Linear(fc_channels, fc_channels)
        self.cls_score = nn.Linear(fc_channels, num_classes + 1)
        self.box_classes = 1 if class_agnostic else num_classes
        self.bbox_pred = nn.Linear(fc_channels, 4 * self.box_classes)
        # mmdetection's initialisation: small outputs at first, deltas smaller still.
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        """[N, C_in, S, S] -> class logits [N, C + 1] and deltas [N, C or 1, 4]."""
        x = torch.relu(self.fc7(torch.relu(self.fc6(pooled.flatten(1)))))
        return self.cls_score(x), self.bbox_pred(x).view(len(x), self.box_classes, 4)


@dataclass
class RoISamples:
    """The RoIs a box head trains on, for a batch."""

    rois: list[Tensor]  # per image [n_i, 4] xyxy input pixels
    labels: Tensor  # int64 [N]: 0 background, 1..C object class + 1 (the softmax's index)
    gt_boxes: Tensor  # [N, 4] the matched object's box (zeros for background)
    is_gt: Tensor  # bool [N]: the RoI is a ground-truth box added to the proposals
    matched: list[Tensor]  # per image, the object index of its positives (the first of its RoIs)


def sample_rois(proposals: list[Tensor], targets: list[Instances], assigner, sampler) -> RoISamples:
    """Add each image's objects to its proposals (so every object has a perfect positive from the
    first step on), match by `assigner`, draw positives and negatives by `sampler`.

    An image without objects gives negatives only; ignored objects (crowd) are neither added nor
    matched positive (the assigner ignores their RoIs, the sampler skips them).
    """
    rois, labels, gt_boxes, is_gt, objects = [], [], [], [], []
    for props, gt in zip(proposals, targets):
        added = gt.boxes[~gt.ignore]
        candidates = torch.cat([props, added.to(props.dtype)])
        gt_index = assigner(candidates, gt.boxes, gt.ignore).gt_index
        pos, neg = sampler(gt_index)
        keep = torch.cat([pos, neg])
        matched = gt_index[pos]
        label = torch.zeros(len(keep), dtype=torch.long, device=props.device)
        label[:len(pos)] = gt.labels[matched] + 1
        boxes = candidates.new_zeros((len(keep), 4))
        boxes[:len(pos)] = gt.boxes[matched].to(boxes.dtype)
        rois.append(candidates[keep])
        labels.append(label)
        gt_boxes.append(boxes)
        is_gt.append(keep >= len(props))
        objects.append(matched)
    return RoISamples(rois, torch.cat(labels), torch.cat(gt_boxes), torch.cat(is_gt), objects)


def box_head_losses(logits: Tensor, deltas: Tensor, samples: RoISamples, coder, loss_cls, loss_box,
                    weight: float = 1.0) -> tuple[Tensor, Tensor]:
    """(classification, box) terms of sampled RoIs, each divided by the number sampled (torchvision:
    cross-entropy averaged over the sampled RoIs, box loss summed over the positives and divided by
    the same count), times `weight` (a cascade stage's).

    Args:
        logits: [N, C + 1]; deltas: [N, C or 1, 4] as `Shared2FCBBoxHead` gives them.
    """
    count = max(len(samples.labels), 1)
    positive = torch.where(samples.labels > 0)[0]
    column = (samples.labels[positive] - 1) if deltas.shape[1] > 1 else torch.zeros_like(positive)
    target = coder.encode(torch.cat(samples.rois)[positive], samples.gt_boxes[positive])
    cls = loss_cls(logits, samples.labels) / count
    box = loss_box(deltas[positive, column], target) / count
    return weight * cls, weight * box


def decode_per_class(coder, rois: Tensor, deltas: Tensor) -> Tensor:
    """Boxes [N, K, 4] (xyxy input pixels, not clipped) of RoIs [N, 4] from deltas [N, K, 4]."""
    return coder.decode(rois[:, None, :].expand_as(deltas), deltas)


def small_box_nms(min_size: float, nms_iou: float):
    """The `suppress` step of an R-CNN's `postprocess_dense`: boxes narrower or lower than `min_size`
    pixels dropped (torchvision's `remove_small_boxes`), then class-aware NMS at `nms_iou`."""
    def suppress(boxes: Tensor, scores: Tensor, labels: Tensor) -> Tensor:
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = torch.where((wh >= min_size).all(1))[0]
        return keep[batched_nms(boxes[keep], scores[keep], labels[keep], nms_iou)]
    return suppress


def roi_detections(head, batch, proposals: list[Tensor], logits: Tensor, deltas: Tensor) -> list[Detections]:
    """Each image's detections from the logits [R, C + 1] and deltas [R, C or 1, 4] of its proposals
    (per image [r_i, 4], xyxy input pixels, concatenated in `logits` and `deltas`): softmax, background
    dropped, boxes decoded by `head.coder`, then `detections` (Faster R-CNN's and R-FCN's shared tail)."""
    scores = torch.softmax(logits.float(), dim=1)[:, 1:]
    sizes = [len(p) for p in proposals]
    return [detections(head, batch, i, s, decode_per_class(head.coder, rois, d.float()))
            for i, (rois, s, d) in enumerate(zip(proposals, scores.split(sizes), deltas.split(sizes)))]


def detections(head, batch, i: int, scores: Tensor, boxes: Tensor) -> Detections:
    """Image `i`'s detections from its RoIs' class probabilities [R, C] (background dropped) and
    class-specific [R, C, 4] or shared [R, 1, 4] boxes, with `head`'s settings (`score_threshold`,
    `nms_iou`, `max_detections`, `min_size`): every (RoI, class) pair above the threshold, clipped,
    small boxes dropped, class-aware NMS, the best, in original pixels."""
    boxes = boxes[:, 0] if boxes.shape[1] == 1 else boxes
    return postprocess_dense(
        scores, boxes, batch.image_sizes[i], score_threshold=head.score_threshold, topk_candidates=None,
        nms_iou=head.nms_iou, max_detections=head.max_detections,
        suppress=small_box_nms(head.min_size, head.nms_iou), scale=batch.scales[i],
        offset=batch.offsets[i], orig_size=batch.orig_sizes[i],
    )
