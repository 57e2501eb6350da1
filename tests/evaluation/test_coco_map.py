"""COCO mAP: known answers, and the same arrays as pycocotools' COCOeval, bit for bit."""
import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detframe.data import CocoDetection
from detframe.errors import ConfigError
from detframe.evaluation import (
    COCO_METRICS,
    CocoEvaluator,
    GroundTruth,
    Predictions,
    coco_evaluate,
    load_results,
    save_results,
    summarize,
    to_coco_results,
)
from detframe.evaluation.coco_map import AGREEMENT_TOLERANCE, agreement
from detframe.evaluation.synthetic import synthetic_case
from detframe.structures import Detections


class FakeDataset:
    """Two images, one class with non-contiguous id 5: image 1 has two objects, image 2 one."""

    category_ids = [5]

    def to_coco(self):
        return {
            "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 5,
                 "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 5,
                 "bbox": [50, 50, 40, 40], "area": 1600, "iscrowd": 0},
                {"id": 3, "image_id": 2, "category_id": 5,
                 "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0},
            ],
            "categories": [{"id": 5, "name": "thing"}],
        }


def dets(boxes, scores, labels=None):
    labels = torch.zeros(len(scores), dtype=torch.long) if labels is None else torch.tensor(labels)
    return Detections(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(scores), labels)


