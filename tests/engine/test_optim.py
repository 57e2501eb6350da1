import pytest
import torch

from detframe.engine.optim import build_optimizer, build_scheduler
from detframe.errors import ConfigError


def lrs(cfg, iters_per_epoch=10, max_epochs=4, steps=40):
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer({"type": "SGD", "lr": 0.1, "momentum": 0.9}, model)
    sched = build_scheduler(cfg, opt, iters_per_epoch, iters_per_epoch * max_epochs)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out, sched


def test_linear_warmup_then_multistep():
    out, _ = lrs({"type": "WarmupMultiStepLR", "milestones": [2, 3], "gamma": 0.1, "warmup_iters": 5, "warmup_ratio": 0.1})
    assert out[0] == pytest.approx(0.01) and out[4] == pytest.approx(0.1 * (0.1 + 0.9 * 4 / 5))
    assert out[5] == pytest.approx(0.1) and out[19] == pytest.approx(0.1)
    assert out[20] == pytest.approx(0.01) and out[30] == pytest.approx(0.001)


def test_scheduler_state_restores_position_not_schedule():
    _, sched = lrs({"type": "WarmupMultiStepLR", "milestones": [2], "warmup_iters": 0}, steps=25)
    state = sched.state_dict()
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer({"type": "SGD", "lr": 0.1}, model)
    longer = build_scheduler({"type": "WarmupMultiStepLR", "milestones": [3], "warmup_iters": 0}, opt, 10, 60)
    longer.load_state_dict(state)
    assert longer.last_epoch == 25
    opt.step()
    longer.step()
    # the old schedule would be at 0.01 after its milestone (iteration 20); the new one drops at 30
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_cosine_and_bad_warmup():
    out, _ = lrs({"type": "WarmupCosineLR", "min_ratio": 0.0, "warmup_iters": 0}, steps=41)
    assert out[0] == pytest.approx(0.1) and out[20] == pytest.approx(0.05) and out[40] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="warmup: expected linear, exp or none"):
        lrs({"type": "WarmupCosineLR", "warmup": "linaer"})
