"""`detframe-export` / `python tools/export.py`: a checkpoint as an ONNX or TorchScript file.

    python tools/export.py checkpoint=PATH [format=onnx|torchscript] [out=FILE] [nms=true|false]
        [dynamic=batch|all|none] [opset=17] [half=false] [size=N|H,W] [key=value ...]

The model, its weights (the EMA's when the run kept one) and the input size come from the checkpoint's
saved config; `key=value` overrides change it first (`model.head.score_threshold=0.3` changes the
threshold of the NMS in the graph). The graph takes uint8 images [B, 3, H, W] at the export size (any
size with dynamic=all); see detframe/export/graph.py for its outputs and when they equal `predict`'s.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from ..errors import ConfigError
from ..rules import DEVICE, SIZE, NonEmpty, OneOf, Range
from .common import Arg, parse_args, require_key_values, run_tool

log = logging.getLogger("detframe")

SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript"}


def read_size(text: str) -> int | list[int]:
    """`320` -> 320; `320,256` or `320x256` -> [320, 256] (h, w)."""
    parts = text.replace("x", ",").split(",")
    return int(parts[0]) if len(parts) == 1 else [int(p) for p in parts]


EXPORT_ARGS = {
    "checkpoint": Arg(None, "the checkpoint to export (its saved config gives the model and size)",
                      rule=NonEmpty("path")),
    "format": Arg("onnx", "onnx | torchscript", rule=OneOf("onnx", "torchscript")),
    "out": Arg(None, "the file to write (default: beside the checkpoint, <name>.onnx / .torchscript)",
               rule=NonEmpty("path")),
    "nms": Arg("true", "true: NMS in the graph (boxes, scores, labels, num_detections); false: raw "
                       "boxes and scores of every prior", kind=bool),
    "dynamic": Arg("batch", "batch (any batch size) | all (any batch size, height and width; ONNX "
                            "only) | none (the fixed batch of batch=)", rule=OneOf("batch", "none", "all")),
    "batch": Arg("1", "the batch size traced (the only one accepted with dynamic=none)",
                 kind=int, rule=Range(1, integer=True)),
    "opset": Arg("17", "the ONNX opset, 11 to 20", kind=int, rule=Range(11, 20, integer=True)),
    "half": Arg("false", "true: float16 weights (needs device=cuda)", kind=bool),
    "device": Arg("cpu", "cpu | cuda | cuda:N: where the graph is traced", rule=DEVICE),
    "size": Arg(None, "input size N or H,W (default: the checkpoint's pipeline.size)", kind=read_size,
                rule=SIZE),
    "check": Arg("true", "true: run the file once with onnxruntime (or torch.jit) after writing it",
                 kind=bool),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(run_export, argv)


def run_export(args: Sequence[str]) -> Path:
    """Export as the command line says; returns the file written."""
    own, rest = _parse(args)
    checkpoint = Path(own["checkpoint"]).expanduser()
    out = Path(own.get("out") or checkpoint.with_suffix(SUFFIX[own["format"]])).expanduser()
    if out.is_dir():
        raise ConfigError(f"out={own.get('out', out)}: is a folder; expected the file to write, e.g. "
                          f"out={out / ('model' + SUFFIX[own['format']])}")
    device = _device(own)
    cfg, state = _config(checkpoint, own, rest)
    model = _model(cfg, state, checkpoint, device, own["half"])
    size = _size(cfg.pipeline.size)
    started = time.perf_counter()
    path = _write(model, cfg, own, out, size, device)
    shown = ("H", "W") if own["dynamic"] == "all" else size  # traced at `size`, runs at any with all
    log.info("%s written (%.1f MB, %.1f s): %s input uint8 [%s, 3, %s, %s], outputs %s", path,
             path.stat().st_size / 2**20, time.perf_counter() - started, own["format"],
             own["batch"] if own["dynamic"] == "none" else "B", *shown,
             "boxes, scores, labels, num_detections" if own["nms"] else "boxes, scores (every prior)")
    if own["check"]:
        _check(path, own["format"], size, own["batch"])
    print(path)
    return path


def _parse(args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    require_key_values(args, ", ".join(EXPORT_ARGS), "overrides of the checkpoint's config (key=value)")
    own, rest = parse_args(args, EXPORT_ARGS, "export")
    if "checkpoint" not in own:
        raise ConfigError("checkpoint=PATH: which checkpoint to export (a .pt file of a training run)")
    if own["dynamic"] == "all" and own["format"] == "torchscript":
        raise ConfigError("dynamic=all: ONNX only (tested with onnxruntime); a TorchScript file is kept "
                          "to its export size: use format=onnx, or dynamic=batch and size=H,W")
    opset = [a for a in args if a.startswith("opset=")]
    if own["format"] == "torchscript" and opset:
        raise ConfigError(f"{opset[-1]}: an ONNX setting; format=torchscript has none")
    return own, rest


def _device(own: dict[str, Any]) -> Any:
    import torch

    from ..engine import select_device

    if own["half"] and not own["device"].startswith("cuda"):
        raise ConfigError(f"half=true: float16 needs device=cuda (many float16 CPU kernels are missing "
                          f"or slow), got device={own['device']}")
    if own["device"].startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={own['device']}: CUDA is not available here; use device=cpu"
                          + (" and half=false" if own["half"] else ""))
    return select_device(own["device"])


def _config(checkpoint: Path, own: dict[str, Any], rest: list[str]) -> tuple[Any, dict[str, Any]]:
    """The checkpoint's config with the command line's changes (size= and overrides), checked."""
    from ..config import apply_overrides, check_config, load_run_config
    from ..engine import load_checkpoint
    from ..engine.preflight import check_components
    from ..registry import import_modules

    state = load_checkpoint(checkpoint, "checkpoint")
    cfg = load_run_config(checkpoint, state)
    cfg = apply_overrides(cfg, rest)
    if "size" in own:
        _set_size(cfg, own["size"])
    import_modules(cfg.get("custom_imports") or [])
    check_config(cfg)
    check_components(cfg, ("model",))
    return cfg, state


def _set_size(cfg: Any, size: int | list[int]) -> None:
    """`pipeline.size` and the `size` of every `pipeline.val` transform (a saved config holds them
    resolved): the metadata's config then preprocesses for the exported size."""
    with open_dict(cfg):
        cfg.pipeline.size = size
        for node in cfg.pipeline.val or []:
            if "size" in node:
                node.size = size