def pycocotools_eval(gt_dict, preds):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_dict)
        gt.createIndex()
        e = COCOeval(gt, gt.loadRes(to_coco_results(preds)), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def assert_identical(gt_dict, preds):
    """All 12 numbers and every entry of precision [T,R,K,A,M] and recall [T,K,A,M] equal pycocotools'."""
    ours = coco_evaluate(GroundTruth.from_coco(gt_dict), preds)
    ref = pycocotools_eval(gt_dict, preds)
    np.testing.assert_array_equal(ours.precision, ref.eval["precision"])
    np.testing.assert_array_equal(ours.recall, ref.eval["recall"])
    stats = summarize(ours)
    np.testing.assert_array_equal([stats[k] for k in COCO_METRICS], ref.stats)
    return stats


def test_all_correct_gives_one():
    ev = CocoEvaluator(FakeDataset())
    ev.process([1, 2], [dets([[10, 10, 40, 40], [50, 50, 90, 90]], [0.9, 0.8]),
                        dets([[0, 0, 50, 50]], [0.7])])
    m = ev.compute()
    assert m["coco/AP"] == pytest.approx(1.0) and m["coco/AP50"] == pytest.approx(1.0)
    assert m["coco/AR100"] == pytest.approx(1.0)
    assert set(m) == {f"coco/{k}" for k in COCO_METRICS}


def test_half_found_no_false_positive():
    ev = CocoEvaluator(FakeDataset())
    ev.process([1, 2], [dets([[10, 10, 40, 40]], [0.9]), dets([], [])])
    # recall reaches 1/3 with precision 1: 101-point interpolation counts recall thresholds 0..0.33
    assert ev.compute()["coco/AP50"] == pytest.approx(34 / 101)


def test_no_detections_and_reset():
    ev = CocoEvaluator(FakeDataset())
    ev.process([1], [dets([[10, 10, 40, 40]], [0.9])])
    ev.reset()
    m = ev.compute()
    # pycocotools' convention: 0 where there is ground truth, -1 where a size has none (no large objects here)
    assert m["coco/AP"] == 0.0 and m["coco/APs"] == 0.0 and m["coco/APl"] == -1.0 and m["coco/ARl"] == -1.0


def hand_case():
    """Non-contiguous category ids 3/17/90 plus 40 without annotations, a crowd region, an image without
    objects, an image without detections, duplicates, a detection on the crowd, equal scores."""
    images = [{"id": i, "width": 200, "height": 200} for i in (7, 2, 11, 30)]
    anns = [
        (2, 3, [10, 10, 40, 40], 0), (2, 3, [100, 100, 20, 20], 0), (2, 17, [60, 10, 100, 120], 0),
        (7, 90, [0, 0, 150, 150], 1), (7, 90, [20, 20, 30, 30], 0), (7, 3, [5, 150, 8, 8], 0),
        (11, 17, [50, 50, 50, 50], 0),  # image 11 gets no detection
    ]  # image 30 has no objects
    gt = {"images": images, "categories": [{"id": c, "name": f"c{c}"} for c in (90, 3, 17, 40)],
          "annotations": [{"id": n + 1, "image_id": i, "category_id": c, "bbox": b,
                           "area": b[2] * b[3] * 0.9, "iscrowd": z}
                          for n, (i, c, b, z) in enumerate(anns)]}
    rows = [
        (2, 3, [11, 11, 39, 41], 0.9), (2, 3, [10, 12, 40, 38], 0.9), (2, 3, [100, 101, 21, 19], 0.6),
        (2, 17, [62, 8, 98, 118], 0.8), (2, 17, [0, 0, 30, 30], 0.8), (7, 90, [10, 10, 100, 100], 0.95),
        (7, 90, [21, 19, 29, 31], 0.7), (7, 3, [5, 150, 9, 8], 0.3), (30, 40, [0, 0, 20, 20], 0.99),
        (30, 3, [50, 50, 50, 50], 0.5),
    ]
    preds = Predictions(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                        np.array([r[2] for r in rows], float), np.array([r[3] for r in rows]))
    return gt, preds


def test_hand_case_identical_to_pycocotools():
    gt, preds = hand_case()
    stats = assert_identical(gt, preds)
    assert 0.3 < stats["AP50"] < 1 and stats["APl"] > -1


@pytest.mark.parametrize("seed", range(8))
def test_random_cases_identical_to_pycocotools(seed):
    # 1 class with 150 detections per image exercises the 100-per-(image, class) cut; quantised cases tie
    classes, per_image = [(1, 150), (3, 20), (8, 40), (4, 5)][seed % 4]
    gt, preds = synthetic_case(num_images=20 + 3 * seed, num_classes=classes, dets_per_image=per_image,
                               crowd_fraction=0.1, quantize=seed % 2 == 1, seed=seed)
    if seed == 3:
        gt["annotations"][0]["id"] = 0  # pycocotools reads a match to annotation id 0 as "no match"; so do we
    assert_identical(gt, preds)


def test_per_class_table_matches_pycocotools_per_category():
    gt, preds = synthetic_case(num_images=20, num_classes=3, seed=4)
    ev = CocoEvaluator(type("D", (), {"to_coco": lambda self: gt,
                                      "category_ids": [c["id"] for c in gt["categories"]]})())
    ev.evaluate(preds)
    rows = {r[0]: r for r in ev.class_table().rows}
    for cat in gt["categories"]:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = copy.deepcopy(gt)
            coco.createIndex()
            e = COCOeval(coco, coco.loadRes(to_coco_results(preds)), "bbox")
            e.params.catIds = [cat["id"]]
            e.evaluate()
            e.accumulate()
            e.summarize()
        ap = rows[cat["name"]][2]
        assert ap == e.stats[0] or (ap < 0 and e.stats[0] < 0)


def test_same_numbers_as_pycocotools_through_the_evaluator(tiny_shapes):
    ds = CocoDetection(str(tiny_shapes / "annotations/instances_val.json"), str(tiny_shapes / "JPEGImages"))
    rng = np.random.default_rng(0)
    ev = CocoEvaluator(ds)
    results = []
    for rec in ds.records:
        # jittered ground truth plus random false positives, labels partly wrong
        n = len(rec.boxes)
        boxes = np.concatenate([rec.boxes + rng.normal(0, 4, rec.boxes.shape),
                                rng.uniform(0, 150, (5, 2)).repeat(2, 1) + [0, 0, 30, 40]])
        labels = np.concatenate([np.where(rng.random(n) < 0.8, rec.labels, (rec.labels + 1) % 4),
                                 rng.integers(0, 4, 5)])
        scores = rng.random(len(boxes))
        ev.process([rec.image_id], [Detections(torch.tensor(boxes).float(), torch.tensor(scores).float(),
                                               torch.tensor(labels))])
        for b, s, lab in zip(boxes.astype(np.float32), scores.astype(np.float32), labels):
            results.append({"image_id": rec.image_id, "category_id": ds.category_ids[lab],
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                            "score": float(s)})
    ours = ev.compute()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tiny_shapes / "annotations/instances_val.json"))
        e = COCOeval(gt, gt.loadRes(results), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    np.testing.assert_array_equal([ours[f"coco/{k}"] for k in COCO_METRICS], e.stats)
    assert 0.05 < ours["coco/AP50"] < 1.0


def test_exported_results_are_the_official_format_and_evaluate_the_same(tmp_path):
    gt, preds = hand_case()
    ds = type("D", (), {"to_coco": lambda self: gt, "category_ids": [90, 3, 17, 40]})()
    ev = CocoEvaluator(ds)
    # the model's view: xyxy boxes, labels 0..3 -> the dataset's own ids 90, 3, 17, 40
    ev.process([2], [dets([[10, 10, 50, 50]], [0.9], labels=[1])])
    metrics = ev.compute()
    path = save_results(ev.predictions, tmp_path / "dets.json")
    entries = json.loads(path.read_text())
    assert entries == [{"image_id": 2, "category_id": 3, "bbox": [10.0, 10.0, 40.0, 40.0],
                        "score": pytest.approx(0.9)}]
    again = CocoEvaluator(ds)
    assert again.evaluate(load_results(path, again.gt)) == metrics


def test_backends_agree():
    gt, preds = synthetic_case(num_images=25, num_classes=4, seed=11)
    ds = type("D", (), {"to_coco": lambda self: gt, "category_ids": [c["id"] for c in gt["categories"]]})()
    ours = CocoEvaluator(ds).evaluate(preds)
    assert CocoEvaluator(ds, backend="pycocotools").evaluate(preds) == ours
    assert CocoEvaluator(ds, cross_check=True).evaluate(preds) == ours  # raises on any difference
    assert agreement("detframe") == 0.0
    with pytest.raises(ConfigError, match="Did you mean 'pycocotools'"):
        CocoEvaluator(ds, backend="pycocotool")


def test_faster_coco_eval_backend_is_used_when_it_agrees():
    pytest.importorskip("faster_coco_eval")
    # faster-coco-eval rounds some values differently in the last bit (~1e-16): not bit-identical
    assert agreement("faster_coco_eval") <= AGREEMENT_TOLERANCE
    gt, preds = synthetic_case(num_images=25, num_classes=4, seed=12)
    ds = type("D", (), {"to_coco": lambda self: gt, "category_ids": [c["id"] for c in gt["categories"]]})()
    ev = CocoEvaluator(ds, backend="faster_coco_eval")
    assert ev.backend == "faster_coco_eval"
    theirs, ours = ev.evaluate(preds), CocoEvaluator(ds).evaluate(preds)
    assert max(abs(theirs[k] - ours[k]) for k in ours) <= AGREEMENT_TOLERANCE
