"""Val images with ground-truth and predicted boxes drawn, for TensorBoard (torchvision's draw_bounding_boxes)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torchvision.utils import draw_bounding_boxes

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("detframe")

GT_COLOR, PRED_COLOR = (0, 200, 0), (230, 30, 30)


@torch.no_grad()
def draw_val_images(runner: Runner, count: int, score_threshold: float, max_boxes: int = 30) -> list[Tensor]:
    """The first `count` val images, each uint8 [3, H, W] at its original size, with the ground truth in
    green and the evaluated model's best `max_boxes` detections scoring above `score_threshold` in red
    ("name 0.87").

    The dataset must offer `load_sample(i)` (the untransformed image and boxes, as DetectionDataset
    does); otherwise nothing is drawn.
    """
    dataset = runner.val_set
    if not hasattr(dataset, "load_sample") or count <= 0:
        return []
    indices = list(range(min(count, len(dataset))))
    batch = runner.val_loader.collate_fn([dataset[i] for i in indices]).to(runner.device)
    model = runner.eval_model
    was_training = model.training
    model.eval()
    detections = model.predict(batch)
    model.train(was_training)
    names = list(getattr(dataset, "class_names", []))
    images = []
    for i, det in zip(indices, detections):
        sample = dataset.load_sample(i)
        image = torch.from_numpy(sample.image).permute(2, 0, 1).contiguous()
        keep = (det.scores > score_threshold).nonzero().flatten()[:max_boxes]  # detections come best first
        boxes, scores, labels = det.boxes[keep].cpu(), det.scores[keep].cpu(), det.labels[keep].cpu()
        image = _draw(image, torch.from_numpy(sample.boxes), [_name(names, int(c)) for c in sample.labels], GT_COLOR)
        texts = [f"{_name(names, int(c))} {s:.2f}" for c, s in zip(labels, scores)]
        images.append(_draw(image, boxes, texts, PRED_COLOR))
    return images


def _draw(image: Tensor, boxes: Tensor, labels: list[str], color: tuple[int, int, int]) -> Tensor:
    if len(boxes) == 0:
        return image
    width = max(1, round(max(image.shape[-2:]) / 300))
    return draw_bounding_boxes(image, boxes.float(), labels=labels, colors=[color] * len(boxes), width=width)


def _name(names: list[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else str(label)
