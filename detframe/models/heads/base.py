"""What dense (per-location, per-prior) heads return, and the steps their losses share: flattening
the levels, matching priors to objects over a batch, counting the positives across ranks."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...dist import reduce_mean
from ...structures import Batch, Detections
from ..postprocess import keep_topk, postprocess_dense


@dataclass
class DenseOutputs:
    """Raw predictions of a dense head for a batch, all levels concatenated."""

    cls_logits: Tensor  # [B, P, K]
    box_regression: Tensor  # [B, P, 4] encoded deltas
    feature_shapes: list[tuple[int, int]]  # (h, w) of each level, to generate the P priors


class DenseHead(nn.Module):
    """Base of heads that predict per prior from a `prior_generator` over their feature levels.

    What a dense head implements besides `forward`, `loss` and `predict` to be exportable
    (`detframe.export`, `SingleStageDetector.decode`; SSD, RetinaNet, YOLOv3 and FCOS, whose priors
    are points, do):

    - `decode(outputs, image_size, candidates=False) -> (boxes [B, P, 4], scores [B, P, C])`: every
      prior decoded, boxes xyxy in the padded input's pixels (not clipped), scores the probabilities
      `predict` gives `postprocess_dense` (sigmoid, softmax without background, objectness x class,
      class x centre-ness). Tensor code only, with no Python branch on values and no shape that depends
      on them, so that `torch.jit.trace` / `torch.onnx.export` follow it at any batch size. For any
      input size (`dynamic=all`) too: sizes come from tensors (`feature_shapes`, `image_size` hold
      traced 0-dim tensors then), the prior generator builds from them uncached while tracing
      (models/priors/tracing.py), and a top-k bound is `postprocess.at_most`, not Python's `min`.
      With `candidates=True` the scores of the pairs `predict` would not pass on to NMS (its top-k per
      level or per class, YOLO's preselection by objectness) are set to 0, using
      `postprocess.keep_topk`; NMS at `score_threshold` on what is left then keeps what `predict` keeps.
    - the attributes `score_threshold`, `nms_iou` and `max_detections`, the settings of that NMS.
    """

    prior_generator: nn.Module

    def priors(self, outputs: DenseOutputs, image_size: tuple[int, int] | torch.Size) -> Tensor:
        """[P, 4] xyxy priors of `outputs`' levels for a padded input of (h, w) `image_size`."""
        return self.prior_generator(outputs.feature_shapes, tuple(image_size), outputs.cls_logits.device)

    def points(self, outputs: DenseOutputs,
               image_size: tuple[int, int] | torch.Size) -> tuple[Tensor, Tensor]:
        """([P, 2] points, [P] their strides) of `outputs`' levels for a padded input of `image_size`, for
        the heads whose `prior_generator` is a `PointGenerator` (FCOS, YOLOX, TAL): cell centres or
        corners, as its `offset` says."""
        points = self.priors(outputs, image_size)
        return points, self.prior_generator.strides_of(outputs.feature_shapes, points.device)

    def postprocess(self, batch: Batch, i: int, scores, boxes, topk_mode: str | None) -> Detections:
        """`postprocess_dense` of image `i` of `batch` with this head's settings (`score_threshold`,
        `topk_candidates` unless `topk_mode` is None, `nms_iou`, `max_detections`): the call SSD's,
        RetinaNet's and FCOS's `predict` end in."""
        return postprocess_dense(
            scores, boxes, batch.image_sizes[i], score_threshold=self.score_threshold,
            topk_candidates=self.topk_candidates if topk_mode else None, topk_mode=topk_mode or "pairs",
            nms_iou=self.nms_iou, max_detections=self.max_detections, scale=batch.scales[i],
            offset=batch.offsets[i], orig_size=batch.orig_sizes[i],
        )

    def keep_topk_per_level(self, scores: Tensor, feature_shapes, per_location: int = 1) -> Tensor:
        """[B, P, C] scores with all but each level's `topk_candidates` best (prior, class) pairs set to 0,
        the candidates `predict` passes on with `topk_mode="pairs"` (for `decode(candidates=True)`)."""
        sizes = [h * w * per_location for h, w in feature_shapes]
        return torch.cat([keep_topk(level.flatten(1), self.topk_candidates, dim=1).view_as(level)
                          for level in scores.split(sizes, dim=1)], dim=1)


def flatten_levels(per_level: list[Tensor], channels: int) -> Tensor:
    """[B, A*K, H, W] per level -> [B, sum(H*W*A), K], ordered level, row, column, prior.

    This is the order of `SSDPriorGenerator` (and torchvision's heads), so prior p and output p match.
    """
    flat = []
    for x in per_level:
        b, _, h, w = x.shape
        flat.append(x.view(b, -1, channels, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, channels))
    return torch.cat(flat, dim=1)


def match_batch(assigner, priors: Tensor, targets: list, **extra) -> tuple[Tensor, Tensor]:
    """Run `assigner` on every image of a batch.

    Args:
        assigner: called as `assigner(priors, [extra...,] gt_boxes, gt_ignore)`, returns an `Assignment`.
        priors: [P, 4] xyxy absolute, shared by the images.
        targets: per image, `Instances` (boxes xyxy absolute, labels 0..C-1, ignore flags).
        extra: further positional inputs of the assigner (YOLO's per-prior strides).

    Returns:
        gt_labels: int64 [B, P]: the class (>= 0) of the object matched to each prior, or NEGATIVE /
            IGNORED (see assigners.max_iou).
        gt_boxes: [B, P, 4] the matched object's box (zeros where there is none).
    """
    batch, num_priors = len(targets), priors.shape[0]
    gt_labels = torch.empty((batch, num_priors), dtype=torch.long, device=priors.device)
    gt_boxes = priors.new_zeros((batch, num_priors, 4))
    for i, gt in enumerate(targets):
        assignment = assigner(priors, *extra.values(), gt.boxes, gt.ignore)
        index = assignment.gt_index
        pos = index >= 0
        gt_labels[i] = index
        gt_labels[i, pos] = gt.labels[index[pos]]
        gt_boxes[i, pos] = gt.boxes[index[pos]]
    return gt_labels, gt_boxes


def num_positives(positive: Tensor) -> Tensor:
    """The loss normaliser of heads that divide by their positive priors: float32 scalar.

    The count of True in `positive` (bool [B, P]) averaged over the ranks of a distributed run, then
    clamped to >= 1 (a batch without objects). With the mean over ranks, DDP's averaged gradient is the
    gradient one process holding every rank's images would get; each rank's own count would weight a
    rank with few positives up. In a single process it is the local count. The all-reduce happens here,
    through `detframe.dist`, so that no head calls torch.distributed itself.
    """
    return reduce_mean(positive.sum().float()).clamp(min=1)
