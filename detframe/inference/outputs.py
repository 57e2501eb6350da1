"""What tools/predict.py writes to its `out=` folder:

    out/
      predictions.json     every detection: image_id, file_name (and frame for a video), category_id (the
                           model's class index 0..C-1), category_name, bbox (COCO [x, y, w, h]),
                           bbox_xyxy ([x1, y1, x2, y2]), score; original pixels, full float precision;
                           segmentation (COCO compressed RLE) when the model predicts instance masks
      images/<name>        the images with boxes, class names and scores (and masks) drawn (save_images)
      <video>.mp4          a video with the boxes drawn on every frame (save_images)
      labels/<name>.txt    YOLO txt: `class cx cy w h score` a line, normalised by the image size (save_txt)
      json/<name>.json     `Prediction.to_json()` per image (save_per_image_json)

`<name>` is the image's path relative to the source folder (a video's frame: `<video>_<frame>`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import UserError
from .results import Prediction, xyxy_to_xywh

# The suffixes OpenCV writes; a drawn image of another kind (.gif) is written as PNG.
WRITABLE = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class PredictionWriter:
    """Collects the JSON entries and writes the per-image files as predictions come."""

    def __init__(self, out: Path, save_images: bool, save_json: bool, save_txt: bool,
                 save_per_image_json: bool) -> None:
        self.out = out
        self.save_images, self.save_json = save_images, save_json
        self.save_txt, self.save_per_image_json = save_txt, save_per_image_json
        self.entries: list[dict[str, Any]] = []
        self.count = 0
        out.mkdir(parents=True, exist_ok=True)

    def add(self, prediction: Prediction, name: Path, image_id: int, frame: int | None = None) -> None:
        """Record one image's (or frame's) detections; `name` names its output files."""
        self.count += len(prediction)
        file_name = str(prediction.source) if frame is None else Path(prediction.source).name
        extra = {"frame": frame} if frame is not None else {}
        for det in prediction.to_json()["detections"]:
            self.entries.append({"image_id": image_id, "file_name": file_name, **extra,
                                 "category_id": det["label"], "category_name": det["class_name"],
                                 "bbox": det["bbox"], "bbox_xyxy": det["bbox_xyxy"], "score": det["score"],
                                 **({"segmentation": det["segmentation"]} if "segmentation" in det else {})})
        if self.save_images and frame is None:
            suffix = name.suffix if name.suffix.lower() in WRITABLE else ".png"
            write_rgb(self.out / "images" / name.with_suffix(suffix), prediction.draw())
        if self.save_txt:
            _write_text(self.out / "labels" / name.with_suffix(".txt"), yolo_lines(prediction))
        if self.save_per_image_json:
            _write_text(self.out / "json" / name.with_suffix(".json"), json.dumps(prediction.to_json()))

    def finish(self) -> list[str]:
        """Write predictions.json (when asked); the names of what is in `out`."""
        if self.save_json:
            _write_text(self.out / "predictions.json", json.dumps(self.entries))
        kinds = ["predictions.json" if self.save_json else "", "labels/" if self.save_txt else "",
                 "json/" if self.save_per_image_json else ""]
        return [k for k in kinds if k]


def yolo_lines(prediction: Prediction) -> str:
    """`class cx cy w h score` per detection, coordinates divided by the image's width and height."""
    h, w = prediction.image_size
    xywh = xyxy_to_xywh(prediction.boxes)
    centres = np.c_[(xywh[:, 0] + xywh[:, 2] / 2) / w, (xywh[:, 1] + xywh[:, 3] / 2) / h, xywh[:, 2] / w,
                    xywh[:, 3] / h]
    return "".join(f"{label} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f} {score:.6f}\n"
                   for label, (cx, cy, bw, bh), score in zip(prediction.labels.tolist(), centres,
                                                             prediction.scores.tolist()))


class VideoOutput:
    """An MP4 (OpenCV's mp4v codec) of drawn frames, opened on the first frame."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self.writer = path, fps, None

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise UserError(f"cannot write the video {self.path} (OpenCV's mp4v writer refused it)")
        self.writer.write(np.ascontiguousarray(image[:, :, ::-1]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1])):
        raise UserError(f"cannot write {path}")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
