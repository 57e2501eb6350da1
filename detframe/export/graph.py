"""The part of a dense detector's `predict` that goes into an exported graph, and the NMS that ONNX runs.

`predict` = network -> decode -> candidates (top-k) -> clip -> class-aware NMS -> the best
`max_detections` -> original pixels. All but the last step are tensor code whose shapes follow the
input's and go into the graph (`ExportGraph`); the priors, top-k bounds and the clip are computed from
the traced sizes, so that a graph exported with a dynamic height and width (`dynamic=all`) runs at
other sizes; the resize/letterbox before the network and the mapping back to original
pixels stay outside, with the caller (`runtime.py`), as in evaluation.

When the graph's detections equal `predict`'s (tests/export/test_export.py and test_dynamic.py check it):
- the candidates are the same set (`DenseHead.decode(candidates=True)`: top-k per level / per class /
  YOLO's preselection), as long as no two scores tie at the k-th place;
- NMS: ONNX's NonMaxSuppression per (image, class) and torchvision's `batched_nms` make the same
  greedy choice unless an IoU lies within float rounding of `nms_iou`; a head whose `nms_iou` is None
  (CenterNet: its `decode` keeps only heatmap peaks) gets no NMS, every candidate above the threshold;
- the clip before NMS is to the whole input [H, W], `predict`'s to each image's `image_sizes`: they
  agree when every image fills the input, which the val pipelines make sure of (Resize and Letterbox
  to `pipeline.size`, no padding). An image smaller than the export size, padded, may differ in the
  boxes that reach into the padding.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from ..models.detectors.single_stage import SingleStageDetector
from ..models.postprocess import at_most
from ..ops.boxes import clip_boxes

RAW_OUTPUTS = ("boxes", "scores")
NMS_OUTPUTS = ("boxes", "scores", "labels", "num_detections")


def exportable(model: nn.Module) -> bool:
    """Whether `model` has the traceable `decode` an export needs (the dense single-stage detectors)."""
    return isinstance(model, SingleStageDetector) and hasattr(model.head, "decode")


class ExportGraph(nn.Module):
    """What an export traces: uint8 (or float 0..255) images [B, 3, H, W] -> detections in input pixels.

    Args:
        detector: a `SingleStageDetector` whose head has `decode` (see `DenseHead`).
        nms: True: NMS in the graph, outputs `boxes` [B, N, 4], `scores` [B, N], `labels` int64 [B, N],
            `num_detections` int64 [B] (N = max_detections; rows past num_detections are zeros).
            False: `boxes` [B, P, 4] (not clipped) and `scores` [B, P, C] of every prior.
        onnx: run NMS as ONNX's NonMaxSuppression node when exported to ONNX; False uses torchvision's
            `batched_nms`, which TorchScript records.
    """

    def __init__(self, detector: SingleStageDetector, nms: bool = True, onnx: bool = True) -> None:
        super().__init__()
        self.detector, self.nms, self.onnx = detector, nms, onnx
        settings = detector.nms_settings()
        self.score_threshold = float(settings["score_threshold"])
        self.nms_iou = None if settings["nms_iou"] is None else float(settings["nms_iou"])
        self.max_detections = int(settings["max_detections"])
        self.eval()  # an inference graph: batch norm from its running statistics

    @property
    def output_names(self) -> tuple[str, ...]:
        return NMS_OUTPUTS if self.nms else RAW_OUTPUTS

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        boxes, scores = self.detector.decode(images, candidates=self.nms)
        if not self.nms:
            return boxes, scores
        boxes = clip_to_input(boxes, images)
        scores_bca = scores.transpose(1, 2).contiguous()  # [B, C, P]: NonMaxSuppression's layout
        if self.nms_iou is not None and self.onnx and torch.onnx.is_in_onnx_export():
            selected = NonMaxSuppression.apply(boxes, scores_bca, self.max_detections, self.nms_iou,
                                               self.score_threshold)
        else:
            selected = select_pairs(boxes, scores_bca, self.nms_iou, self.score_threshold)
        return top_detections(boxes, scores_bca, selected, self.max_detections)


def clip_to_input(boxes: Tensor, images: Tensor) -> Tensor:
    """Boxes [B, P, 4] xyxy clipped to the input's [H, W]. When traced H and W are 0-dim tensors:
    clamped against a tensor of them, so that a graph with a dynamic height and width clips to the
    size it is run at (`clip_boxes` takes numbers, which the tracer would record as constants)."""
    h, w = images.shape[-2:]
    if not isinstance(h, Tensor):
        return clip_boxes(boxes, (h, w))
    limits = torch.stack([w, h, w, h]).to(boxes.dtype)
    return torch.minimum(boxes.clamp(min=0), limits)


def select_pairs(boxes: Tensor, scores: Tensor, iou: float | None, score_threshold: float) -> Tensor:
    """The (image, class, prior) pairs kept, int64 [K, 3]: `nms_indices`, or with `iou` None (a head
    without NMS) every pair whose score is above `score_threshold`. boxes [B, P, 4], scores [B, C, P]."""
    if iou is None:
        return torch.nonzero(scores > score_threshold)
    return nms_indices(boxes, scores, iou, score_threshold)


@torch.jit.script_if_tracing
def nms_indices(boxes: Tensor, scores: Tensor, iou: float, score_threshold: float) -> Tensor:
    """Class-aware NMS per image, as ONNX's NonMaxSuppression returns it: int64 [K, 3] (image, class,
    prior) of the kept pairs. boxes [B, P, 4], scores [B, C, P]; a pair is a candidate when its score
    is above `score_threshold`. torchvision's `batched_nms` image by image, as `predict` does (one call
    over the whole batch would cost the square of the batch's candidates); compiled by TorchScript when
    traced, so that the loop follows the batch size."""
    kept = [torch.zeros((0, 3), dtype=torch.long, device=scores.device)]
    for b in range(scores.shape[0]):
        index = torch.nonzero(scores[b] > score_threshold)  # [n, 2]: class, prior
        label, prior = index[:, 0], index[:, 1]
        keep = batched_nms(boxes[b, prior], scores[b, label, prior], label, iou)
        kept.append(torch.stack([torch.full_like(keep, b), label[keep], prior[keep]], dim=1))
    return torch.cat(kept)


class NonMaxSuppression(torch.autograd.Function):
    """`nms_indices` in eager code, ONNX's NonMaxSuppression node in an exported graph (the
    TorchScript-based exporter, `dynamo=False`, calls `symbolic`)."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: int, iou: float,
                score_threshold: float) -> Tensor:
        return nms_indices(boxes, scores, iou, score_threshold)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou: float, score_threshold: float):
        def const(value, dtype):
            return g.op("Constant", value_t=torch.tensor([value], dtype=dtype))

        # center_point_box=0: two opposite corners; IoU does not care that ours are x-first.
        return g.op("NonMaxSuppression", boxes, scores, const(max_per_class, torch.int64),
                    const(iou, torch.float32), const(score_threshold, torch.float32))


