"""What the Python API returns per image: `Prediction`, detections in original pixels with class names,
drawable and JSON-ready."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops.masks import encode_masks


@dataclass(eq=False)  # arrays: no element-wise ==
class Prediction:
    """The detections of one image, in the pixels of the image as given (the stored pixel order for a
    file: the EXIF orientation tag is not applied, as in training and evaluation).

    Attributes:
        boxes: float32 [K, 4] xyxy, absolute pixels of the original image.
        scores: float32 [K], best first.
        labels: int64 [K], class indices 0..C-1 of the model.
        class_names: the class name of each detection (K names).
        image_size: (h, w) of the original image.
        source: where the image came from: a file path, "frame N" of a video, or "" for an array.
        image: the uint8 RGB [H, W, 3] image predicted on, kept for `draw()` (None when not kept).
        masks: bool [K, H, W] instance masks in original pixels, when the model predicts them (None
            otherwise).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    image_size: tuple[int, int]
    source: str = ""
    image: np.ndarray | None = field(default=None, repr=False)
    masks: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.scores)

    def draw(self, image: np.ndarray | None = None) -> np.ndarray:
        """The image (uint8 RGB [H, W, 3]; `image` or the one predicted on) with each detection's box,
        class name and score (and mask) drawn, one colour per class (detframe/vis/draw.py)."""
        from ..vis.draw import draw_detections

        picture = self.image if image is None else image
        if picture is None:
            raise ValueError("Prediction.draw(): no image kept with this prediction; pass the image")
        texts = [f"{name} {score:.2f}" for name, score in zip(self.class_names, self.scores.tolist())]
        return draw_detections(picture, self.boxes, self.labels, texts, self.masks)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the source, the image size and one entry per detection with its box as
        `bbox` (COCO's [x, y, w, h]) and `bbox_xyxy` ([x1, y1, x2, y2]), both in original pixels, and
        its mask as a COCO compressed RLE `segmentation` ({size: [h, w], counts}) when there are masks."""
        detections = [
            {"label": label, "class_name": name, "score": score, "bbox": xywh, "bbox_xyxy": xyxy}
            for label, name, score, xywh, xyxy in zip(
                self.labels.tolist(), self.class_names, self.scores.tolist(),
                xyxy_to_xywh(self.boxes).tolist(), self.boxes.tolist())
        ]
        if self.masks is not None:
            for det, rle in zip(detections, encode_masks(self.masks)):
                det["segmentation"] = rle
        return {"source": self.source, "height": int(self.image_size[0]), "width": int(self.image_size[1]),
                "detections": detections}


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """[K, 4] xyxy -> [K, 4] COCO's (x, y, w, h), as float64 (what JSON writes)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
