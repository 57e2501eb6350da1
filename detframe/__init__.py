"""detframe: config-driven object detection on PyTorch, torchvision and Hydra.

`from detframe import Detector` gives the inference API (`detframe.inference.Detector`: a trained model
called on images), imported on first use so that `import detframe` stays light. It is not the ABC of
the models, `detframe.models.detectors.base.Detector` (`loss(batch)` / `predict(batch)`), which it wraps.
"""
from typing import Any

__version__ = "0.1.0"

LAZY = {"Detector": "detframe.inference", "Prediction": "detframe.inference"}


def __getattr__(name: str) -> Any:
    if name in LAZY:
        from importlib import import_module

        return getattr(import_module(LAZY[name]), name)
    raise AttributeError(f"module 'detframe' has no attribute '{name}'")
