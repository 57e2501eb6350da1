import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detframe.data import CocoDetection
from detframe.evaluation import COCO_METRICS, CocoEvaluator
from detframe.structures import Detections


class FakeDataset:
    """Two images, one class with non-contiguous id 5: image 1 has two objects, image 2 one."""

    category_ids = [5]

    def to_coco(self):
        return {
            "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 5, "bbox": [50, 50, 40, 40], "area": 1600, "iscrowd": 0},
                {"id": 3, "image_id": 2, "category_id": 5, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0},
            ],
            "categories": [{"id": 5, "name": "thing"}],
        }


def dets(boxes, scores):
    return Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(scores), torch.zeros(len(scores), dtype=torch.long))


def test_all_correct_gives_one():
    ev = CocoEvaluator(FakeDataset())
    ev.process([1, 2], [dets([[10, 10, 40, 40], [50, 50, 90, 90]], [0.9, 0.8]), dets([[0, 0, 50, 50]], [0.7])])
    m = ev.compute()
    assert m["coco/AP"] == pytest.approx(1.0) and m["coco/AP50"] == pytest.approx(1.0) and m["coco/AR100"] == pytest.approx(1.0)
    assert set(m) == {f"coco/{k}" for k in COCO_METRICS}


def test_half_found_no_false_positive():
    ev = CocoEvaluator(FakeDataset())
    ev.process([1, 2], [dets([[10, 10, 40, 40]], [0.9]), dets([], [])])
    # recall reaches 1/3 with precision 1: 101-point interpolation counts recall thresholds 0..0.33
    assert ev.compute()["coco/AP50"] == pytest.approx(34 / 101)


def test_no_detections_is_zero_and_reset_clears():
    ev = CocoEvaluator(FakeDataset())
    ev.process([1], [dets([[10, 10, 40, 40]], [0.9])])
    ev.reset()
    assert all(v == 0.0 for v in ev.compute().values())


def test_same_numbers_as_pycocotools(tiny_shapes):
    ds = CocoDetection(str(tiny_shapes / "annotations/instances_val.json"), str(tiny_shapes / "JPEGImages"))
    rng = np.random.default_rng(0)
    ev = CocoEvaluator(ds)
    results = []
    for rec in ds.records:
        # jittered ground truth plus random false positives, labels partly wrong
        n = len(rec.boxes)
        boxes = np.concatenate([rec.boxes + rng.normal(0, 4, rec.boxes.shape), rng.uniform(0, 150, (5, 2)).repeat(2, 1) + [0, 0, 30, 40]])
        labels = np.concatenate([np.where(rng.random(n) < 0.8, rec.labels, (rec.labels + 1) % 4), rng.integers(0, 4, 5)])
        scores = rng.random(len(boxes))
        ev.process([rec.image_id], [Detections(torch.tensor(boxes).float(), torch.tensor(scores).float(), torch.tensor(labels))])
        for b, s, l in zip(boxes.astype(np.float32), scores.astype(np.float32), labels):
            results.append({"image_id": rec.image_id, "category_id": ds.category_ids[l],
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])], "score": float(s)})
    ours = ev.compute()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tiny_shapes / "annotations/instances_val.json"))
        e = COCOeval(gt, gt.loadRes(results), "bbox")
        e.evaluate(); e.accumulate(); e.summarize()
    np.testing.assert_allclose([ours[f"coco/{k}"] for k in COCO_METRICS], e.stats, atol=1e-12)
    assert 0.05 < ours["coco/AP50"] < 1.0
