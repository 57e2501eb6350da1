import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from detframe.engine.freeze import freeze
from detframe.engine.optim import build_optimizer
from detframe.errors import ConfigError
from detframe.models import build_detector

from ..conftest import compose


@pytest.fixture(scope="module")
def cfg():
    return compose(["model.backbone.arch=small"]).model


def test_freeze_stages_and_all_norms(cfg):
    model = freeze(build_detector(cfg), modules=["backbone.stages.0.0", "backbone.stages.0.1"], norms=["*"])
    for name, p in model.named_parameters():
        in_frozen_stage = name.startswith(("backbone.stages.0.0.", "backbone.stages.0.1."))
        assert p.requires_grad != in_frozen_stage, name
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) > 10
    # statistics do not move in training mode, and the optimizer never sees frozen parameters
    before = frozen[0].running_mean.clone()
    model.train()(torch.randint(0, 255, (2, 3, 96, 96), dtype=torch.uint8))
    assert torch.equal(frozen[0].running_mean, before)
    opt = build_optimizer({"type": "SGD", "lr": 0.1}, model)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(p.requires_grad for p in model.parameters())


def test_frozen_weights_load_into_an_unfrozen_model(cfg):
    """tools/eval.py builds the model without freezing: the checkpoint must still load strictly."""
    frozen = freeze(build_detector(cfg), norms=["backbone"])
    plain = build_detector(cfg)
    plain.load_state_dict(frozen.state_dict())
    head_bn = [m for n, m in frozen.named_modules()
               if n.startswith("head") and isinstance(m, torch.nn.BatchNorm2d)]
    assert head_bn  # only the backbone's norms were frozen


def test_unknown_pattern_is_a_config_error(cfg):
    with pytest.raises(ConfigError, match=r"train.freeze: 'backbone.stage.0' matches no module.*"
                                          r"Did you mean 'backbone.stages.0'"):
        freeze(build_detector(cfg), modules=["backbone.stage.0"])
