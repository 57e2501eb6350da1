import math

import pytest
import torch
from torch import nn

from detframe.engine.optim import build_optimizer, build_scheduler, lr_scale_for, param_groups
from detframe.engine.schedules import restore_position
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
    out, _ = lrs({"type": "WarmupMultiStepLR", "milestones": [2, 3], "gamma": 0.1, "warmup_iters": 5,
                  "warmup_ratio": 0.1})
    assert out[0] == pytest.approx(0.01) and out[4] == pytest.approx(0.1 * (0.1 + 0.9 * 4 / 5))
    assert out[5] == pytest.approx(0.1) and out[19] == pytest.approx(0.1)
    assert out[20] == pytest.approx(0.01) and out[30] == pytest.approx(0.001)


def test_multistep_by_iteration_and_exp_warmup():
    out, _ = lrs({"type": "WarmupMultiStepLR", "milestones": [7], "by_epoch": False, "warmup": "exp",
                  "warmup_iters": 4, "warmup_ratio": 0.01})
    assert out[0] == pytest.approx(0.1 * 0.01) and out[2] == pytest.approx(0.1 * 0.01**0.5)  # geometric
    assert out[4] == pytest.approx(0.1) and out[6] == pytest.approx(0.1) and out[7] == pytest.approx(0.01)


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


def test_restore_position_takes_lr_and_shape_from_the_new_config():
    _, sched = lrs({"type": "WarmupCosineLR", "min_ratio": 0.0, "warmup_iters": 0},
                   steps=40)  # 40 of 40: at 0
    opt = build_optimizer({"type": "SGD", "lr": 0.2}, torch.nn.Linear(2, 2))
    longer = build_scheduler({"type": "WarmupCosineLR", "min_ratio": 0.0, "warmup_iters": 0}, opt, 10, 80)
    restore_position(longer, sched.state_dict())
    # iteration 40 of an 80-iteration cosine from the new base LR 0.2: halfway, 0.1
    assert longer.last_epoch == 40 and opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_cosine_and_bad_warmup():
    out, _ = lrs({"type": "WarmupCosineLR", "min_ratio": 0.0, "warmup_iters": 0}, steps=41)
    assert out[0] == pytest.approx(0.1) and out[20] == pytest.approx(0.05)
    assert out[40] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="warmup: expected linear, exp or none"):
        lrs({"type": "WarmupCosineLR", "warmup": "linaer"})


def test_cosine_by_epoch_moves_once_per_epoch():
    out, _ = lrs({"type": "WarmupCosineLR", "min_ratio": 0.0, "warmup_iters": 0, "by_epoch": True}, steps=40)
    assert out[0] == out[9] == pytest.approx(0.1)
    assert out[10] == out[19] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_poly():
    out, _ = lrs({"type": "WarmupPolyLR", "power": 2.0, "min_ratio": 0.1, "warmup_iters": 0}, steps=41)
    assert out[0] == pytest.approx(0.1) and out[20] == pytest.approx(0.1 * (0.1 + 0.9 * 0.25))
    assert out[40] == pytest.approx(0.01)


def test_yolox_warm_cosine_matches_yolox_formula():
    # YOLOX yoloxwarmcos: lr = (lr - warmup_lr) * (it / warmup_total)^2 + warmup_lr during warmup, then
    # min_lr + 0.5 (lr - min_lr)(1 + cos(pi (it - warmup_total) / (total - warmup_total - no_aug))),
    # then min_lr.
    cfg = {"type": "YOLOXCosineLR", "warmup_epochs": 1, "no_aug_epochs": 1, "min_ratio": 0.05,
           "warmup_ratio": 0.0}
    out, _ = lrs(cfg, iters_per_epoch=10, max_epochs=4, steps=40)
    lr, min_lr = 0.1, 0.1 * 0.05
    assert out[0] == 0.0 and out[5] == pytest.approx(lr * 0.25)
    assert out[10] == pytest.approx(lr)
    assert out[20] == pytest.approx(min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * 0.5)))
    assert out[30] == out[39] == pytest.approx(min_lr)
    with pytest.raises(ConfigError, match="no cosine phase"):
        lrs({**cfg, "warmup_epochs": 2, "no_aug_epochs": 2})


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Sequential(nn.Conv2d(4, 2, 1), nn.GroupNorm(1, 2), nn.Conv2d(2, 2, 1, bias=False))


def test_param_groups_decay_and_lr_multipliers():
    net = Net()
    groups = param_groups(net, lr=0.1, weight_decay=1e-4, norm_decay_mult=0.0, bias_decay_mult=0.5,
                          lr_mult={"backbone": 0.1, "head.2": 2.0})
    by_param = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    expect = {
        "backbone.0.weight": (0.01, 1e-4), "backbone.0.bias": (0.01, 5e-5), "backbone.1.weight": (0.01, 0.0),
        "backbone.1.bias": (0.01, 0.0), "head.0.weight": (0.1, 1e-4), "head.0.bias": (0.1, 5e-5),
        "head.1.weight": (0.1, 0.0), "head.1.bias": (0.1, 0.0), "head.2.weight": (0.2, 1e-4),
    }
    for name, p in net.named_parameters():
        assert by_param[id(p)] == pytest.approx(expect[name]), name
    assert sum(len(g["params"]) for g in groups) == 9 and len(groups) == 7


def test_no_options_is_one_group_in_parameter_order():
    net = Net()
    groups = param_groups(net, lr=0.1, weight_decay=1e-4)
    assert len(groups) == 1 and [id(p) for p in groups[0]["params"]] == [id(p) for p in net.parameters()]


def test_optimizer_config_errors_name_the_key():
    net = Net()
    with pytest.raises(ConfigError, match=r"optimizer.paramwise.lr_mult: 'backbon' matches no trainable "
                                          r"parameter. Did you mean 'backbone'\?"):
        build_optimizer({"type": "SGD", "lr": 0.1, "paramwise": {"lr_mult": {"backbon": 0.1}}}, net)
    with pytest.raises(ConfigError, match=r"optimizer.paramwise.norm_decay: param_groups has no argument "
                                          r"'norm_decay'. Did you mean 'norm_decay_mult'\?"):
        build_optimizer({"type": "SGD", "lr": 0.1, "paramwise": {"norm_decay": 0.0}}, net)
    with pytest.raises(ConfigError, match=r"optimizer.momentun: SGD has no argument 'momentun'. "
                                          r"Did you mean 'momentum'\?"):
        build_optimizer({"type": "SGD", "lr": 0.1, "momentun": 0.9}, net)
    with pytest.raises(ConfigError, match=r"optimizer.type: unknown optimizer type 'ADAMW'"):
        build_optimizer({"type": "ADAMW", "lr": 0.1}, net)


def test_adamw_groups_and_lr_scaling():
    opt = build_optimizer({"type": "AdamW", "lr": 0.001, "weight_decay": 0.05,
                           "paramwise": {"norm_decay_mult": 0.0}},
                          Net(), lr_scale=lr_scale_for(total_batch_size=64, base_batch_size=16))
    assert isinstance(opt, torch.optim.AdamW)
    # flat lists: pytest 9 no longer compares nested structures (a list of tuples) with approx
    settings = sorted((g["lr"], g["weight_decay"]) for g in opt.param_groups)
    assert [lr for lr, _ in settings] == pytest.approx([0.004, 0.004])
    assert [wd for _, wd in settings] == pytest.approx([0.0, 0.05])
    assert lr_scale_for(32, None) == 1.0
