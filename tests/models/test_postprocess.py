"""`postprocess_dense` and `preselect_priors` on hand-made scores and boxes with known answers."""
import pytest
import torch

from detframe.models.postprocess import postprocess_dense, preselect_priors


def disjoint_boxes(n: int) -> torch.Tensor:
    """n 10x10 boxes 20 px apart along x: no two overlap, so NMS keeps them all."""
    x = torch.arange(n, dtype=torch.float32) * 20
    return torch.stack([x, torch.zeros(n), x + 10, torch.full((n,), 10.0)], 1)


def run(scores, boxes, image_size=(1000, 1000), **kwargs):
    args = {"score_threshold": 0.05, "topk_candidates": None, "nms_iou": 0.5, "max_detections": 100, **kwargs}
    return postprocess_dense(scores, boxes, image_size, **args)


def test_threshold_drops_scores_not_above_it():
    scores = torch.tensor([[0.9, 0.04], [0.05, 0.3]])  # 0.05 is not above 0.05
    det = run(scores, disjoint_boxes(2))
    assert det.scores.tolist() == pytest.approx([0.9, 0.3])
    assert det.labels.tolist() == [0, 1] and det.boxes.tolist() == disjoint_boxes(2).tolist()


def test_pairs_topk_is_taken_per_level():
    # Level 0: 3 priors, level 1: 2 priors, one class. Top 2 of each level: 4 detections, where a global
    # top 2 would keep only 0.9 and 0.8.
    levels = [torch.tensor([[0.9], [0.8], [0.7]]), torch.tensor([[0.6], [0.5]])]
    det = run(levels, disjoint_boxes(5), topk_candidates=2, topk_mode="pairs")
    assert det.scores.tolist() == pytest.approx([0.9, 0.8, 0.6, 0.5])
    assert det.boxes[:, 0].tolist() == [0, 20, 60, 80]  # priors 0, 1, 3, 4: level 1 numbered after level 0


def test_pairs_topk_ranks_prior_class_pairs_together():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    det = run(scores, disjoint_boxes(3), topk_candidates=2, topk_mode="pairs")
    assert det.scores.tolist() == pytest.approx([0.9, 0.8]) and det.labels.tolist() == [0, 0]


def test_per_class_topk_keeps_the_best_priors_of_each_class():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    det = run(scores, disjoint_boxes(3), topk_candidates=1, topk_mode="per_class")
    assert det.scores.tolist() == pytest.approx([0.9, 0.3]) and det.labels.tolist() == [0, 1]
    assert det.boxes[:, 0].tolist() == [0, 40]  # priors 0 and 2


def test_per_class_topk_then_threshold_is_thresholding_first():
    scores = torch.tensor([[0.9, 0.01], [0.02, 0.2], [0.7, 0.03]])
    det = run(scores, disjoint_boxes(3), topk_candidates=2, topk_mode="per_class")
    assert sorted(det.scores.tolist()) == pytest.approx([0.2, 0.7, 0.9])


def test_nms_is_class_aware():
    # Boxes 0 and 1 overlap (IoU 0.91) with different classes: both kept. Box 2 overlaps box 0 with
    # its class and a lower score: suppressed.
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 11], [0.0, 0, 11, 10]])
    scores = torch.tensor([[0.9, 0.0], [0.0, 0.8], [0.7, 0.0]])
    det = run(scores, boxes)
    assert det.scores.tolist() == pytest.approx([0.9, 0.8]) and det.labels.tolist() == [0, 1]
    assert det.boxes.tolist() == boxes[:2].tolist()


def test_max_detections_keeps_the_best():
    scores = torch.tensor([[0.2], [0.9], [0.5], [0.7], [0.1]])
    det = run(scores, disjoint_boxes(5), max_detections=3)
    assert det.scores.tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert det.boxes[:, 0].tolist() == [20, 60, 40]


def test_boxes_are_clipped_to_the_image_then_mapped_to_original_pixels():
    # Input image 30 high x 40 wide; the box spills over the top-left and the right.
    boxes = torch.tensor([[-5.0, -5.0, 50.0, 20.0]])
    det = run(torch.tensor([[0.9]]), boxes, image_size=(30, 40))
    assert det.boxes.tolist() == [[0.0, 0.0, 40.0, 20.0]]
    # A resize by (sx, sy) = (0.5, 2) and a letterbox offset (4, 6): orig = (x - offset) / scale, then
    # clipped to the original 100 high x 50 wide.
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    det = run(torch.tensor([[0.9]]), boxes, scale=(0.5, 2.0), offset=(4.0, 6.0), orig_size=(100, 50))
    assert det.boxes.tolist() == [[12.0, 7.0, 50.0, 17.0]]  # x2 = (30 - 4) / 0.5 = 52 -> 50


def test_without_orig_size_boxes_stay_in_input_pixels():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    det = run(torch.tensor([[0.9]]), boxes, scale=(0.5, 2.0), offset=(4.0, 6.0))
    assert det.boxes.tolist() == boxes.tolist()


def test_only_candidates_are_decoded_with_their_prior_indices():
    calls = []

    def decode(index):
        calls.append(index.tolist())
        return disjoint_boxes(5)[index]

    levels = [torch.tensor([[0.01], [0.8], [0.7]]), torch.tensor([[0.6], [0.02]])]
    det = run(levels, decode, topk_candidates=1)
    assert calls == [[1], [3]]  # one call per level, global prior numbers
    assert det.boxes[:, 0].tolist() == [20, 60]


def test_no_nms_keeps_overlapping_boxes_best_first():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10], [1.0, 1, 10, 10]])
    det = run(torch.tensor([[0.3], [0.9], [0.6]]), boxes, nms_iou=None)
    assert det.scores.tolist() == pytest.approx([0.9, 0.6, 0.3])


def test_suppress_replaces_nms():
    boxes = disjoint_boxes(3)
    seen = []

    def keep_last(b, s, labels):
        seen.append((b.shape, s.tolist(), labels.tolist()))
        return torch.tensor([2])

    det = run(torch.tensor([[0.3, 0.0], [0.9, 0.0], [0.0, 0.6]]), boxes, suppress=keep_last)
    assert seen == [((3, 4), pytest.approx([0.3, 0.9, 0.6]), [0, 0, 1])]
    assert det.scores.tolist() == pytest.approx([0.6]) and det.labels.tolist() == [1]


def test_no_candidate_gives_empty_detections():
    levels = [torch.full((4, 3), 0.01), torch.full((2, 3), 0.02)]
    det = run(levels, disjoint_boxes(6), topk_candidates=2, orig_size=(10, 10))
    assert det.boxes.shape == (0, 4) and det.boxes.dtype == torch.float32
    assert det.scores.shape == (0,) and det.labels.dtype == torch.int64
    det = run(torch.full((4, 3), 0.01), disjoint_boxes(4), topk_candidates=2, topk_mode="per_class")
    assert len(det) == 0


def test_unknown_topk_mode_is_refused():
    with pytest.raises(ValueError, match="topk_mode"):
        run(torch.tensor([[0.9]]), disjoint_boxes(1), topk_mode="per_level")


def test_preselect_priors_keeps_the_k_best_above_the_threshold():
    obj = torch.tensor([0.1, 0.5, 0.002, 0.9, 0.3])
    assert preselect_priors(obj, 0.005, 3).tolist() == [3, 1, 4]
    assert preselect_priors(obj, 0.005, 10).tolist() == [3, 1, 4, 0]
    assert preselect_priors(obj, 0.95, 3).tolist() == []
