import math

import pytest
import torch
from torch import nn

from detframe.engine import ModelEMA


def test_ema_follows_the_ramped_decay_and_copies_integer_buffers():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9, tau=2.0)
    expected = {k: v.clone().float() for k, v in model.state_dict().items()}
    for t in range(1, 4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        model.train()(torch.randn(4, 2))  # moves the BatchNorm statistics and num_batches_tracked
        ema.update(model)
        d = 0.9 * (1 - math.exp(-t / 2.0))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                expected[k] = d * expected[k] + (1 - d) * v
    for k, v in ema.module.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.allclose(v, expected[k], atol=1e-6), k
        else:
            assert torch.equal(v, model.state_dict()[k]), k  # num_batches_tracked copied, not averaged
    assert ema.updates == 3 and not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_ema_state_round_trip():
    model = nn.Linear(3, 1)
    ema = ModelEMA(model, decay=0.99, tau=0)
    ema.update(model)
    other = ModelEMA(nn.Linear(3, 1))
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and torch.equal(other.module.weight, ema.module.weight)
    assert ema.current_decay() == 0.99  # tau 0: no ramp
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, decay=1.0)
