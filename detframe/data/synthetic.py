"""The embedded "shapes" detection set, generated on first use in both COCO and VOC layouts.

Deterministic for a seed: a few hundred images of varied size, each with 1-6 filled shapes (circle,
square, triangle, star) of random colour and size (about 18-110 px), partly overlapping, on a noisy
gradient with distracting lines and dots that are not objects. Layout under `root`:

    JPEGImages/000000.jpg ...           images shared by both layouts
    Annotations/000000.xml ...          Pascal VOC XML (1-based inclusive pixel coordinates)
    SegmentationObject/000000.png ...   VOC instance maps (pixel value k: the k-th object)
    ImageSets/Main/{train,val}.txt      VOC split lists
    annotations/instances_{train,val}.json   COCO JSON (file_name relative to JPEGImages/)

The COCO files also give each shape's exact mask as a compressed RLE `segmentation` (the pixels the
shape was drawn on, whole even where a later shape or a clutter line covers part of it, so that the
mask's bounding box is the box); `data.with_masks=true` reads them (instance segmentation). The VOC
instance maps hold one object per pixel, so there a shape drawn over another one takes its pixels (as
in VOC itself).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import cv2
import numpy as np

from ..ops.masks import encode_masks

SHAPES_CLASSES = ("circle", "square", "triangle", "star")
MASKS_MARK = "masks=rle+png"  # in .complete: the set has instance masks (older sets lack them)

log = logging.getLogger(__name__)


def ensure_shapes(root: str | os.PathLike, num_train: int = 800, num_val: int = 150, seed: int = 0,
                  with_masks: bool = False) -> Path:
    """Generate the shapes set at `root` unless it is already complete there. Returns the root.

    `with_masks`: a set generated before the COCO files had masks is generated again (the same images,
    now with their `segmentation`s) and replaces it.
    """
    root = Path(root)
    marker = root / ".complete"
    if marker.exists() and not (with_masks and MASKS_MARK not in marker.read_text()):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    log.info("generating the synthetic shapes set (%d train, %d val images, seed %d) under %s",
             num_train, num_val, seed, root)
    # Write into a temporary sibling and rename, so a crash never leaves half a dataset behind and two
    # processes generating at once both end up with the same complete copy.
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        generate_shapes(tmp, num_train=num_train, num_val=num_val, seed=seed)
        (tmp / ".complete").write_text(f"num_train={num_train} num_val={num_val} seed={seed} {MASKS_MARK}\n")
        if marker.exists():  # an older set without masks: moved aside, then removed
            old = root.with_name(f".{root.name}-old-{os.getpid()}")
            os.rename(root, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / ".complete").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def generate_shapes(root: Path, num_train: int, num_val: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for sub in ("JPEGImages", "Annotations", "SegmentationObject", "ImageSets/Main", "annotations"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(SHAPES_CLASSES)]
    index = 0
    for split, count in (("train", num_train), ("val", num_val)):
        images, annotations, names = [], [], []
        for _ in range(count):
            image, boxes, labels, masks = _draw_image(rng)
            name = f"{index:06d}"
            cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), image[:, :, ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
            h, w = image.shape[:2]
            (root / "Annotations" / f"{name}.xml").write_text(_voc_xml(name, w, h, boxes, labels))
            cv2.imwrite(str(root / "SegmentationObject" / f"{name}.png"), _instance_map(masks, h, w))
            images.append({"id": index + 1, "file_name": f"{name}.jpg", "width": w, "height": h})
            rles = encode_masks(np.array(masks, np.uint8).reshape(-1, h, w))
            for box, label, rle in zip(boxes, labels, rles):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": index + 1, "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                    "segmentation": rle,
                })
            names.append(name)
            index += 1
        (root / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def _draw_image(rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray], list[int], list[np.ndarray]]:
    """An image, its shapes' boxes, labels and 0/1 masks [H, W]."""
    h, w = (int(v) for v in rng.integers(240, 361, size=2))
    image = _background(rng, h, w)
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    masks: list[np.ndarray] = []
    for _ in range(int(rng.integers(1, 7))):
        for _attempt in range(20):
            label = int(rng.integers(len(SHAPES_CLASSES)))
            size = int(rng.integers(18, 111))
            cx, cy = int(rng.integers(size // 2, w - size // 2)), int(rng.integers(size // 2, h - size // 2))
            mask = np.zeros((h, w), np.uint8)
            _draw_shape(mask, SHAPES_CLASSES[label], cx, cy, size, rng)
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
            # Some overlap makes it non-trivial; heavy occlusion would make labels unreliable.
            if all(_iou(box, b) < 0.2 and _cover(b, box) < 0.5 for b in boxes):
                image[mask > 0] = _colour(rng)
                boxes.append(box)
                labels.append(label)
                masks.append((mask > 0).astype(np.uint8))
                break
    _clutter(image, rng)
    return image, boxes, labels, masks


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    a, b = rng.integers(40, 215, size=(2, 3))
    t = np.linspace(0.0, 1.0, w if rng.random() < 0.5 else h, dtype=np.float32)
    ramp = a[None, :] * (1 - t[:, None]) + b[None, :] * t[:, None]
    grad = (np.broadcast_to(ramp[None, :, :], (h, w, 3)) if len(t) == w
            else np.broadcast_to(ramp[:, None, :], (h, w, 3)))
    noise = rng.normal(0.0, 10.0, size=(h, w, 3))
    return np.clip(grad + noise, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(60, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]


def _draw_shape(mask: np.ndarray, kind: str, cx: int, cy: int, size: int, rng: np.random.Generator) -> None:
    r = size / 2
    if kind == "circle":
        cv2.circle(mask, (cx, cy), int(r), 255, -1)
        return
    if kind == "square":
        angle = rng.uniform(-0.3, 0.3)
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        pts = [(r * 0.8 * (x * np.cos(angle) - y * np.sin(angle)),
                r * 0.8 * (x * np.sin(angle) + y * np.cos(angle))) for x, y in corners]
    elif kind == "triangle":
        angle = rng.uniform(-0.4, 0.4)
        pts = [(r * np.sin(angle + k * 2 * np.pi / 3), -r * np.cos(angle + k * 2 * np.pi / 3))
               for k in range(3)]
    else:  # star: ten points alternating outer and inner radius
        angle = rng.uniform(0, 2 * np.pi / 5)
        pts = [((r if k % 2 == 0 else r * 0.42) * np.sin(angle + k * np.pi / 5),
                -(r if k % 2 == 0 else r * 0.42) * np.cos(angle + k * np.pi / 5)) for k in range(10)]
    poly = np.array([[cx + x, cy + y] for x, y in pts], np.int32)
    cv2.fillPoly(mask, [poly], 255)


def _clutter(image: np.ndarray, rng: np.random.Generator) -> None:
    h, w = image.shape[:2]
    for _ in range(int(rng.integers(2, 7))):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(image, p1, p2, tuple(int(c) for c in _colour(rng)), int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(0, 6))):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(image, c, int(rng.integers(2, 5)), tuple(int(v) for v in _colour(rng)), -1)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _cover(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of box `a` covered by box `b`."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return float(iw * ih / ((a[2] - a[0]) * (a[3] - a[1])))


def _instance_map(masks: list[np.ndarray], h: int, w: int) -> np.ndarray:
    """VOC's SegmentationObject image: k where the k-th shape is visible (later shapes on top), else 0."""
    index = np.zeros((h, w), np.uint8)
    for k, mask in enumerate(masks, 1):
        index[mask > 0] = k
    return index


def _voc_xml(name: str, w: int, h: int, boxes: list[np.ndarray], labels: list[int]) -> str:
    objects = "".join(
        f"  <object>\n    <name>{escape(SHAPES_CLASSES[label])}</name>\n"
        "    <difficult>0</difficult>\n    <bndbox>\n"
        f"      <xmin>{int(b[0]) + 1}</xmin>\n      <ymin>{int(b[1]) + 1}</ymin>\n"
        f"      <xmax>{int(b[2])}</xmax>\n      <ymax>{int(b[3])}</ymax>\n    </bndbox>\n  </object>\n"
        for b, label in zip(boxes, labels)
    )
    return (
        f"<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{name}.jpg</filename>\n"
        f"  <size>\n    <width>{w}</width>\n    <height>{h}</height>\n    <depth>3</depth>\n  </size>\n"
        f"{objects}</annotation>\n"
    )
