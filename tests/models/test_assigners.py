import torch

from detframe.models.assigners import IGNORED, NEGATIVE, MaxIoUAssigner


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_thresholds_and_best_prior_per_object():
    priors = boxes([0, 0, 10, 10], [0, 0, 10, 12], [20, 20, 30, 30], [50, 50, 60, 60], [22, 22, 34, 34])
    gt = boxes([0, 0, 10, 11], [21, 21, 33, 33])
    # IoU(gt0): prior0 10/11 = .909, prior1 10/12 = .833;
    # gt1 vs prior2: 81/163 = .497, vs prior4: 121/144 = .84
    a = MaxIoUAssigner(pos_iou=0.5, neg_iou=0.4)(priors, gt)
    assert a.gt_index.tolist() == [0, 0, IGNORED, NEGATIVE, 1]  # prior2 lies between 0.4 and 0.5


def test_low_quality_match_forces_the_best_prior():
    priors = boxes([0, 0, 10, 10], [100, 100, 110, 110])
    gt = boxes([0, 0, 30, 30])  # best IoU 100/900 = 0.11
    a = MaxIoUAssigner(pos_iou=0.5, neg_iou=0.5)(priors, gt)
    assert a.gt_index.tolist() == [0, NEGATIVE]
    a = MaxIoUAssigner(pos_iou=0.5, neg_iou=0.5, match_low_quality=False)(priors, gt)
    assert a.gt_index.tolist() == [NEGATIVE, NEGATIVE]


def test_ignored_objects_make_ignored_priors():
    priors = boxes([0, 0, 10, 10], [40, 40, 50, 50])
    gt = boxes([0, 0, 10, 10], [41, 41, 51, 51])
    a = MaxIoUAssigner()(priors, gt, torch.tensor([False, True]))
    assert a.gt_index.tolist() == [0, IGNORED]


def test_no_objects_all_negative():
    a = MaxIoUAssigner()(boxes([0, 0, 1, 1], [1, 1, 2, 2]), torch.zeros(0, 4))
    assert a.gt_index.tolist() == [NEGATIVE, NEGATIVE]