def _model(cfg: Any, state: dict[str, Any], checkpoint: Path, device: Any, half: bool) -> Any:
    from ..engine import inference_weights
    from ..export import exportable
    from ..models import build_detector
    from ..weights import load_weights_into

    model = build_detector(cfg.model)
    if not exportable(model):
        raise ConfigError(f"checkpoint={checkpoint}: a {type(model).__name__} cannot be exported yet: "
                          "export needs a dense head with decode() (see models/heads/base.py DenseHead)")
    source = f"checkpoint={checkpoint}"
    load_weights_into(model, inference_weights(state, source), source)
    model = model.to(device).eval()
    return model.half() if half else model


def _size(size: Any) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _write(model: Any, cfg: Any, own: dict[str, Any], out: Path, size: tuple[int, int], device: Any) -> Path:
    import torch

    from ..export import ExportGraph, export_onnx, export_torchscript
    from ..export.runtime import export_metadata

    onnx = own["format"] == "onnx"
    graph = ExportGraph(model, nms=own["nms"], onnx=onnx).eval()
    example = torch.zeros((own["batch"], 3, *size), dtype=torch.uint8, device=device)
    fixed_batch = own["batch"] if own["dynamic"] == "none" else None
    metadata = export_metadata(OmegaConf.to_yaml(cfg, resolve=True), list(cfg.data.class_names), own["nms"],
                               size, model.nms_settings(), fixed_batch, own["dynamic"])
    out.parent.mkdir(parents=True, exist_ok=True)
    if onnx:
        return export_onnx(graph, out, example, dynamic=own["dynamic"], opset=own["opset"], metadata=metadata)
    return export_torchscript(graph, out, example, metadata=metadata)


def _check(path: Path, fmt: str, size: tuple[int, int], batch: int) -> None:
    """Run the written file once on a blank batch (onnxruntime for ONNX when installed)."""
    import torch

    from ..export import load_onnx_model, load_torchscript_model

    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            log.warning("onnxruntime is not installed: %s was checked by onnx.checker but not run", path)
            return
    load = load_onnx_model if fmt == "onnx" else load_torchscript_model
    model, _ = load(path, "cpu")
    started = time.perf_counter()
    outputs = model.run(torch.zeros((batch, 3, *size), dtype=torch.uint8))
    log.info("ran once on CPU (%s, %.0f ms at batch %d): outputs %s", fmt,
             1000 * (time.perf_counter() - started), batch, ", ".join(str(list(o.shape)) for o in outputs))
