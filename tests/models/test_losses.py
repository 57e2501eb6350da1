import math

import torch
import torch.nn.functional as F

from detframe.models.losses import HardNegativeCrossEntropyLoss, SmoothL1Loss


def test_hard_negative_mining_keeps_three_negatives_per_positive():
    # One image, 6 priors, 2 classes + background. Prior 0 is positive (class 1 -> target 1),
    # priors 1..5 are background with increasing background confidence, i.e. decreasing loss.
    logits = torch.tensor([[[0.0, 2.0, 0.0], [0.0, 3.0, 0.0], [1.0, 2.0, 0.0],
                            [2.0, 1.0, 0.0], [3.0, 0.0, 0.0], [4.0, 0.0, 0.0]]])
    targets = torch.tensor([[1, 0, 0, 0, 0, 0]])
    ce = F.cross_entropy(logits[0], torch.tensor([1, 0, 0, 0, 0, 0]), reduction="none")
    expected = ce[0] + ce[1] + ce[2] + ce[3]  # the positive and the 3 hardest negatives
    loss = HardNegativeCrossEntropyLoss(neg_pos_ratio=3)(logits, targets)
    torch.testing.assert_close(loss, expected)
    # by hand for the positive: -log(e^2 / (1 + e^2 + 1))
    assert math.isclose(ce[0].item(), -math.log(math.exp(2) / (2 + math.exp(2))), rel_tol=1e-6)


def test_ignored_priors_and_images_without_positives_add_nothing():
    logits = torch.randn(2, 5, 3)
    targets = torch.tensor([[1, -1, 0, 0, 0], [0, 0, 0, 0, 0]])
    loss = HardNegativeCrossEntropyLoss(neg_pos_ratio=1)(logits, targets)
    ce = F.cross_entropy(logits[0], targets[0].clamp(min=0), reduction="none")
    hardest = ce[2:].max()  # one negative for one positive; the ignored prior 1 is never a negative
    torch.testing.assert_close(loss, ce[0] + hardest)


def test_smooth_l1_sum():
    pred, target = torch.tensor([[0.0, 0.5, 2.0, -3.0]]), torch.zeros(1, 4)
    assert math.isclose(SmoothL1Loss(beta=1.0)(pred, target).item(), 0 + 0.125 + 1.5 + 2.5)
