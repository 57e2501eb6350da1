"""SimOTA on hand-made points, predictions and objects with known answers; the batch at once equals each
image alone."""
import math

import pytest
import torch
import torch.nn.functional as F

from detframe.models.assigners import IGNORED, NEGATIVE, SimOTAAssigner
from detframe.models.assigners.simota import pairwise_iou


def assign(points, pred_boxes, gt_boxes, labels=None, ignore=None, scores=None, stride=8.0):
    """One image: points [P, 2], pred boxes [P, 4], objects [M, 4] -> (gt_index [P], iou [P])."""
    points, pred_boxes, gt_boxes = (torch.tensor(x, dtype=torch.float32)
                                    for x in (points, pred_boxes, gt_boxes))
    m = len(gt_boxes)
    labels = torch.tensor(labels or [0] * m)
    scores = torch.full((len(points), 1), 0.5) if scores is None else scores
    result = SimOTAAssigner()(
        points, torch.full((len(points),), stride), scores[None], pred_boxes[None], gt_boxes[None],
        labels[None], torch.ones(1, m, dtype=torch.bool), None if ignore is None else torch.tensor([ignore]))
    return result.gt_index[0].tolist(), result.iou[0]


def test_dynamic_k_takes_the_best_fitting_points_in_the_region_only():
    gt = [[0, 0, 32, 32]]
    # IoU with the object 0.9, 0.6, 0.3, 0.2 (boxes inside it, shortened), then a perfect box at a point
    # 84 px from the centre (outside box and 2.5-stride square): it must neither match nor count in k.
    preds = [[0, 0, 32, 32 * r] for r in (0.9, 0.6, 0.3, 0.2)] + [[0, 0, 32, 32]]
    index, iou = assign([[4, 4], [12, 12], [20, 20], [28, 28], [100, 100]], preds, gt)
    assert index == [0, 0, NEGATIVE, NEGATIVE, NEGATIVE]  # k = int(0.9 + 0.6 + 0.3 + 0.2) = 2
    assert iou.tolist() == pytest.approx([0.9, 0.6, 0, 0, 0], abs=1e-5)


def test_points_in_box_and_centre_beat_better_points_in_one_region_only():
    gt = [[0, 0, 200, 200]]  # centre (100, 100); the centre square has half-side 2.5 x 8 = 20 px
    preds = [[0, 0, 200, 200 * 0.9], [0, 0, 200, 200 * 0.3]]
    index, _ = assign([[10, 10], [100, 100]], preds, gt)  # in the box only; in both
    assert index == [NEGATIVE, 0]  # k = int(1.2) = 1: the 1e5 outside cost decides


def test_k_is_at_least_one_and_a_shared_point_goes_to_its_cheapest_object():
    # A and B both take only the point at (20, 20), whose box is exactly A (IoU 1 with A, 576 / 1472 with
    # B); B's own candidate at (36, 36) fits it worse (IoU 0.2), so B takes the shared point and loses it.
    gt = [[0, 0, 32, 32], [8, 8, 40, 40]]
    preds = [[0, 0, 32, 32], [8, 8, 40, 8 + 32 * 0.2]]
    index, iou = assign([[20, 20], [36, 36]], preds, gt)
    assert index == [0, NEGATIVE]
    assert iou.tolist() == pytest.approx([1.0, 0.0])
    # Without overlap in the predictions k is still 1: each object gets its cheapest point.
    index, iou = assign([[4, 4], [60, 60]], [[100, 100, 101, 101]] * 2, [[0, 0, 16, 16], [50, 50, 70, 70]])
    assert index == [0, 1] and iou.tolist() == [0.0, 0.0]


def test_points_won_by_an_ignored_object_are_ignored():
    gt = [[0, 0, 32, 32], [100, 100, 132, 132]]
    preds = [[0, 0, 32, 32], [100, 100, 132, 132], [300, 300, 310, 310]]
    index, _ = assign([[16, 16], [116, 116], [305, 305]], preds, gt, ignore=[False, True])
    assert index == [0, IGNORED, NEGATIVE]


