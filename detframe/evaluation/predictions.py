"""Detections of a whole evaluation as flat arrays, in the form of a COCO results file.

The COCO results format (image_id, category_id, bbox xywh in original pixels, score) is the common
currency: the model's outputs are turned into it, results files are read into it, every evaluator reads
it, and `to_coco_results` writes it back out in a form the official evaluation server accepts. A model
that predicts instance masks adds a `segmentation` per row, a compressed RLE (a few hundred bytes, which
is also what crosses processes in distributed evaluation, never a bitmap).
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError, choices_text
from ..ops.masks import encode_masks
from .ground_truth import GroundTruth

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """N detections; row i is one entry of a COCO results list.

    Rows of one image stay in the order they were produced: pycocotools breaks score ties by it.
    """

    image_id: np.ndarray  # int64 [N]
    category_id: np.ndarray  # int64 [N] the dataset's own category ids
    bbox: np.ndarray  # float64 [N, 4] xywh, original-image pixels
    score: np.ndarray  # float64 [N]
    # object [N] of compressed RLE dicts {"size": [h, w], "counts": str}, original pixels; None: boxes only
    segmentation: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Predictions:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))

    @classmethod
    def concat(cls, parts: Sequence[Predictions]) -> Predictions:
        """The rows of `parts` in order; masks are kept when every part that has rows has them."""
        if not parts:
            return cls.empty()
        rows = [p for p in parts if len(p)]
        masked = bool(rows) and all(p.segmentation is not None for p in rows)
        return cls(*(np.concatenate([getattr(p, k) for p in parts])
                     for k in ("image_id", "category_id", "bbox", "score")),
                   np.concatenate([p.segmentation for p in rows]) if masked else None)

    def __len__(self) -> int:
        return len(self.score)

    def select(self, keep: np.ndarray) -> Predictions:
        masks = None if self.segmentation is None else self.segmentation[keep]
        return Predictions(self.image_id[keep], self.category_id[keep], self.bbox[keep], self.score[keep],
                           masks)

    @property
    def boxes_xyxy(self) -> np.ndarray:
        """float64 [N, 4] xyxy absolute."""
        return np.concatenate([self.bbox[:, :2], self.bbox[:, :2] + self.bbox[:, 2:]], axis=1)


def from_detections(image_id: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                    category_ids: np.ndarray, masks: np.ndarray | None = None) -> Predictions:
    """One image's model output as results rows.

    Args:
        image_id: the dataset's image id.
        boxes: float32 [K, 4] xyxy in original-image pixels.
        scores: float32 [K].
        labels: int64 [K] in 0..C-1; `category_ids[label]` is the dataset's id.
        category_ids: int64 [C].
        masks: optional bool [K, H0, W0] in original-image pixels, encoded here as compressed RLE.
    """
    boxes = boxes.astype(np.float64).reshape(-1, 4)
    # Computed in float64 from the float32 corners, exactly as pycocotools is fed by the reference scripts.
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    segmentation = None
    if masks is not None:
        segmentation = np.empty(len(masks), object)
        segmentation[:] = encode_masks(masks)
    return Predictions(np.full(len(boxes), image_id, np.int64), category_ids[labels], xywh,
                       scores.astype(np.float64), segmentation)


def to_coco_results(preds: Predictions) -> list[dict[str, Any]]:
    """A COCO results list: [{image_id, category_id, bbox: [x, y, w, h], score}] in `preds`' order.

    Values are written at full float64 precision, so evaluating the written file gives exactly the
    numbers of the in-memory evaluation.
    """
    bbox = preds.bbox.tolist()
    results = [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(preds.image_id.tolist(), preds.category_id.tolist(), bbox, preds.score.tolist())
    ]
    if preds.segmentation is not None:
        for entry, rle in zip(results, preds.segmentation):
            entry["segmentation"] = rle
    return results


def load_results(path: str | Path, gt: GroundTruth) -> Predictions:
    """Read a COCO results JSON (a list of {image_id, category_id, bbox, score}) and check it against `gt`.

    Image ids may also be given as the images' file stems ("000005"), as VOC results usually are. What
    COCO accepts but is likely a mistake is evaluated with a warning naming the first entry: scores
    outside [0, 1] (only their order matters to AP, but score thresholds such as the confusion matrix's
    assume probabilities) and entries repeated exactly (each copy is a false positive; NMS never emits
    two identical boxes, so they come from a file written or gathered twice).

    Raises:
        UserError: naming the file, and the first offending entry where there is one: a folder, an empty
            or binary file, not JSON, not a list, an empty list, an entry that is not an object, a missing
            key, a value of the wrong type, an unknown image or category id, a non-finite number, a
            negative width or height.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"results={path}: a folder, not a results file (a COCO results JSON)")
    if not path.is_file():
        raise UserError(f"results file not found: {path}")
    data = path.read_bytes()
    if not data.strip():
        raise UserError(f"results={path}: an empty file; expected a JSON list of "
                        "{image_id, category_id, bbox, score}")
    try:
        entries = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"results={path}: not a JSON text file (binary data; a checkpoint is given as "
                        "checkpoint=PATH)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"results={path}: not valid JSON: {e}") from None
    ground_truth_file = isinstance(entries, dict) and "images" in entries
    if isinstance(entries, dict) and "annotations" in entries:
        entries = entries["annotations"]  # a COCO-style file with the detections as annotations
    if not isinstance(entries, list):
        raise UserError(f"results={path}: expected a JSON list of {{image_id, category_id, bbox, score}}, "
                        f"got {type(entries).__name__}")
    if not entries:
        raise UserError(f"results={path}: an empty list, no detection to evaluate (a model that found "
                        "nothing scores 0 without a file)")
    try:
        return parse_results(entries, gt, source=str(path))
    except UserError as e:
        if ground_truth_file and "missing score" in str(e):
            raise UserError(f"{e} (this looks like a COCO ground-truth file: images and annotations without "
                            "scores; give the model's detections)") from None
        raise


