"""VOC AP: hand-computed cases and a randomised comparison with the devkit-style reference."""
import math

import numpy as np
import pytest

from detframe.evaluation import GroundTruth, Predictions, VOCEvaluator, voc_evaluate
from detframe.evaluation.synthetic import synthetic_case

from .voc_reference import voc_eval_reference


def case(gt_boxes, dets, difficult=(), num_classes=2):
    """gt_boxes: [(image_id, class_id, xyxy)]; dets: [(image_id, class_id, xyxy, score)];
    classes 1..num_classes."""
    images = sorted({g[0] for g in gt_boxes} | {d[0] for d in dets} | {1})
    gt = {
        "images": [{"id": i, "width": 100, "height": 100, "file_name": f"{i:06d}.jpg"} for i in images],
        "annotations": [
            {"id": n + 1, "image_id": i, "category_id": c, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
             "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": int(n in difficult)}
            for n, (i, c, b) in enumerate(gt_boxes)
        ],
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, num_classes + 1)],
    }
    preds = Predictions(
        np.array([d[0] for d in dets], np.int64), np.array([d[1] for d in dets], np.int64),
        np.array([[d[2][0], d[2][1], d[2][2] - d[2][0], d[2][3] - d[2][1]] for d in dets],
                 float).reshape(-1, 4),
        np.array([d[3] for d in dets], float),
    )
    return GroundTruth.from_coco(gt), preds


BOX_A, BOX_B = [0, 0, 10, 10], [50, 50, 70, 70]


@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_all_correct_is_one_and_nothing_is_zero(metric):
    gt, preds = case([(1, 1, BOX_A), (1, 1, BOX_B)], [(1, 1, BOX_A, 0.9), (1, 1, BOX_B, 0.8)], num_classes=1)
    assert voc_evaluate(gt, preds, metric=metric).mean_ap == pytest.approx(1.0)  # 11 x 1/11: 1 + 2e-16
    assert voc_evaluate(gt, preds.select(np.zeros(2, bool)), metric=metric).mean_ap == 0.0


def test_duplicate_is_a_false_positive():
    # ranked: tp (A), duplicate of A -> fp, tp (B): recall .5 .5 1, precision 1 .5 .667
    gt, preds = case([(1, 1, BOX_A), (1, 1, BOX_B)],
                     [(1, 1, BOX_A, 0.9), (1, 1, BOX_A, 0.8), (1, 1, BOX_B, 0.7)], num_classes=1)
    voc12 = voc_evaluate(gt, preds, metric="voc12")
    assert voc12.ap[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # 11-point: thresholds 0..0.5 see precision 1, thresholds 0.6..1.0 see 2/3
    assert voc_evaluate(gt, preds, metric="voc07").ap[0] == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert voc12.ranked[2].tolist() == [True, False, True]
    assert voc12.ranked[3].tolist() == [False, True, False]


def test_difficult_is_neither_true_nor_false_positive():
    # the 0.9 detection hits the difficult box (its best overlap): ignored; the 0.8 one finds the normal box
    gt, preds = case([(1, 1, BOX_A), (1, 1, BOX_B)],
                     [(1, 1, BOX_B, 0.9), (1, 1, BOX_A, 0.8)], difficult={1}, num_classes=1)
    r = voc_evaluate(gt, preds)
    assert r.ap[0] == pytest.approx(1.0) and r.num_pos[0] == 1
    assert not r.ranked[2][0] and not r.ranked[3][0]  # neither
    # a missed difficult box costs nothing either
    gt, preds = case([(1, 1, BOX_A), (1, 1, BOX_B)], [(1, 1, BOX_A, 0.8)], difficult={1}, num_classes=1)
    assert voc_evaluate(gt, preds).ap[0] == pytest.approx(1.0)


def test_class_without_ground_truth_is_left_out_of_the_mean():
    gt, preds = case([(1, 1, BOX_A)], [(1, 1, BOX_A, 0.9), (1, 2, BOX_B, 0.95)], num_classes=2)
    r = voc_evaluate(gt, preds)
    assert r.ap[0] == pytest.approx(1.0) and math.isnan(r.ap[1]) and r.num_dets[1] == 1
    assert r.mean_ap == r.ap[0]


def test_score_ties_follow_image_order():
    # equal scores: image 1's true positive ranks before image 2's false positive
    dets = [(2, 1, [30, 30, 40, 40], 0.5), (1, 1, BOX_A, 0.5), (2, 1, BOX_B, 0.4)]
    gt, preds = case([(1, 1, BOX_A), (2, 1, BOX_B)], dets, num_classes=1)
    assert voc_evaluate(gt, preds, metric="voc12").ap[0] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_iou_threshold_is_inclusive_and_configurable():
    gt, preds = case([(1, 1, BOX_A)], [(1, 1, [0, 0, 10, 5], 0.9)], num_classes=1)  # IoU exactly 0.5
    assert voc_evaluate(gt, preds, iou_threshold=0.5).ap[0] == pytest.approx(1.0)
    assert voc_evaluate(gt, preds, iou_threshold=0.6).ap[0] == 0.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_identical_to_the_reference_on_random_cases(seed, metric):
    gt_dict, preds = synthetic_case(num_images=25, num_classes=4, dets_per_image=15, crowd_fraction=0.15,
                                    quantize=seed % 2 == 1, seed=seed)
    gt = GroundTruth.from_coco(gt_dict)
    iou = (0.5, 0.3, 0.7)[seed % 3]
    ours = voc_evaluate(gt, preds, iou_threshold=iou, metric=metric)
    dets = list(zip(preds.image_id.tolist(), preds.category_id.tolist(), preds.bbox.tolist(),
                    preds.score.tolist()))
    ref = voc_eval_reference(gt_dict, dets, gt.category_ids.tolist(), gt.image_ids.tolist(), iou,
                             metric == "voc07")
    expected = np.array([ref[c] for c in gt.category_ids.tolist()])
    np.testing.assert_array_equal(ours.ap, expected)  # bit for bit, NaN where a class has no ground truth
    assert np.isnan(expected).sum() == 1 and 0.05 < ours.mean_ap < 1


def test_evaluator_reports_map_and_table(tiny_shapes):
    import torch

    from detframe.data import VOCDetection
    from detframe.structures import Detections

    ds = VOCDetection(str(tiny_shapes), "val", class_names=["circle", "square", "triangle", "star"])
    ev = VOCEvaluator(ds, prefix="voc12", metric="voc12")
    for rec in ds.records:  # the ground truth itself: every class found, AP 1
        ev.process([rec.image_id], [Detections(torch.tensor(rec.boxes), torch.ones(len(rec.boxes)),
                                               torch.tensor(rec.labels))])
    metrics = ev.compute()
    assert metrics == {"voc12/mAP": 1.0}
    table = ev.class_table()
    assert [r[0] for r in table.rows] == ["circle", "square", "triangle", "star", "mAP"]
    assert "| circle |" in table.to_markdown() and "AP" in table.to_text()
