"""Exporting a trained detector: a traceable graph of its inference (`graph.py`), written as ONNX
(`onnx.py`) or TorchScript (`torchscript.py`), and run again as a `predict(batch)` model
(`runtime.py`). `cli/export.py` is the command-line tool."""
from .graph import ExportGraph, exportable
from .onnx import export_onnx
from .runtime import load_onnx_model, load_torchscript_model
from .torchscript import export_torchscript

__all__ = ["ExportGraph", "exportable", "export_onnx", "export_torchscript", "load_onnx_model",
           "load_torchscript_model"]