def parse_results(entries: list[Any], gt: GroundTruth, source: str = "results") -> Predictions:
    """Validate and convert a COCO results list; see `load_results`."""
    by_name = {name: int(i) for name, i in zip(gt.image_names, gt.image_ids) if name}
    known_images, known_cats = set(gt.image_ids.tolist()), set(gt.category_ids.tolist())
    n = len(entries)
    image_id, category_id = np.zeros(n, np.int64), np.zeros(n, np.int64)
    bbox, score = np.zeros((n, 4)), np.zeros(n)
    seen: dict[tuple[Any, ...], int] = {}
    repeats: list[tuple[int, int]] = []
    segmentation = _segmentations(entries, source)
    for i, entry in enumerate(entries):
        # One pass in Python: the point is to name the first bad entry, which array checks cannot.
        where = f"{source}: entry {i} {_short(entry)}"
        img, cat, box, s = _check_entry(entry, where, gt, by_name, known_images, known_cats)
        key = (img, cat, *box, s)
        if key in seen:
            repeats.append((i, seen[key]))
        seen.setdefault(key, i)
        image_id[i], category_id[i], bbox[i], score[i] = img, cat, box, s
    if repeats:
        i, first = repeats[0]
        log.warning("%s: %d %s an earlier one exactly (first: entry %d %s repeats entry %d); each copy "
                    "counts as a false positive. Written twice, or gathered twice from several processes?",
                    source, len(repeats), "entry repeats" if len(repeats) == 1 else "entries repeat", i,
                    _short(entries[i]), first)
    _warn_on_scores(score, entries, source)
    return Predictions(image_id, category_id, bbox, score, segmentation)