def top_detections(boxes: Tensor, scores: Tensor, selected: Tensor,
                   max_detections: int) -> tuple[Tensor, ...]:
    """The `max_detections` best kept pairs of each image, in fixed-size outputs.

    Args:
        boxes: [B, P, 4]; scores: [B, C, P]; selected: int64 [K, 3] (image, class, prior) kept by NMS.

    Returns:
        boxes [B, N, 4], scores [B, N], labels int64 [B, N] best first, num_detections int64 [B]; rows
        past num_detections are zeros. N = min(max_detections, C * P).
    """
    batch, num_classes, num_priors = scores.shape
    kept = torch.zeros_like(scores)
    kept[selected[:, 0], selected[:, 1], selected[:, 2]] = 1.0
    ranked = torch.where(kept > 0, scores, torch.full_like(scores, -1.0)).flatten(1)  # [B, C * P]
    top_scores, top = ranked.topk(at_most(max_detections, num_classes * num_priors), dim=1)
    valid = top_scores >= 0
    labels = torch.div(top, num_priors, rounding_mode="floor")
    prior = top - labels * num_priors
    top_boxes = boxes.gather(1, prior.unsqueeze(-1).expand(-1, -1, 4))
    zero = torch.zeros_like(top_scores)
    return (torch.where(valid.unsqueeze(-1), top_boxes, torch.zeros_like(top_boxes)),
            torch.where(valid, top_scores, zero), torch.where(valid, labels, torch.zeros_like(labels)),
            valid.sum(dim=1))
