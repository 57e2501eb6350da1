"""The classification and distribution losses of the anchor-free and task-aligned heads, whose targets are
soft (an IoU, a Gaussian) rather than 0/1: GFL's quality focal and distribution focal losses, VFNet's
varifocal loss, CenterNet's penalty-reduced focal loss. Conventions (`loss_weight`, per-element `weight`,
`reduction`) as in `losses.py`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import LOSSES
from ..rules import NonNegativeFloat
from .losses import Reduction, reduce_loss


@LOSSES.register()
class QualityFocalLoss:
    """Quality focal loss (Li et al. 2020, GFL, eq. 5): binary cross-entropy against a soft target y
    in [0, 1] (the IoU of the predicted box with its object at the object's class, 0 elsewhere),
    scaled by |y - sigma|^beta so that the well-predicted bulk is down-weighted as in focal loss:

        QFL = -|y - sigma|^beta ((1 - y) log(1 - sigma) + y log(sigma))

    Args:
        beta: the focusing exponent (2 in the paper).
        loss_weight, reduction: see the module docstring.
    """

    def __init__(self, beta: NonNegativeFloat = 2.0, loss_weight: NonNegativeFloat = 1.0,
                 reduction: Reduction = "sum") -> None:
        self.beta, self.loss_weight, self.reduction = beta, loss_weight, reduction

    def __call__(self, logits: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
        """logits, targets: [N, C] (targets soft, in [0, 1]); weight: broadcastable to [N, C] or None."""
        logits, targets = logits.float(), targets.to(torch.float32)
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        modulator = (logits.sigmoid() - targets).abs().pow(self.beta)
        return reduce_loss(bce * modulator, weight, self.reduction, self.loss_weight)


@LOSSES.register()
class VarifocalLoss:
    """Varifocal loss (Zhang et al. 2021, VarifocalNet, eq. 2): asymmetric in positives and negatives.
    A positive (target q > 0, the IoU-aware classification score to learn) is weighted by q itself, so
    high-quality positives count most; a negative (q = 0) is down-weighted by alpha p^gamma as in
    focal loss:

        VFL = -q (q log p + (1 - q) log(1 - p))     if q > 0
              -alpha p^gamma log(1 - p)             if q = 0

    Args:
        alpha: weight of the negatives (0.75 in the paper).
        gamma: focusing exponent of the negatives (2 in the paper).
        loss_weight, reduction: see the module docstring.
    """

    def __init__(self, alpha: NonNegativeFloat = 0.75, gamma: NonNegativeFloat = 2.0,
                 loss_weight: NonNegativeFloat = 1.0, reduction: Reduction = "sum") -> None:
        self.alpha, self.gamma = alpha, gamma
        self.loss_weight, self.reduction = loss_weight, reduction

    def __call__(self, logits: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
        """logits, targets: [N, C] (targets soft, in [0, 1]); weight: broadcastable to [N, C] or None."""
        logits, targets = logits.float(), targets.to(torch.float32)
        prob = logits.sigmoid().detach()  # the weights are not differentiated (the paper, mmdetection)
        focal_weight = torch.where(targets > 0, targets, self.alpha * prob.pow(self.gamma))
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return reduce_loss(bce * focal_weight, weight, self.reduction, self.loss_weight)


@LOSSES.register()
class DistributionFocalLoss:
    """Distribution focal loss (Li et al. 2020, GFL, eq. 6): a box side is predicted as a discrete
    distribution over the n + 1 integers 0..n (n = reg_max, in units of the stride; 16 in GFL and
    YOLOv8), and the continuous target y is taught by cross-entropy on its two neighbours
    y_l = floor(y) and y_r = y_l + 1, weighted by closeness:

        DFL = -((y_r - y) log S(y_l) + (y - y_l) log S(y_r))

    so that the distribution's expectation converges to y. reg_max is the logits' last size minus 1;
    targets must lie in [0, reg_max] (y = reg_max takes y_l = reg_max - 1 with weight 0).

    Args:
        loss_weight, reduction: see the module docstring.
    """

    def __init__(self, loss_weight: NonNegativeFloat = 1.0, reduction: Reduction = "sum") -> None:
        self.loss_weight, self.reduction = loss_weight, reduction

    def __call__(self, logits: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
        """logits: [..., reg_max + 1] per-bin logits; targets: [...] in [0, reg_max]; weight: [...] or
        None. Returns the reduction over [...]."""
        reg_max = logits.shape[-1] - 1
        targets = targets.float()
        left = targets.floor().long().clamp(0, max(reg_max - 1, 0))
        right = left + 1
        log_probs = F.log_softmax(logits.float(), dim=-1)
        log_left = log_probs.gather(-1, left.unsqueeze(-1)).squeeze(-1)
        log_right = log_probs.gather(-1, right.clamp(max=reg_max).unsqueeze(-1)).squeeze(-1)
        loss = -((right - targets) * log_left + (targets - left) * log_right)
        return reduce_loss(loss, weight, self.reduction, self.loss_weight)


@LOSSES.register()
class GaussianFocalLoss:
    """CenterNet's penalty-reduced focal loss on a Gaussian heatmap (Law & Deng 2018, CornerNet, eq. 1;
    Zhou et al. 2019, CenterNet, eq. 1), mmdetection's GaussianFocalLoss. With p the predicted
    probability and y the target heatmap (1 at object centres, a Gaussian bump around them):

        L = -(1 - p)^alpha log(p)                   where y = 1
            -(1 - y)^beta p^alpha log(1 - p)        elsewhere

    The (1 - y)^beta factor reduces the penalty on locations near a centre. Summed; the head divides
    by the number of objects.

    Args:
        alpha, beta: the exponents (2 and 4 in both papers).
        loss_weight, reduction: see the module docstring.
    """

    def __init__(self, alpha: NonNegativeFloat = 2.0, beta: NonNegativeFloat = 4.0,
                 loss_weight: NonNegativeFloat = 1.0, reduction: Reduction = "sum") -> None:
        self.alpha, self.beta = alpha, beta
        self.loss_weight, self.reduction = loss_weight, reduction

    def __call__(self, logits: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
        """logits: [...] heatmap logits (log-sigmoids keep log p finite where p saturates); targets: [...]
        in [0, 1], exactly 1 at the centres; weight: broadcastable or None."""
        logits, targets = logits.float(), targets.float()
        prob = logits.sigmoid()
        positive = targets.eq(1)
        pos_loss = -(1 - prob).pow(self.alpha) * F.logsigmoid(logits)
        neg_loss = -(1 - targets).pow(self.beta) * prob.pow(self.alpha) * F.logsigmoid(-logits)
        loss = torch.where(positive, pos_loss, neg_loss)
        return reduce_loss(loss, weight, self.reduction, self.loss_weight)