def _segmentations(entries: list[Any], source: str) -> np.ndarray | None:
    """The entries' RLE `segmentation`s (instance masks), None when no entry has one; an entry without
    one among entries with them, or one that is not an RLE, is an error naming it."""
    has = [isinstance(e, dict) and "segmentation" in e for e in entries]
    if not any(has):
        return None
    out = np.empty(len(entries), object)
    for i, entry in enumerate(entries):
        where = f"{source}: entry {i} {_short(entry)}"
        if not has[i]:
            raise UserError(f"{where}: no segmentation, while other entries have one (a results file "
                            "gives masks for every detection or for none)")
        rle = entry["segmentation"]
        size = rle.get("size") if isinstance(rle, dict) else None
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)
                and isinstance(rle.get("counts"), (str, list))):
            raise UserError(f"{where}: segmentation must be an RLE {{size: [height, width], counts}} in "
                            "original-image pixels")
        out[i] = rle
    return out


def _check_entry(entry: Any, where: str, gt: GroundTruth, by_name: dict[str, int], known_images: set[int],
                 known_cats: set[int]) -> tuple[int, int, list[float], float]:
    """One results entry as (image id, category id, xywh box, score), or a UserError naming it."""
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected an object with image_id, category_id, bbox, score")
    missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in entry]
    if missing:
        raise UserError(f"{where}: missing {', '.join(missing)}")
    img = entry["image_id"]
    if isinstance(img, str) and img in by_name:
        img = by_name[img]
    if isinstance(img, bool) or not isinstance(img, int) or img not in known_images:
        raise UserError(f"{where}: image_id {img!r} is not an image of the evaluated set "
                        f"({len(known_images)} images, ids {_id_range(gt.image_ids)})")
    cat = entry["category_id"]
    if isinstance(cat, bool) or not isinstance(cat, int) or cat not in known_cats:
        names = [f"{c} ({n})" for c, n in zip(gt.category_ids.tolist(), gt.category_names)]
        raise UserError(f"{where}: category_id {cat!r} is not a category of the dataset; "
                        f"its categories: {choices_text(names)}")
    box, s = entry["bbox"], entry["score"]
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise UserError(f"{where}: bbox must be [x, y, width, height], four numbers")
    if not _is_number(s):
        raise UserError(f"{where}: score must be a number, got {s!r}")
    if not all(math.isfinite(v) for v in box) or not math.isfinite(s):
        raise UserError(f"{where}: bbox and score must be finite numbers (found NaN or infinity)")
    if box[2] < 0 or box[3] < 0:
        raise UserError(f"{where}: negative width or height; bbox is [x, y, width, height], "
                        "not [x1, y1, x2, y2]")
    return img, cat, box, s


def _warn_on_scores(score: np.ndarray, entries: list[Any], source: str) -> None:
    """Scores outside [0, 1] are allowed (COCO ranks them, nothing more) but named: thresholds assume
    probabilities."""
    outside = np.flatnonzero((score < 0) | (score > 1))
    if len(outside):
        i = int(outside[0])
        log.warning("%s: %d of %d scores are outside [0, 1] (first: entry %d %s); AP only ranks them, but "
                    "score thresholds (the confusion matrix's) assume probabilities", source, len(outside),
                    len(score), i, _short(entries[i]))


def check_predictions(preds: Predictions, gt: GroundTruth, source: str = "predictions") -> None:
    """Array check of predictions made in memory: known ids and finite values. (Inverted boxes from a
    model are evaluated as pycocotools would, overlapping nothing; in a results file they are an error.)"""
    bad = ~np.isin(preds.image_id, gt.image_ids) | ~np.isin(preds.category_id, gt.category_ids)
    bad |= ~np.isfinite(preds.bbox).all(axis=1) | ~np.isfinite(preds.score)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        entry = to_coco_results(preds.select(slice(i, i + 1)))[0]
        parse_results([entry], gt, source=f"{source} (row {i})")  # raises the precise message


def save_results(preds: Predictions, path: str | Path) -> Path:
    """Write `preds` as a COCO results JSON, atomically."""
    from .report import atomic_write_text

    return atomic_write_text(Path(path), json.dumps(to_coco_results(preds)))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(entry: Any) -> str:
    text = json.dumps(entry) if isinstance(entry, (dict, list)) else repr(entry)
    return text if len(text) <= 120 else text[:117] + "..."


def _id_range(ids: np.ndarray) -> str:
    return f"{int(ids.min())}..{int(ids.max())}" if len(ids) else "none"
