import math

import torch

from detframe.models.coders import DeltaXYWHCoder


def test_encode_known_values():
    coder = DeltaXYWHCoder(stds=(0.1, 0.1, 0.2, 0.2))
    prior = torch.tensor([[0.0, 0.0, 10.0, 20.0]])  # centre (5, 10), size 10 x 20
    gt = torch.tensor([[2.0, 4.0, 22.0, 24.0]])  # centre (12, 14), size 20 x 20
    deltas = coder.encode(prior, gt)
    expected = torch.tensor([[(12 - 5) / 10 / 0.1, (14 - 10) / 20 / 0.1,
                              math.log(2) / 0.2, math.log(1) / 0.2]])
    torch.testing.assert_close(deltas, expected)


def test_round_trip_random_boxes():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(100, 2, generator=g) * 300
    priors = torch.cat([xy, xy + 10 + torch.rand(100, 2, generator=g) * 100], 1)  # ratios within the clamp
    xy = torch.rand(100, 2, generator=g) * 300
    gt = torch.cat([xy, xy + 1 + torch.rand(100, 2, generator=g) * 200], 1)
    coder = DeltaXYWHCoder()
    torch.testing.assert_close(coder.decode(priors, coder.encode(priors, gt)), gt, rtol=1e-4, atol=1e-3)
    # batched deltas broadcast over the priors
    batched = coder.encode(priors, gt).expand(3, -1, -1)
    assert coder.decode(priors, batched).shape == (3, 100, 4)


def test_matches_torchvision_box_coder():
    from torchvision.models.detection._utils import BoxCoder

    g = torch.Generator().manual_seed(1)
    xy = torch.rand(50, 2, generator=g) * 100
    priors = torch.cat([xy, xy + 5 + torch.rand(50, 2, generator=g) * 50], 1)
    gt = priors + torch.randn(50, 4, generator=g) * 3
    ours, theirs = DeltaXYWHCoder((0.1, 0.1, 0.2, 0.2)), BoxCoder((10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(ours.encode(priors, gt), theirs.encode_single(gt, priors))
    deltas = torch.randn(50, 4, generator=g)
    torch.testing.assert_close(ours.decode(priors, deltas), theirs.decode_single(deltas, priors))


def test_decode_clamps_huge_sizes():
    coder = DeltaXYWHCoder()
    boxes = coder.decode(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[0.0, 0.0, 1e4, 1e4]]))
    assert torch.isfinite(boxes).all()
