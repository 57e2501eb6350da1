"""One post-processing path for dense heads: per (prior, class) scores and boxes -> `Detections`.

RetinaNet, SSD and YOLOv3 (and the heads to come: FCOS, CenterNet, an RPN) differ in how they score
priors and in which candidates they keep before NMS; everything after that is the same and lives
here: `postprocess_dense` for one image, and `preselect_priors` for heads that first keep the most
object-like priors (YOLO's objectness).

The heads compute their scores and boxes on the same tensors as before this function existed (per
level for RetinaNet, all priors for SSD, the preselected priors for YOLO), because torch's CPU kernels
may round an element differently depending on the length of the tensor it is in (vectorised body vs
scalar tail: measured for sigmoid). What is done here gives the same bits whatever the length
(comparisons, top-k, gathers, clamps, NMS, and the correctly rounded - and / that undo the resize),
so the detections are bit-identical to the heads' former code (tests/models/test_heads_unchanged.py).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..ops.boxes import batched_nms, clip_boxes, undo_resize
from ..structures import Detections

TOPK_MODES = ("pairs", "per_class")


def postprocess_dense(
    scores: Tensor | Sequence[Tensor],
    boxes: Tensor | Callable[[Tensor], Tensor],
    image_size: tuple[int, int],
    *,
    score_threshold: float,
    topk_candidates: int | None,
    nms_iou: float | None,
    max_detections: int,
    topk_mode: str = "pairs",
    suppress: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
    scale: tuple[float, float] = (1.0, 1.0),
    offset: tuple[float, float] = (0.0, 0.0),
    orig_size: tuple[int, int] | None = None,
) -> Detections:
    """Detections of one image from a dense head's scores, in five steps.

    1. Candidates, within each group of `scores` (an FPN level, or the whole image when a single
       tensor is given), by `topk_mode`:
       - "pairs": the (prior, class) pairs scoring above `score_threshold`, then the
         `topk_candidates` best of them, best first (RetinaNet: 1000 per level; FCOS; mmdetection).
       - "per_class": for each class the `topk_candidates` best priors, then those above
         `score_threshold` (SSD; the same set as thresholding first), ordered by rank then class.
       With `topk_candidates=None` both keep every pair above the threshold, prior by prior (YOLOv3,
       after `preselect_priors`).
    2. Boxes of the candidates' priors: `boxes` indexed (by prior and class when class-specific), or
       called on the prior indices of each group so that only candidates are decoded; then clipped to
       `image_size`.
    3. Suppression: class-aware NMS at `nms_iou` (`torchvision.ops.batched_nms`: boxes of different
       classes never suppress each other), or `suppress(boxes, scores, labels) -> kept indices, best
       first` in its place, or none at all with `nms_iou=None` (a set predictor; CenterNet, whose
       heatmap peaks are picked with a 3x3 max-pool before this call).
    4. The `max_detections` best.
    5. Back to original-image pixels, (x - offset) / scale clipped to `orig_size`, undoing the
       test-time resize or letterbox; `orig_size=None` keeps input pixels (an RPN's proposals).

    The score of a pair is the head's business: sigmoid (RetinaNet), softmax without the background
    (SSD), objectness x class probability (YOLO), class probability x centre-ness (FCOS). An RPN
    passes one objectness column, so its NMS is class-agnostic.

    Args:
        scores: [P, C] scores in [0, 1] of P priors and C classes, or a list of [P_l, C] per level
            whose priors are numbered level after level.
        boxes: [P, 4] boxes of all priors, [P, C, 4] class-specific boxes (an R-CNN box head's, one
            per prior and class), or a function from int64 [n] prior indices to their [n, 4] boxes;
            xyxy in the (padded) input's pixels.
        image_size: (h, w) of the image inside the padded input.
        score_threshold: a pair is a candidate only if its score is above this.
        topk_candidates: candidates kept per group ("pairs") or per group and class ("per_class");
            None keeps all.
        nms_iou: IoU above which NMS suppresses a box; None skips NMS.
        max_detections: detections kept per image.
        topk_mode: "pairs" or "per_class", see step 1.
        suppress: replaces NMS (step 3).
        scale, offset, orig_size: the test-time transform, a point of the input being
            `orig * scale + offset` (x and y separately).

    Returns:
        `Detections`, best first: boxes float32 [K, 4] xyxy, scores [K], labels int64 [K] in 0..C-1.
    """
    if topk_mode not in TOPK_MODES:
        raise ValueError(f"postprocess_dense: topk_mode must be one of {TOPK_MODES}, got '{topk_mode}'")
    groups = [scores] if isinstance(scores, Tensor) else list(scores)
    all_boxes, all_scores, all_labels, start = [], [], [], 0
    for group in groups:
        prior_index, group_scores, labels = _candidates(group, score_threshold, topk_candidates, topk_mode)
        prior_index = prior_index + start
        if callable(boxes):
            all_boxes.append(boxes(prior_index))
        else:
            all_boxes.append(boxes[prior_index, labels] if boxes.dim() == 3 else boxes[prior_index])
        all_scores.append(group_scores)
        all_labels.append(labels)
        start += group.shape[0]
    candidate_boxes = clip_boxes(torch.cat(all_boxes), image_size)
    candidate_scores, labels = torch.cat(all_scores), torch.cat(all_labels)
    if suppress is not None:
        kept = suppress(candidate_boxes, candidate_scores, labels)
    elif nms_iou is not None:
        kept = batched_nms(candidate_boxes, candidate_scores, labels, nms_iou)
    else:
        kept = candidate_scores.argsort(descending=True, stable=True)
    kept = kept[:max_detections]
    boxes_out = candidate_boxes[kept]
    if orig_size is not None:
        boxes_out = undo_resize(boxes_out, scale, offset, orig_size)
    return Detections(boxes_out, candidate_scores[kept], labels[kept])


def _candidates(scores: Tensor, threshold: float, k: int | None, mode: str) -> tuple[Tensor, Tensor, Tensor]:
    """Step 1 on one group: [P, C] scores -> (prior index [n], score [n], label [n]), see above."""
    num_classes = scores.shape[1]
    if mode == "per_class" and k is not None:
        top_scores, top_index = scores.topk(min(k, scores.shape[0]), dim=0)  # [k, C]: rank, class
        keep = top_scores > threshold
        return top_index[keep], top_scores[keep], keep.nonzero()[:, 1]
    flat = scores.flatten()
    index = torch.where(flat > threshold)[0]
    selected = flat[index]
    if k is not None:
        selected, order = selected.topk(min(k, len(index)))
        index = index[order]
    return torch.div(index, num_classes, rounding_mode="floor"), selected, index % num_classes


def preselect_priors(prior_scores: Tensor, threshold: float, k: int) -> Tensor:
    """The `k` priors with the highest `prior_scores` [P] among those above `threshold`, best first:
    int64 [<= k] indices (YOLO's objectness filter, before class scores are even computed)."""
    candidates = torch.where(prior_scores > threshold)[0]
    return candidates[prior_scores[candidates].topk(min(k, len(candidates))).indices]


def keep_topk(scores: Tensor, k: int, dim: int) -> Tensor:
    """`scores` with all but the `k` largest along `dim` set to 0 (same shape, traceable).

    The fixed-shape form of step 1's top-k for exported graphs (see `DenseHead.decode`): a zero never
    passes a score threshold (a pair passes only when its score is strictly above it), so the
    candidates left above the threshold are those `_candidates` keeps."""
    index = scores.topk(at_most(k, scores.shape[dim]), dim=dim).indices
    return torch.zeros_like(scores).scatter(dim, index, scores.gather(dim, index))


def at_most(k: int, size: int | Tensor) -> int | Tensor:
    """min(k, size) for a top-k over `size` elements. While traced a size is a 0-dim tensor, and
    Python's `min` would freeze the side that won at the traced input size into the graph (a top-k
    larger than the input at another size); the tensor's clamp is recorded instead."""
    return size.clamp(max=k) if isinstance(size, Tensor) else min(k, size)
