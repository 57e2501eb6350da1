"""Writing an `ExportGraph` as an ONNX file, with the run's config and class names in its metadata.

The TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`) is used: it calls the
`symbolic` of `graph.NonMaxSuppression`, which puts ONNX's NonMaxSuppression node in the graph (the
dynamo exporter would need a custom translation for a data-dependent op instead).
"""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError
from .graph import ExportGraph


def require(module: str):
    """`module` (onnx, onnxruntime), or a one-line error saying how to install it: they are optional
    dependencies (the `export` extra), not needed to train."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{module} is not installed: ONNX export and .onnx models need it. Install it with "
                        "pip install 'detframe[export]' (onnx, onnxscript, onnxruntime), or "
                        "use format=torchscript") from None

DEFAULT_OPSET = 17
MIN_OPSET = 11  # NonMaxSuppression with a score threshold input, TopK with a k input
DYNAMIC = ("batch", "all", "none")


def dynamic_axes(graph: ExportGraph, dynamic: str) -> dict[str, dict[int, str]]:
    """ONNX's dynamic axes for `dynamic`: batch (the batch axis of every input and output), all (the
    images' height and width too) or none.

    With "all" the outputs' second axis is named as well: the number of priors of a raw export
    follows the input size, and so may N = min(max_detections, C x P) of an NMS export. The graph
    follows the size because the heads compute their priors from the traced feature map sizes
    (models/priors/tracing.py)."""
    if dynamic == "none":
        return {}
    axes = {name: {0: "batch"} for name in ("images", *graph.output_names)}
    if dynamic == "all":
        axes["images"].update({2: "height", 3: "width"})
        second = "detections" if graph.nms else "priors"
        for name in ("boxes", "scores", "labels"):
            if name in axes:
                axes[name][1] = second
    return axes


def export_onnx(graph: ExportGraph, path: str | Path, example: Tensor, *, dynamic: str = "batch",
                opset: int = DEFAULT_OPSET, metadata: Mapping[str, str] | None = None) -> Path:
    """Trace `graph` on `example` images [B, 3, H, W] into an ONNX file at `path` and check it.

    Args:
        metadata: written to the model's `metadata_props` (the run config, class names, outputs...).

    Returns:
        `path`, checked by `onnx.checker`.
    """
    onnx = require("onnx")
    path = Path(path)
    with warnings.catch_warnings():  # the tracer's notes on shapes it records as constants (the priors)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter's notices
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(graph, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=list(graph.output_names),
                          dynamic_axes=dynamic_axes(graph, dynamic))
    model = onnx.load(str(path))
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The `metadata_props` of an ONNX file, as a dict (without loading the weights)."""
    onnx = require("onnx")
    model = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in model.metadata_props}
