"""The detector contract: every model config builds a `Detector` whose loss and predict take a batch."""
import inspect

import pytest
from torch import nn

from detframe.errors import ConfigError
from detframe.models import Detector, build_detector
from detframe.models.detectors import SingleStageDetector

from ..conftest import CONFIGS, compose


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")))
def test_every_model_config_builds_a_detector_with_the_contract_signatures(name):
    model = build_detector(compose([f"model={name}"]).model)
    assert isinstance(model, Detector)
    assert list(inspect.signature(model.loss).parameters) == ["batch"]
    assert list(inspect.signature(model.predict).parameters) == ["batch"]


def test_a_family_without_predict_cannot_be_built():
    class LossOnly(Detector):
        def loss(self, batch):
            return {}

    with pytest.raises(TypeError, match="predict"):
        LossOnly()
    assert issubclass(SingleStageDetector, Detector)


def test_build_refuses_a_model_type_that_is_not_a_detector(monkeypatch):
    from detframe.models import build

    monkeypatch.setattr(build.DETECTORS, "build", lambda cfg, **parts: nn.Identity())
    with pytest.raises(ConfigError, match="not a detframe.models.Detector"):
        build_detector(compose().model)
