"""Prediction with a trained model: the Python API (`Detector`, `Prediction`) and the image sources of
tools/predict.py (files, folders, globs, lists, videos)."""
from .predictor import Detector, class_indices, load_image
from .results import Prediction

__all__ = ["Detector", "Prediction", "class_indices", "load_image"]
