"""Writing an `ExportGraph` as a TorchScript file (`torch.jit.trace`), metadata in `_extra_files`."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from .graph import ExportGraph


def export_torchscript(graph: ExportGraph, path: str | Path, example: Tensor,
                       metadata: Mapping[str, str] | None = None) -> Path:
    """Trace `graph` on `example` images [B, 3, H, W] and save it at `path` with `metadata` as extra
    files. NMS is torchvision's op (`graph.onnx` is False), so loading the file needs torchvision
    imported; the batch size is free (the NMS groups are image x class), the input size fixed."""
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
        traced = torch.jit.trace(graph, (example,), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files=dict(metadata or {}))
    return path


def read_extra_files(path: str | Path, names: list[str]) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    """The module saved at `path` and its extra files `names` (empty strings for those missing)."""
    extra = {name: "" for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, {k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items()}
