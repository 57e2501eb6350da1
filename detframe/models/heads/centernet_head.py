"""CenterNet's head (Zhou et al. 2019, "Objects as points"): on one stride-4 map, a heatmap per class whose
peaks are object centres, and at each centre the box's width and height and the centre's sub-pixel offset."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from ...registry import HEADS
from ...rules import PositiveInt, Probability, StrictProbability
from ...structures import Batch, Detections, Instances
from ..postprocess import keep_topk
from .base import DenseHead, num_positives


@dataclass
class CenterNetOutputs:
    """Raw maps of the head for a batch of B images, on the one output map of h x w."""

    heatmap: Tensor  # [B, C, h, w] logits
    wh: Tensor  # [B, 2, h, w] box width and height, in output-map pixels
    offset: Tensor  # [B, 2, h, w] centre - floor(centre), in output-map pixels


def gaussian_radius(heights: Tensor, widths: Tensor, min_overlap: float = 0.7) -> Tensor:
    """[N] radius of the disc of corner shifts that keeps a box's IoU with the object at `min_overlap`,
    CornerNet's `gaussian_radius` (Law & Deng 2018, sec. 3.2), which CenterNet and mmdetection reuse.

    For a box of h x w and both corners shifted by up to r, three cases bound the IoU m, each a quadratic
    a r^2 + b r + c = 0 in r:
    1. one corner inside the object, the other outside: (h - r)(w - r) / (2hw - (h - r)(w - r)) = m,
       so r^2 - (h + w) r + hw (1 - m) / (1 + m) = 0;
    2. both inside (a smaller box): (h - 2r)(w - 2r) / hw = m, so 4 r^2 - 2 (h + w) r + (1 - m) hw = 0;
    3. both outside (a larger box): hw / ((h + 2r)(w + 2r)) = m, so 4m r^2 + 2m (h + w) r + (m - 1) hw = 0.
    The radius is the smallest of the three. As in CornerNet's code (kept by CenterNet and mmdetection, so
    that the published models' targets are the ones reproduced), each case's value is
    (-b' + sqrt(b'^2 - 4ac)) / 2 with b' = (h + w), 2 (h + w) and -2m (h + w): the larger root of case 1,
    and cases 2 and 3 not divided by 2a (4 and 4m). These are larger than the exact roots, so the
    Gaussians are wider than the IoU bound alone would make them.
    """
    h, w, m = heights, widths, min_overlap
    b1 = h + w
    c1 = w * h * (1 - m) / (1 + m)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - m) * w * h
    r2 = (b2 + torch.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * m
    b3 = -2 * m * (h + w)
    c3 = (m - 1) * w * h
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_heatmap(centres: Tensor, radii: Tensor, labels: Tensor, num_classes: int,
                 size: tuple[int, int]) -> Tensor:
    """[C, h, w] target heatmap of one image: for each object a Gaussian exp(-(dx^2 + dy^2) / (2 sigma^2))
    over the (2r + 1)^2 square around its integer centre (sigma = (2r + 1) / 6, CenterNet's
    `draw_umich_gaussian`), the maximum where objects of a class overlap; exactly 1 at each centre.

    Args:
        centres: int64 [N, 2] (x, y) in the map; radii: int64 [N] >= 0; labels: int64 [N] in 0..C-1.
    """
    h, w = size
    heatmap = torch.zeros((num_classes, h, w), device=centres.device)
    if len(labels) == 0:
        return heatmap
    sigma = (2 * radii.float() + 1) / 6
    dx = torch.arange(w, device=centres.device)[None, :] - centres[:, :1]  # [N, w]
    dy = torch.arange(h, device=centres.device)[None, :] - centres[:, 1:]  # [N, h]

    def profile(d: Tensor) -> Tensor:
        inside = d.abs() <= radii[:, None]
        return torch.exp(-d.float() ** 2 / (2 * sigma[:, None] ** 2)) * inside

    gaussians = (profile(dy)[:, :, None] * profile(dx)[:, None, :]).flatten(1)  # [N, h * w]
    heatmap.view(num_classes, -1).scatter_reduce_(0, labels[:, None].expand_as(gaussians), gaussians, "amax")
    return heatmap


@HEADS.register()
class CenterNetHead(DenseHead):
    """Three branches (3x3 conv, ReLU, 1x1 conv) on the neck's stride-4 map: C heatmap logits, box
    width and height, centre offset (mmdetection's CenterNetHead).

    Targets: an object's centre c in the output map (box centre / stride) is a peak of 1 in its class's
    heatmap at floor(c), with a Gaussian around it whose radius follows the box size (`gaussian_radius`,
    `draw_heatmap`); at floor(c) the box's width and height in output-map pixels (mmdetection's scale;
    CenterNet's too) and the offset c - floor(c). Ignored objects (crowd, difficult) are left out: they
    are no peaks, and their area counts as background (as mmdetection, which drops them on loading).
    Two objects on the same floor(c) keep the size and offset of one of them (indexed assignment with a
    repeated index: which one is unspecified; mmdetection's loop keeps the last).
    Loss: `loss_cls` (GaussianFocalLoss, penalty-reduced, alpha 2, beta 4) over the whole heatmap, divided
    by the number of peaks in the batch (`num_positives`); `loss_wh` and `loss_offset` (L1, weights 0.1
    and 1) at the peaks, divided by twice that number (per coordinate, as CenterNet and mmdetection).

    Inference (`decode`): sigmoid heatmap, the local maxima of a 3x3 max-pool kept (CenterNet's
    replacement for NMS, so `nms_iou` is None), the `topk_candidates` best (location, class) pairs over
    all classes, boxes from the size and offset at each location, scaled by the stride; then the shared
    `postprocess_dense` without NMS. mmdetection's test settings: top 100, no score threshold.

    Args:
        num_classes: object classes (a heatmap channel each).
        in_channels: channels of the neck's single map ([64] for CTResNetNeck).
        loss_cls, loss_wh, loss_offset: built losses (GaussianFocalLoss, L1Loss, L1Loss).
        feat_channels: channels of each branch's 3x3 conv (64 in CenterNet).
        prior_prob: the heatmap biases start at -log((1 - pi) / pi) (0.1: -2.19, CenterNet).
        min_overlap: the IoU `gaussian_radius` keeps (0.7 in CenterNet; mmdetection's config uses 0.3).
        score_threshold, topk_candidates, max_detections: inference, see above.
    """

    nms_iou = None  # peaks of the heatmap, not NMS, keep one detection per object

    def __init__(
        self,
        num_classes: PositiveInt,
        in_channels: Sequence[int],
        loss_cls: Callable,
        loss_wh: Callable,
        loss_offset: Callable,
        feat_channels: PositiveInt = 64,
        prior_prob: StrictProbability = 0.1,
        min_overlap: StrictProbability = 0.7,
        score_threshold: Probability = 0.0,
        topk_candidates: PositiveInt = 100,
        max_detections: PositiveInt = 100,
    ) -> None:
        super().__init__()
        if len(in_channels) != 1:
            raise ConfigError(f"CenterNetHead: expects one input map (a CTResNetNeck's), got "
                              f"{len(in_channels)} with channels {list(in_channels)}")
        self.num_classes, self.min_overlap = num_classes, min_overlap
        self.loss_cls, self.loss_wh, self.loss_offset = loss_cls, loss_wh, loss_offset
        self.score_threshold, self.topk_candidates, self.max_detections = (
            score_threshold, topk_candidates, max_detections)
        channels = in_channels[0]
        self.heatmap_head = self._branch(channels, feat_channels, num_classes)
        self.wh_head = self._branch(channels, feat_channels, 2)
        self.offset_head = self._branch(channels, feat_channels, 2)
        self._init_weights(prior_prob)

    @staticmethod
    def _branch(channels: int, feat_channels: int, out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(channels, feat_channels, 3, padding=1), nn.ReLU(inplace=True),
                             nn.Conv2d(feat_channels, out, 1))

    def _init_weights(self, prior_prob: float) -> None:
        """mmdetection's: the heatmap starts at probability `prior_prob` everywhere; the size and offset
        branches start near 0 (normal, std 0.001), so early steps do not predict huge boxes."""
        nn.init.constant_(self.heatmap_head[-1].bias, -math.log((1 - prior_prob) / prior_prob))
        for m in [*self.wh_head, *self.offset_head]:
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)

    def forward(self, features: list[Tensor]) -> CenterNetOutputs:
        x = features[-1]
        return CenterNetOutputs(self.heatmap_head(x), self.wh_head(x), self.offset_head(x))

    def targets(self, targets: list[Instances], map_size: tuple[int, int],
                stride: tuple[float, float]) -> tuple[Tensor, Tensor, Tensor]:
        """Targets of a batch on the output map of (h, w) `map_size`, `stride` (y, x) input pixels per map
        pixel.

        Returns:
            heatmap [B, C, h, w]; box targets [B, 4, h, w] (width, height, offset x, offset y) and the
            bool mask [B, h, w] of the locations that hold one (the objects' integer centres).
        """
        h, w = map_size
        heatmaps, box_targets, masks = [], [], []
        for gt in targets:
            keep = ~gt.ignore
            boxes = gt.boxes[keep].float() / gt.boxes.new_tensor([stride[1], stride[0]] * 2)
            labels = gt.labels[keep]
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            sizes = boxes[:, 2:] - boxes[:, :2]
            limit = centres.new_tensor([w - 1, h - 1])
            cell = torch.minimum(centres.floor().clamp(min=0), limit).long()
            radii = gaussian_radius(sizes[:, 1], sizes[:, 0], self.min_overlap).floor().clamp(min=0).long()
            heatmaps.append(draw_heatmap(cell, radii, labels, self.num_classes, (h, w)))
            box_target = boxes.new_zeros((4, h, w))
            mask = torch.zeros((h, w), dtype=torch.bool, device=boxes.device)
            box_target[:, cell[:, 1], cell[:, 0]] = torch.cat([sizes, centres - cell], dim=1).T
            mask[cell[:, 1], cell[:, 0]] = True
            box_targets.append(box_target)
            masks.append(mask)
        return torch.stack(heatmaps), torch.stack(box_targets), torch.stack(masks)

    def loss(self, outputs: CenterNetOutputs, targets: list[Instances],
             image_size: Sequence[int]) -> dict[str, Tensor]:
        """Args:
            outputs: this head's forward output for a batch of B images.
            targets: per image, boxes (xyxy in the padded input's pixels), labels 0..C-1, ignore flags.
            image_size: (h, w) of the padded input tensor.

        Returns:
            {"loss_heatmap", "loss_wh", "loss_offset"}, normalised by the number of peaks (see above).
        """
        map_size = tuple(outputs.heatmap.shape[-2:])
        stride = (image_size[0] / map_size[0], image_size[1] / map_size[1])
        heatmap, box_target, mask = self.targets(targets, map_size, stride)
        num_pos = num_positives(heatmap.eq(1).flatten(1))
        at_centres = box_target.permute(0, 2, 3, 1)[mask]  # [n, 4]
        wh = outputs.wh.permute(0, 2, 3, 1)[mask].float()
        offset = outputs.offset.permute(0, 2, 3, 1)[mask].float()
        return {
            "loss_heatmap": self.loss_cls(outputs.heatmap, heatmap) / num_pos,
            "loss_wh": self.loss_wh(wh, at_centres[:, :2]) / (2 * num_pos),
            "loss_offset": self.loss_offset(offset, at_centres[:, 2:]) / (2 * num_pos),
        }

    @torch.no_grad()
    def predict(self, outputs: CenterNetOutputs, batch: Batch) -> list[Detections]:
        """`decode`'s top-k peaks of each image through the shared post-processing (`postprocess_dense`,
        no NMS): score threshold, best first, clip, original pixels."""
        boxes, scores = self.decode(outputs, batch.images.shape[-2:], candidates=True)
        return [self.postprocess(batch, i, scores[i], boxes[i], None) for i in range(len(batch))]

    def decode(self, outputs: CenterNetOutputs, image_size: Sequence[int],
               candidates: bool = False) -> tuple[Tensor, Tensor]:
        """Boxes [B, h*w, 4] (input pixels, not clipped) and scores [B, h*w, C] of every location, row by
        row: the sigmoid heatmap, 0 where it is not a 3x3 local maximum; with `candidates`, also 0 outside
        the `topk_candidates` best (location, class) pairs of each image (as `predict`). Traceable, see
        `DenseHead`."""
        heat = torch.sigmoid(outputs.heatmap.float())
        peaks = F.max_pool2d(heat, 3, stride=1, padding=1) == heat
        scores = torch.where(peaks, heat, torch.zeros_like(heat))
        if candidates:
            scores = keep_topk(scores.flatten(1), self.topk_candidates, dim=1).view_as(scores)
        h, w = heat.shape[-2:]
        stride_x, stride_y = image_size[1] / w, image_size[0] / h
        ys, xs = torch.meshgrid(torch.arange(h, device=heat.device), torch.arange(w, device=heat.device),
                                indexing="ij")
        cx = (xs + outputs.offset[:, 0].float()) * stride_x  # [B, h, w]
        cy = (ys + outputs.offset[:, 1].float()) * stride_y
        half_w, half_h = outputs.wh[:, 0].float() * stride_x / 2, outputs.wh[:, 1].float() * stride_y / 2
        boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1).flatten(1, 2)
        return boxes, scores.flatten(2).transpose(1, 2)
