"""Frozen copies of the dense heads' predict() and loss() as they were before the shared post-processing,
the shared matching and the shared positive count (commit 7194376, detframe/models/heads/*.py).

Kept verbatim (only `self` renamed to `head`, long lines wrapped) so that
tests/models/test_heads_unchanged.py can demand bit-identical outputs from the refactored heads for as
long as these numbers are meant to hold. Do not "fix" or tidy this file: it is the reference, not
library code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detframe.models.assigners import IGNORED
from detframe.models.heads.base import match_batch
from detframe.ops.boxes import batched_nms, clip_boxes, undo_resize
from detframe.structures import Detections


@torch.no_grad()
def retina_predict(head, outputs, batch) -> list[Detections]:
    priors = head.priors(outputs, batch.images.shape[-2:])
    sizes = [h * w * head.num_anchors for h, w in outputs.feature_shapes]
    results = []
    for i in range(len(batch)):
        boxes, scores, labels = [], [], []
        for logits, deltas, anchors in zip(
            outputs.cls_logits[i].float().split(sizes),
            outputs.box_regression[i].float().split(sizes),
            priors.split(sizes),
        ):
            flat = torch.sigmoid(logits).flatten()
            candidates = torch.where(flat > head.score_threshold)[0]
            top, order = flat[candidates].topk(min(head.topk_candidates, len(candidates)))
            index = candidates[order]
            anchor_index = torch.div(index, head.num_classes, rounding_mode="floor")
            decoded = head.coder.decode(anchors[anchor_index], deltas[anchor_index])
            boxes.append(clip_boxes(decoded, batch.image_sizes[i]))
            scores.append(top)
            labels.append(index % head.num_classes)
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        kept = batched_nms(boxes, scores, labels, head.nms_iou)[: head.max_detections]
        boxes = undo_resize(boxes[kept], batch.scales[i], batch.offsets[i], batch.orig_sizes[i])
        results.append(Detections(boxes, scores[kept], labels[kept]))
    return results


def retina_loss(head, outputs, targets, image_size) -> dict:
    priors = head.priors(outputs, image_size)
    gt_labels, gt_boxes = match_batch(head.assigner, priors, targets)
    positive = gt_labels >= 0
    valid = gt_labels != IGNORED
    num_pos = positive.sum().clamp(min=1).float()
    onehot = torch.zeros_like(outputs.cls_logits)
    onehot[positive] = nn.functional.one_hot(gt_labels[positive], head.num_classes).to(onehot.dtype)
    loss_cls = head.loss_cls(outputs.cls_logits[valid], onehot[valid])
    pos_priors = priors.expand(len(targets), -1, -1)[positive]
    pred = outputs.box_regression[positive]
    if getattr(head.loss_box, "decoded", False):
        loss_box = head.loss_box(head.coder.decode(pos_priors, pred), gt_boxes[positive])
    else:
        loss_box = head.loss_box(pred, head.coder.encode(pos_priors, gt_boxes[positive]))
    return {"loss_cls": loss_cls / num_pos, "loss_box": loss_box / num_pos}


@torch.no_grad()
def ssd_predict(head, outputs, batch) -> list[Detections]:
    priors = head.priors(outputs, batch.images.shape[-2:])
    boxes_all = head.coder.decode(priors, outputs.box_regression.float())
    scores_all = F.softmax(outputs.cls_logits.float(), dim=-1)[..., 1:]
    k = min(head.topk_candidates, priors.shape[0])
    results = []
    for i in range(len(batch)):
        boxes = clip_boxes(boxes_all[i], batch.image_sizes[i])
        top_scores, top_index = scores_all[i].topk(k, dim=0)  # [k, C]
        keep = top_scores > head.score_threshold
        scores, labels = top_scores[keep], keep.nonzero()[:, 1]
        boxes = boxes[top_index[keep]]
        kept = batched_nms(boxes, scores, labels, head.nms_iou)[: head.max_detections]
        boxes = undo_resize(boxes[kept], batch.scales[i], batch.offsets[i], batch.orig_sizes[i])
        results.append(Detections(boxes, scores[kept], labels[kept]))
    return results


def ssd_loss(head, outputs, targets, image_size) -> dict:
    """Single-process path of the old SSDHead.loss (its all-reduce only ran under torch.distributed)."""
    priors = head.priors(outputs, image_size)
    batch_size, num_priors = outputs.cls_logits.shape[:2]
    cls_targets = outputs.cls_logits.new_zeros((batch_size, num_priors), dtype=torch.long)
    matched_boxes = priors.new_zeros((batch_size, num_priors, 4))
    for i, gt in enumerate(targets):
        assignment = head.assigner(priors, gt.boxes, gt.ignore)
        pos = assignment.positive
        index = assignment.gt_index[pos]
        cls_targets[i, pos] = gt.labels[index] + 1
        cls_targets[i, assignment.gt_index == IGNORED] = -1
        matched_boxes[i, pos] = gt.boxes[index]
    positive = cls_targets > 0
    num_pos = positive.sum().float()
    num_pos = num_pos.clamp(min=1)
    box_targets = head.coder.encode(priors.expand(batch_size, -1, -1)[positive], matched_boxes[positive])
    return {
        "loss_cls": head.loss_cls(outputs.cls_logits, cls_targets) / num_pos,
        "loss_box": head.loss_box(outputs.box_regression[positive], box_targets) / num_pos,
    }


@torch.no_grad()
def yolo_predict(head, outputs, batch) -> list[Detections]:
    priors, strides = head._priors(outputs, batch.images.shape[-2:])
    raw = outputs.raw.float()
    results = []
    for i in range(len(batch)):
        obj = torch.sigmoid(raw[i, :, 4])
        candidates = torch.where(obj > head.obj_threshold)[0]
        top = obj[candidates].topk(min(head.topk_candidates, len(candidates))).indices
        index = candidates[top]
        scores = torch.sigmoid(raw[i, index, 5:]) * obj[index, None]  # [k, C]
        keep = scores > head.score_threshold
        prior_index, labels = keep.nonzero(as_tuple=True)
        boxes = head.coder.decode(priors[index], raw[i, index, :4], strides[index])[prior_index]
        boxes = clip_boxes(boxes, batch.image_sizes[i])
        scores = scores[keep]
        kept = batched_nms(boxes, scores, labels, head.nms_iou)[: head.max_detections]
        boxes = undo_resize(boxes[kept], batch.scales[i], batch.offsets[i], batch.orig_sizes[i])
        results.append(Detections(boxes, scores[kept], labels[kept]))
    return results


def yolo_loss(head, outputs, targets, image_size) -> dict:
    priors, strides = head._priors(outputs, image_size)
    gt_labels, gt_boxes = match_batch(head.assigner, priors, targets, strides=strides)
    positive = gt_labels >= 0
    valid = gt_labels != IGNORED
    raw = outputs.raw
    num_images = float(len(targets))
    loss_obj = head.loss_obj(raw[..., 4][valid], positive[valid].to(raw.dtype))
    pos = raw[positive]
    onehot = nn.functional.one_hot(gt_labels[positive], head.num_classes).to(raw.dtype)
    batch = len(targets)
    target = head.coder.encode(
        priors.expand(batch, -1, -1)[positive], gt_boxes[positive], strides.expand(batch, -1)[positive]
    )
    return {
        "loss_cls": head.loss_cls(pos[:, 5:], onehot) / num_images,
        "loss_obj": loss_obj / num_images,
        "loss_xy": head.loss_xy(pos[:, :2], target[:, :2]) / num_images,
        "loss_wh": head.loss_wh(pos[:, 2:4], target[:, 2:4]) / num_images,
    }


PREDICT = {
    "RetinaHead": retina_predict, "SSDLiteHead": ssd_predict, "SSDHead": ssd_predict,
    "YOLOv3Head": yolo_predict,
}
LOSS = {"RetinaHead": retina_loss, "SSDLiteHead": ssd_loss, "SSDHead": ssd_loss, "YOLOv3Head": yolo_loss}
