"""Drawing boxes on images: val images with ground truth and predictions for TensorBoard, dataset
samples for tools/browse_dataset.py, grids and PNG files. Boxes are drawn with torchvision's
`draw_bounding_boxes`, instance masks (when a sample or a detection has them) with its
`draw_segmentation_masks` under the boxes, in the same colour; label text with PIL where torchvision's
10 px bitmap font is too small."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from ..errors import UserError

GT_COLOR, PRED_COLOR = (0, 200, 0), (230, 30, 30)
MASK_ALPHA = 0.45  # opacity of a mask's fill: the object stays visible under it


@torch.no_grad()
def draw_val_images(model: nn.Module, loader: Any, device: torch.device, count: int, score_threshold: float,
                    max_boxes: int = 30) -> list[Tensor]:
    """The first `count` images of a val loader's dataset, each uint8 [3, H, W] at its original size, with
    the ground truth in green and `model`'s best `max_boxes` detections scoring above `score_threshold`
    in red ("name 0.87"); their instance masks too when the dataset and the model give them.

    The dataset must offer `load_sample(i)` (the untransformed image and boxes, as DetectionDataset
    does) and the loader a `collate_fn`; otherwise nothing is drawn.
    """
    dataset = getattr(loader, "dataset", None)
    if not hasattr(dataset, "load_sample") or not hasattr(loader, "collate_fn") or count <= 0:
        return []
    indices = list(range(min(count, len(dataset))))
    batch = loader.collate_fn([dataset[i] for i in indices]).to(device)
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
        gt_masks = None if sample.masks is None else torch.from_numpy(sample.masks).bool()
        image = _draw(image, torch.from_numpy(sample.boxes), [_name(names, int(c)) for c in sample.labels],
                      GT_COLOR, gt_masks)
        texts = [f"{_name(names, int(c))} {s:.2f}" for c, s in zip(labels, scores)]
        pred_masks = None if det.masks is None else det.masks[keep].cpu()
        images.append(_draw(image, boxes, texts, PRED_COLOR, pred_masks))
    return images


def _draw(image: Tensor, boxes: Tensor, labels: list[str], color: tuple[int, int, int],
          masks: Tensor | None = None) -> Tensor:
    if len(boxes) == 0:
        return image
    if masks is not None and len(masks):
        image = draw_segmentation_masks(image, masks.bool(), alpha=MASK_ALPHA, colors=[color] * len(masks))
    width = max(1, round(max(image.shape[-2:]) / 300))
    return draw_bounding_boxes(image, boxes.float(), labels=labels, colors=[color] * len(boxes), width=width)


def _name(names: list[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else str(label)


def class_colours(num_classes: int) -> list[tuple[int, int, int]]:
    """Distinct, saturated colours (golden-ratio hue steps)."""
    import colorsys

    return [tuple(int(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.9, 1.0))
            for i in range(num_classes)]


def draw_sample(sample, class_names: Sequence[str]) -> np.ndarray:
    """The sample's image (uint8 RGB [H, W, 3]) with its boxes (torchvision's draw_bounding_boxes),
    instance masks (when it has them) and class names drawn; ignored (difficult / crowd) ones in grey."""
    palette = class_colours(len(class_names))
    colours = [(160, 160, 160) if ig else palette[int(i)] for i, ig in zip(sample.labels, sample.ignore)]
    texts = [class_names[int(label)] + (" (ignored)" if ignored else "")
             for label, ignored in zip(sample.labels, sample.ignore)]
    return _boxes_with_text(sample.image, sample.boxes, colours, texts, sample.masks)


def draw_detections(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                    texts: Sequence[str], masks: np.ndarray | None = None) -> np.ndarray:
    """`image` (uint8 RGB [H, W, 3]) with `boxes` (float [K, 4] xyxy pixels) drawn in their class's colour
    (`labels`: int [K] class indices), each with its text ("name 0.87") on a tag above it, and its
    instance mask (`masks`: optional bool [K, H, W]) filled in that colour."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    palette = class_colours(int(labels.max()) + 1 if len(labels) else 0)
    return _boxes_with_text(image, np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                            [palette[int(i)] for i in labels], texts, masks)


def _boxes_with_text(image: np.ndarray, boxes: np.ndarray, colours: Sequence[tuple[int, int, int]],
                     texts: Sequence[str], masks: np.ndarray | None = None) -> np.ndarray:
    """Masks by torchvision's draw_segmentation_masks, boxes by its draw_bounding_boxes, each text on a
    tag of its box's colour (PIL)."""
    from PIL import Image, ImageDraw, ImageFont

    if len(boxes) == 0:
        return np.ascontiguousarray(image)
    h, w = image.shape[:2]
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if masks is not None and len(masks):
        tensor = draw_segmentation_masks(tensor, torch.as_tensor(np.asarray(masks)).bool(), alpha=MASK_ALPHA,
                                         colors=list(colours))
    drawn = Image.fromarray(
        draw_bounding_boxes(tensor, torch.as_tensor(boxes, dtype=torch.float32), colors=list(colours),
                            width=max(1, round(max(h, w) / 320))).permute(1, 2, 0).numpy())
    # torchvision draws labels in PIL's 10 px bitmap font unless given a font file; a scaled one reads better.
    font = ImageFont.load_default(size=max(10, round(max(h, w) / 40)))
    draw = ImageDraw.Draw(drawn)
    for box, text, colour in zip(boxes, texts, colours):
        x, y = float(box[0]), float(box[1])
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        y -= (bottom - top) if y - (bottom - top) >= 0 else 0
        x = max(0.0, x - max(0.0, right + 1 - w))  # a box at the right edge: its tag moves left, inside
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=colour)
        draw.text((x, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(drawn)


def grid(pictures: list[np.ndarray], tile: int = 320) -> np.ndarray:
    """Pictures scaled to fit `tile` x `tile` cells, in a near-square grid."""
    import cv2

    cols = max(1, int(np.ceil(np.sqrt(len(pictures)))))
    rows = max(1, int(np.ceil(len(pictures) / cols)))
    canvas = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for k, picture in enumerate(pictures):
        h, w = picture.shape[:2]
        f = tile / max(h, w)
        small = cv2.resize(picture, (max(1, round(w * f)), max(1, round(h * f))),
                           interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        canvas[r * tile:r * tile + small.shape[0], c * tile:c * tile + small.shape[1]] = small
    return canvas


def write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1])):
        raise UserError(f"cannot write {path}")
