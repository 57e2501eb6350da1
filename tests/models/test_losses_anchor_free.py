"""The losses of the anchor-free and task-aligned heads on tiny tensors whose values are worked out by
hand in the comments (ln 2 = log(2) appears wherever a logit is 0, i.e. p = 0.5)."""
import math

import pytest
import torch

from detframe.errors import ConfigError
from detframe.models.losses import CIoULoss, DIoULoss, GIoULoss
from detframe.models.soft_target_losses import (
    DistributionFocalLoss,
    GaussianFocalLoss,
    QualityFocalLoss,
    VarifocalLoss,
)
from detframe.registry import LOSSES

LN2 = math.log(2)


def close(value: torch.Tensor, expected: float) -> None:
    assert math.isclose(value.item(), expected, rel_tol=1e-5, abs_tol=1e-6), (value.item(), expected)


def test_iou_losses_on_two_overlapping_squares():
    # [0,0,2,2] and [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7, IoU 1/7; enclosing box [0,0,3,3],
    # area 9, diagonal^2 18; centres (1,1) and (2,2), distance^2 2; both square, so CIoU's v = 0.
    pred, gt = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3]])
    close(GIoULoss()(pred, gt), 1 - 1 / 7 + (9 - 7) / 9)
    close(DIoULoss()(pred, gt), 1 - 1 / 7 + 2 / 18)
    close(CIoULoss()(pred, gt), 1 - 1 / 7 + 2 / 18)


def test_ciou_adds_the_aspect_ratio_term():
    # [0,0,2,1] (w 2, h 1) and [0,0,1,2] (w 1, h 2): intersection 1, union 3, IoU 1/3; centres
    # (1, .5) and (.5, 1): distance^2 .5; enclosing [0,0,2,2]: diagonal^2 8.
    # v = 4/pi^2 (atan(1/2) - atan(2))^2, alpha = v / (1 - IoU + v).
    pred, gt = torch.tensor([[0.0, 0, 2, 1]]), torch.tensor([[0.0, 0, 1, 2]])
    diou = 1 - 1 / 3 + 0.5 / 8
    v = 4 / math.pi ** 2 * (math.atan(1 / 2) - math.atan(2)) ** 2
    close(DIoULoss()(pred, gt), diou)
    close(CIoULoss()(pred, gt), diou + v / (1 - 1 / 3 + v) * v)


def test_iou_loss_reductions_and_weights():
    pred = torch.tensor([[0.0, 0, 2, 2], [0.0, 0, 2, 2]])
    gt = torch.tensor([[1.0, 1, 3, 3], [0.0, 0, 2, 2]])  # second pair identical: loss 0
    first = 1 - 1 / 7 + 2 / 9
    close(GIoULoss(reduction="mean")(pred, gt), first / 2)
    torch.testing.assert_close(GIoULoss(reduction="none")(pred, gt), torch.tensor([first, 0.0]))
    close(GIoULoss(loss_weight=2.0)(pred, gt, weight=torch.tensor([0.5, 3.0])), 2.0 * 0.5 * first)
    close(GIoULoss(reduction="mean")(pred[:0], gt[:0]), 0.0)  # no positives: 0, not NaN


def test_quality_focal_loss():
    # sigma = 0.5 everywhere, so each BCE is ln 2; QFL scales it by |y - sigma|^2:
    # y = 0.8 -> 0.09 ln2, y = 0 -> 0.25 ln2, y = 0.5 -> 0.
    logits = torch.zeros(1, 3)
    targets = torch.tensor([[0.8, 0.0, 0.5]])
    close(QualityFocalLoss(beta=2.0)(logits, targets), (0.09 + 0.25 + 0.0) * LN2)
    close(QualityFocalLoss(beta=2.0, reduction="mean")(logits, targets), (0.09 + 0.25) * LN2 / 3)


