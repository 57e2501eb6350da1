"""Confusion matrix on a hand-made case with a known answer."""
import numpy as np

from detframe.evaluation import GroundTruth, Predictions, confusion_matrix


def test_known_matrix():
    # classes 5 ("a") and 8 ("b"); image 1: a, b, a(crowd); image 2: b
    boxes = [(1, 5, [0, 0, 10, 10], 0), (1, 8, [20, 20, 10, 10], 0), (1, 5, [60, 60, 30, 30], 1),
             (2, 8, [0, 0, 10, 10], 0)]
    gt = GroundTruth.from_coco({
        "images": [{"id": 1}, {"id": 2}],
        "categories": [{"id": 5, "name": "a"}, {"id": 8, "name": "b"}],
        "annotations": [{"id": n + 1, "image_id": i, "category_id": c, "bbox": b,
                         "area": b[2] * b[3], "iscrowd": z}
                        for n, (i, c, b, z) in enumerate(boxes)],
    })
    rows = [
        (1, 5, [0, 0, 10, 10], 0.9),     # a found as a
        (1, 5, [1, 0, 10, 10], 0.8),     # duplicate of the same box: a false detection of a
        (1, 5, [20, 20, 10, 10], 0.7),   # b detected as a
        (1, 8, [62, 62, 26, 26], 0.9),   # on the crowd region: left out
        (1, 8, [200, 0, 5, 5], 0.6),     # nothing there: a false detection of b
        (2, 8, [0, 0, 10, 10], 0.1),     # below the score threshold: image 2's b is missed
    ]
    preds = Predictions(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                        np.array([r[2] for r in rows], float), np.array([r[3] for r in rows]))
    m = confusion_matrix(gt, preds, score_threshold=0.25, iou_threshold=0.5)
    # rows: true a, true b, background; columns: predicted a, predicted b, background (missed)
    np.testing.assert_array_equal(m, [[1, 0, 0], [1, 0, 1], [1, 1, 0]])
    m = confusion_matrix(gt, preds, score_threshold=0.05, iou_threshold=0.5)
    np.testing.assert_array_equal(m, [[1, 0, 0], [1, 1, 0], [1, 1, 0]])
