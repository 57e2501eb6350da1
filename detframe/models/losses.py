"""Loss functions selected from config (`loss_cls`, `loss_box`). Each returns a sum; the head divides
by the number of positives so that every loss term has the same normalisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import LOSSES


@LOSSES.register()
class HardNegativeCrossEntropyLoss:
    """Softmax cross-entropy over positives plus the hardest negatives (SSD, Liu et al. 2016, sec. 2.2).

    Per image, negatives are ranked by their loss and the top `neg_pos_ratio` x (positives of that
    image) are kept. Background is logit 0.

    Args:
        neg_pos_ratio: negatives kept per positive (3 in the paper).
        loss_weight: multiplier on the returned sum.
    """

    def __init__(self, neg_pos_ratio: float = 3.0, loss_weight: float = 1.0) -> None:
        self.neg_pos_ratio = neg_pos_ratio
        self.loss_weight = loss_weight

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Args:
            logits: [B, P, C + 1] class logits, background first.
            targets: int64 [B, P]: 0 background, 1..C object class + 1, -1 ignored.

        Returns:
            scalar: summed loss over the selected priors, times `loss_weight`.
        """
        ignored = targets < 0
        loss = F.cross_entropy(logits.flatten(0, 1), targets.clamp(min=0).flatten(), reduction="none").view_as(targets)
        positive = targets > 0
        num_negative = (self.neg_pos_ratio * positive.sum(dim=1, keepdim=True)).long()
        negative_loss = loss.detach().clone()
        negative_loss[positive | ignored] = -float("inf")
        # Rank of each prior's loss within its image (0 = hardest) via the double-argsort trick.
        order = negative_loss.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        hard_negative = (rank < num_negative) & ~positive & ~ignored
        return self.loss_weight * (loss[positive].sum() + loss[hard_negative].sum())


@LOSSES.register()
class SmoothL1Loss:
    """Huber-style smooth L1 on regression targets (beta=1 as in Fast R-CNN and SSD)."""

    def __init__(self, beta: float = 1.0, loss_weight: float = 1.0) -> None:
        self.beta = beta
        self.loss_weight = loss_weight

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: [N, 4] encoded deltas. Returns the sum, times `loss_weight`."""
        return self.loss_weight * F.smooth_l1_loss(pred, target, beta=self.beta, reduction="sum")


@LOSSES.register()
class L1Loss:
    """Plain L1 on regression targets."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        self.loss_weight = loss_weight

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.loss_weight * F.l1_loss(pred, target, reduction="sum")


def loss_sum(losses: dict[str, Tensor]) -> Tensor:
    """Total of the loss terms (the one to backpropagate)."""
    return torch.stack(list(losses.values())).sum()
