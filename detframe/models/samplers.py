"""Sampling a fixed-size, class-balanced subset of matched candidates for a loss (the R-CNN family).

Faster R-CNN's RPN scores every anchor but trains on 256 per image, at most half of them positive; its
RoI head trains on 512 RoIs per image, at most a quarter positive (Ren et al. 2015, sec. 3.1.3;
Girshick 2015, sec. 2.3). Without the cap the few positives would be drowned by the background.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..registry import SAMPLERS
from ..rules import PositiveInt, Probability
from .assigners import NEGATIVE


@SAMPLERS.register()
class RandomSampler:
    """Up to `num * positive_fraction` positives drawn at random, then negatives to fill `num`.

    With fewer positives than allowed, negatives take their place (`num` in all whenever there are
    enough candidates). The draws use torch's default generator (`torch.randperm`), so a run seeded
    with `torch.manual_seed` samples the same candidates again; this is also torchvision's
    BalancedPositiveNegativeSampler, draw for draw.

    Args:
        num: candidates sampled per image.
        positive_fraction: the largest share of positives among them.
    """

    def __init__(self, num: PositiveInt = 256, positive_fraction: Probability = 0.5) -> None:
        self.num, self.positive_fraction = num, positive_fraction

    def __call__(self, gt_index: Tensor) -> tuple[Tensor, Tensor]:
        """Sample the candidates of one image.

        Args:
            gt_index: int64 [P] as an assigner gives it: >= 0 positive, NEGATIVE, or IGNORED (never
                sampled).

        Returns:
            (positive, negative): int64 indices into the P candidates, disjoint, in random order.
        """
        positive = torch.where(gt_index >= 0)[0]
        negative = torch.where(gt_index == NEGATIVE)[0]
        num_pos = min(int(self.num * self.positive_fraction), positive.numel())
        num_neg = min(self.num - num_pos, negative.numel())
        pos = positive[torch.randperm(positive.numel(), device=gt_index.device)[:num_pos]]
        neg = negative[torch.randperm(negative.numel(), device=gt_index.device)[:num_neg]]
        return pos, neg