def test_varifocal_loss():
    # p = 0.5: positive q = 0.8 -> weight q, BCE ln 2 (-(.8 ln .5 + .2 ln .5)): 0.8 ln2;
    # negative -> weight alpha p^gamma = .75 * .25 = .1875: 0.1875 ln2.
    logits = torch.zeros(1, 2)
    targets = torch.tensor([[0.8, 0.0]])
    close(VarifocalLoss(alpha=0.75, gamma=2.0)(logits, targets), (0.8 + 0.1875) * LN2)
    per_element = VarifocalLoss(reduction="none")(logits, targets)
    torch.testing.assert_close(per_element, torch.tensor([[0.8 * LN2, 0.1875 * LN2]]))


def test_varifocal_negative_weight_is_not_differentiated():
    logits = torch.zeros(1, 1, requires_grad=True)
    VarifocalLoss()(logits, torch.zeros(1, 1)).backward()
    # d/dx [w * BCE(x, 0)] with w constant = w * sigmoid(x) = .1875 * .5
    close(logits.grad[0, 0], 0.1875 * 0.5)


def test_distribution_focal_loss():
    # reg_max 2: bins 0, 1, 2 with probabilities 1/4, 1/2, 1/4 (logits ln 1, ln 2, ln 1).
    # y = 0.25: neighbours 0 (weight 0.75) and 1 (weight 0.25): 0.75 ln 4 + 0.25 ln 2 = 1.75 ln2.
    # y = 2 (= reg_max): neighbours 1 (weight 0) and 2 (weight 1): ln 4 = 2 ln2.
    # y = 1: exactly bin 1: ln 2.
    logits = torch.tensor([[0.0, LN2, 0.0]]).repeat(3, 1)
    targets = torch.tensor([0.25, 2.0, 1.0])
    torch.testing.assert_close(DistributionFocalLoss(reduction="none")(logits, targets),
                               torch.tensor([1.75 * LN2, 2 * LN2, LN2]))
    close(DistributionFocalLoss()(logits, targets, weight=torch.tensor([1.0, 0.0, 2.0])), 3.75 * LN2)


def test_distribution_focal_loss_is_smallest_at_the_target():
    # The expectation of the distribution the loss pulls towards is the target itself.
    logits = torch.zeros(1, 17, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    for _ in range(200):
        optimizer.zero_grad()
        DistributionFocalLoss()(logits, torch.tensor([6.3])).backward()
        optimizer.step()
    expectation = (logits.softmax(-1) * torch.arange(17.0)).sum()
    assert abs(expectation.item() - 6.3) < 0.05


def test_gaussian_focal_loss():
    # p = 0.5 everywhere (alpha 2, beta 4):
    # centre (y = 1): -(1 - .5)^2 ln .5 = .25 ln2
    # near a centre (y = .5): -(1 - .5)^4 .5^2 ln(1 - .5) = .0625 * .25 ln2 = .015625 ln2
    # far (y = 0): -(1)^4 .5^2 ln .5 = .25 ln2
    logits = torch.zeros(3)
    targets = torch.tensor([1.0, 0.5, 0.0])
    close(GaussianFocalLoss(alpha=2.0, beta=4.0)(logits, targets), (0.25 + 0.015625 + 0.25) * LN2)
    close(GaussianFocalLoss(loss_weight=3.0)(logits, targets, weight=torch.tensor([1.0, 0.0, 0.0])),
          3 * 0.25 * LN2)


def test_gaussian_focal_loss_is_finite_for_saturated_logits():
    loss = GaussianFocalLoss()(torch.tensor([-100.0, 100.0]), torch.tensor([1.0, 0.0]))
    assert torch.isfinite(loss)


def test_new_losses_are_in_the_registry_and_check_their_reduction():
    import detframe.models  # noqa: F401  (registers the losses)

    for name in ("GIoULoss", "DIoULoss", "CIoULoss", "QualityFocalLoss", "VarifocalLoss",
                 "DistributionFocalLoss", "GaussianFocalLoss"):
        assert name in LOSSES
    with pytest.raises(ConfigError, match="reduction=avg: expected one of sum, mean, none"):
        LOSSES.build({"type": "CIoULoss", "reduction": "avg"})