def test_class_cost_is_the_bce_summed_over_classes():
    scores = torch.rand(2, 5, 3) * 0.98 + 0.01
    labels = torch.tensor([[2, 0], [1, 1]])
    cost = SimOTAAssigner._class_cost(scores, labels)  # [B, M, P]
    onehot = F.one_hot(labels, 3).float()[:, :, None].expand(-1, -1, 5, -1)
    expected = F.binary_cross_entropy(scores[:, None].expand(-1, 2, -1, -1), onehot, reduction="none").sum(-1)
    torch.testing.assert_close(cost, expected, rtol=1e-5, atol=1e-5)
    # the class of the object matters: a point confident in class 2 is cheap for object 0 of image 0 only
    scores = torch.tensor([[[0.01, 0.01, 0.99]]])
    cost = SimOTAAssigner._class_cost(scores, torch.tensor([[2, 0]]))
    assert cost[0, 0, 0] < 0.1 < math.log(100) < cost[0, 1, 0]


def random_image(generator, num_objects, num_points=60, size=96.0):
    xy = torch.rand(num_objects, 2, generator=generator) * size * 0.7
    wh = torch.rand(num_objects, 2, generator=generator) * size * 0.4 + 8
    gt = torch.cat((xy, xy + wh), dim=1)
    jitter = torch.randn(num_points, 4, generator=generator) * 6
    pred = gt[torch.randint(0, max(num_objects, 1), (num_points,), generator=generator)] + jitter \
        if num_objects else torch.rand(num_points, 4, generator=generator) * size
    pred = torch.cat((pred[:, :2], torch.maximum(pred[:, 2:], pred[:, :2] + 1)), dim=1)
    labels = torch.randint(0, 3, (num_objects,), generator=generator)
    ignore = torch.rand(num_objects, generator=generator) < 0.2
    scores = torch.rand(num_points, 3, generator=generator)
    return gt, labels, ignore, pred, scores


def test_the_batch_at_once_equals_each_image_alone():
    generator = torch.Generator().manual_seed(0)
    side = torch.arange(6, dtype=torch.float32) * 16 + 8
    ys, xs = torch.meshgrid(side, side, indexing="ij")
    points = torch.cat((torch.stack((xs, ys), -1).reshape(-1, 2), torch.tensor([[32.0, 32.0]] * 24)))
    strides = torch.cat((torch.full((36,), 16.0), torch.full((24,), 32.0)))
    images = [random_image(generator, n) for n in (3, 0, 5, 1)]
    most = 5
    gt = torch.zeros(4, most, 4)
    labels = torch.zeros(4, most, dtype=torch.long)
    valid = torch.zeros(4, most, dtype=torch.bool)
    ignore = torch.zeros(4, most, dtype=torch.bool)
    for i, (g, lab, ign, _, _) in enumerate(images):
        n = len(g)
        gt[i, :n], labels[i, :n], valid[i, :n], ignore[i, :n] = g, lab, True, ign
    pred = torch.stack([im[3] for im in images])
    scores = torch.stack([im[4] for im in images])
    assigner = SimOTAAssigner()
    batched = assigner(points, strides, scores, pred, gt, labels, valid, ignore)
    assert (batched.gt_index >= 0).sum() > 5 and (batched.gt_index[1] == NEGATIVE).all()
    for i, (g, lab, ign, p, s) in enumerate(images):
        n = len(g)
        alone = assigner(points, strides, s[None], p[None], g[None], lab[None],
                         torch.ones(1, n, dtype=torch.bool), ign[None])
        assert batched.gt_index[i].tolist() == alone.gt_index[0].tolist()
        torch.testing.assert_close(batched.iou[i], alone.iou[0])


def test_no_objects_in_the_batch_gives_only_negatives():
    result = SimOTAAssigner()(torch.zeros(7, 2), torch.full((7,), 8.0), torch.rand(2, 7, 3),
                              torch.rand(2, 7, 4), torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long),
                              torch.zeros(2, 0, dtype=torch.bool))
    assert (result.gt_index == NEGATIVE).all() and result.iou.shape == (2, 7) and not result.iou.any()


def test_pairwise_iou_matches_torchvision():
    from torchvision.ops import box_iou

    generator = torch.Generator().manual_seed(1)
    a, b = (random_image(generator, 4)[0] for _ in range(2))
    torch.testing.assert_close(pairwise_iou(a[None], b[None])[0], box_iou(a, b))
