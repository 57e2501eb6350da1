"""IoU k-means (YOLOv2's dimension clusters) and tools/anchors.py."""
import numpy as np
import pytest

from detframe.models.priors.kmeans import coverage, iou_kmeans, wh_iou

from ..conftest import run_tool


def test_wh_iou_known_values():
    boxes = np.array([[10.0, 10.0], [20.0, 5.0]])
    anchors = np.array([[10.0, 10.0], [5.0, 20.0]])
    # 10x10 vs 5x20 and 20x5 vs 10x10: overlap 50, union 100 + 100 - 50; 20x5 vs 5x20: overlap 25, union 175
    np.testing.assert_allclose(wh_iou(boxes, anchors), [[1.0, 50 / 150], [50 / 150, 25 / 175]])


def test_recovers_three_well_separated_shapes():
    rng = np.random.default_rng(0)
    centres = np.array([[12.0, 20.0], [60.0, 40.0], [150.0, 200.0]])
    boxes = np.concatenate([c * rng.uniform(0.95, 1.05, size=(50, 2)) for c in centres])
    anchors = iou_kmeans(boxes, 3, restarts=3, seed=1)
    np.testing.assert_allclose(anchors, centres, rtol=0.03)  # sorted by area, like the centres
    mean_iou, covered = coverage(boxes, anchors)
    assert mean_iou > 0.9 and covered == 1.0


def test_more_clusters_never_cover_worse():
    rng = np.random.default_rng(3)
    boxes = rng.lognormal(mean=3.5, sigma=0.6, size=(300, 2))
    scores = [coverage(boxes, iou_kmeans(boxes, k, restarts=3))[0] for k in (1, 3, 6, 9)]
    assert scores == sorted(scores) and scores[-1] > scores[0] + 0.1


def test_too_few_boxes():
    with pytest.raises(ValueError, match="at least k=9"):
        iou_kmeans(np.ones((4, 2)), 9)


@pytest.mark.slow
def test_anchors_tool_on_a_dataset(tiny_shapes, tmp_path):
    result = run_tool("anchors.py", ["model=yolov3_d53_small", f"data.root={tiny_shapes}",
                                     "pipeline.size=160", "k=6"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ("k-means (distance 1 - IoU), k=6" in out
            and "the config's current anchors (YOLOPriorGenerator, 9 shapes)" in out)
    assert out.count("mean best IoU") == 2
    assert "model.head.prior_generator.base_sizes=[[[" in out  # 6 anchors over the 3 levels: 2 each
    new, current = [float(line.split("mean best IoU ")[1].split(";")[0])
                    for line in out.splitlines() if "mean best IoU" in line]
    assert 0 < current <= 1 and new > current  # clusters of this set's boxes beat COCO's shapes on it


@pytest.mark.slow
def test_anchors_tool_rejects_a_bad_k(tmp_path):
    result = run_tool("anchors.py", ["k=many"], tmp_path)
    assert result.returncode == 2 and "k, restarts and seed take integers" in result.stderr
