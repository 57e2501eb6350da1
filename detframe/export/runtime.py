"""Running an exported file as a detector: `predict(batch) -> list[Detections]` in original pixels.

The file's graph takes the images as `data.collate` makes them and gives detections in input pixels
(see graph.py); what is left of `predict` happens here, with the same function the heads use
(`ops.boxes.undo_resize`: the test-time resize / letterbox of `batch.scales` / `batch.offsets` undone,
clipped to `batch.orig_sizes`). The config and class names come from the file's metadata, so an
.onnx file is all a user needs to ship.

    model, cfg = load_onnx_model("model.onnx", device="cpu")
    detections = model.predict(batch)        # a Batch from the val pipeline + collate, at the export size

A file exported with `dynamic=all` (its `dynamic` entry says so) takes any input size; the others
only the size they were exported at (`input_size`).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from ..errors import UserError
from ..ops.boxes import undo_resize
from ..structures import Batch, Detections
from .graph import select_pairs, top_detections

# The metadata an export writes (ONNX metadata_props, TorchScript _extra_files).
CONFIG_KEY, CLASSES_KEY, OUTPUTS_KEY, SIZE_KEY, NMS_KEY, BATCH_KEY = (
    "detframe_config", "class_names", "detframe_outputs", "input_size", "nms_settings", "batch_size")
METADATA_KEYS = [CONFIG_KEY, CLASSES_KEY, OUTPUTS_KEY, SIZE_KEY, NMS_KEY, BATCH_KEY]
# Optional: files written before it lack it, and are dynamic in the batch at most.
DYNAMIC_KEY = "dynamic"


def export_metadata(config_yaml: str, class_names: list[str], nms: bool, size: tuple[int, int],
                    nms_settings: Mapping[str, float | int], batch_size: int | None,
                    dynamic: str | None = None) -> dict[str, str]:
    """The text entries an export stores (`batch_size` None: any batch size; `dynamic`: the export's
    dynamic= mode, default batch or none as `batch_size` says; `size` is the traced size)."""
    return {CONFIG_KEY: config_yaml, CLASSES_KEY: json.dumps(list(class_names)),
            OUTPUTS_KEY: "nms" if nms else "raw", SIZE_KEY: json.dumps(list(size)),
            NMS_KEY: json.dumps(dict(nms_settings)), BATCH_KEY: json.dumps(batch_size),
            DYNAMIC_KEY: dynamic or ("batch" if batch_size is None else "none")}


class ExportedDetector:
    """An exported graph behind the `Detector.predict` interface.

    Args:
        run: images uint8 [B, 3, H, W] -> the graph's outputs as tensors, in the order of graph.py.
        metadata: the file's entries (`export_metadata`).
        source: the file, for messages.
    """

    def __init__(self, run: Callable[[Tensor], list[Tensor]], metadata: Mapping[str, str],
                 source: str) -> None:
        missing = [k for k in METADATA_KEYS if not metadata.get(k)]
        if missing:
            raise UserError(f"{source}: not a detframe export (its metadata lacks {', '.join(missing)}); "
                            "export checkpoints with tools/export.py")
        self.run, self.source = run, source
        self.config = OmegaConf.create(metadata[CONFIG_KEY])
        self.class_names: list[str] = json.loads(metadata[CLASSES_KEY])
        self.has_nms = metadata[OUTPUTS_KEY] == "nms"
        self.input_size: tuple[int, int] = tuple(json.loads(metadata[SIZE_KEY]))
        self.nms_settings = json.loads(metadata[NMS_KEY])
        self.batch_size: int | None = json.loads(metadata[BATCH_KEY])
        self.any_size = metadata.get(DYNAMIC_KEY) == "all"

    def predict(self, batch: Batch) -> list[Detections]:
        """Detections per image in original pixels, best first (see `Detector.predict`)."""
        images = batch.images
        if not self.any_size and tuple(images.shape[-2:]) != self.input_size:
            h, w = self.input_size
            raise UserError(f"{self.source}: exported for {h}x{w} inputs, given {images.shape[-2]}x"
                            f"{images.shape[-1]}; resize the images to pipeline.size={h} (or export again "
                            "with size=..., or with dynamic=all for any size)")
        step = self.batch_size or len(images)
        chunks = [self._detect(images[i:i + step]) for i in range(0, len(images), step)]
        boxes, scores, labels, counts = (torch.cat(parts) for parts in zip(*chunks))
        return [
            Detections(undo_resize(boxes[i, :n], batch.scales[i], batch.offsets[i], batch.orig_sizes[i]),
                       scores[i, :n], labels[i, :n])
            for i, n in enumerate(counts.tolist())
        ]

    def _detect(self, images: Tensor) -> tuple[Tensor, ...]:
        """(boxes, scores, labels, num_detections) of the graph, NMS applied here for a raw export
        (class-aware, over all priors: without the heads' top-k, so it may keep a few more pairs; none for
        a head without NMS, whose raw scores are already its peaks).
        A fixed-batch graph gets its last, smaller chunk padded with blank images."""
        n = len(images)
        if self.batch_size and n < self.batch_size:
            images = torch.cat([images, images.new_zeros((self.batch_size - n, *images.shape[1:]))])
        outputs = [o[:n] for o in self.run(images)]
        if self.has_nms:
            return tuple(outputs)
        boxes, scores = outputs
        h, w = images.shape[-2:]
        boxes = torch.stack([boxes[..., 0].clamp(0, w), boxes[..., 1].clamp(0, h),
                             boxes[..., 2].clamp(0, w), boxes[..., 3].clamp(0, h)], dim=-1)
        scores = scores.transpose(1, 2)
        s = self.nms_settings
        selected = select_pairs(boxes, scores, s["nms_iou"], s["score_threshold"])
        return top_detections(boxes, scores, selected, s["max_detections"])

    def __repr__(self) -> str:
        size = "any size" if self.any_size else self.input_size
        return f"ExportedDetector({self.source}, {len(self.class_names)} classes, input {size})"


def load_onnx_model(path: str | Path, device: str = "cpu") -> tuple[ExportedDetector, DictConfig]:
    """An .onnx file written by tools/export.py as (model with `predict(batch)`, its run config).

    Args:
        device: cpu, cuda or cuda:N (onnxruntime's CUDA provider must be installed), or auto.
    """
    from .onnx import read_metadata, require

    ort = require("onnxruntime")

    path = Path(path)
    metadata = _read(path, read_metadata)
    session = ort.InferenceSession(str(path), providers=_providers(device, ort.get_available_providers()))

    def run(images: Tensor) -> list[Tensor]:
        return [torch.from_numpy(np.asarray(o)) for o in session.run(None, {"images": images.cpu().numpy()})]

    model = ExportedDetector(run, metadata, str(path))
    return model, model.config


def load_torchscript_model(path: str | Path, device: str = "cpu") -> tuple[ExportedDetector, DictConfig]:
    """A TorchScript file written by tools/export.py as (model with `predict(batch)`, its run config)."""
    import torchvision  # noqa: F401  (registers torchvision::nms, which the traced graph calls)

    from .torchscript import read_extra_files

    path = Path(path)
    module, metadata = _read(path, lambda p: read_extra_files(p, METADATA_KEYS))
    target = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          "cpu" if device == "auto" else device)
    module = module.to(target)

    def run(images: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return [o.cpu() for o in module(images.to(target))]

    model = ExportedDetector(run, metadata, str(path))
    return model, model.config


def _read(path: Path, reader: Callable):
    """`reader(path)`, a missing or unreadable file as one line naming it."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return reader(path)
    except UserError:
        raise  # already one line (onnx not installed, say)
    except Exception as e:  # noqa: BLE001 - the readers raise many kinds for a file of another kind
        raise UserError(f"{path}: not a readable exported model ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None


def _providers(device: str, available: list[str]) -> list[str]:
    """onnxruntime's execution providers for a device name."""
    if device == "cpu" or (device == "auto" and "CUDAExecutionProvider" not in available):
        return ["CPUExecutionProvider"]
    if device.startswith("cuda") or device == "auto":
        if "CUDAExecutionProvider" not in available:
            raise UserError(f"device={device}: this onnxruntime has no CUDA provider (it has "
                            f"{', '.join(available)}); install onnxruntime-gpu or use device=cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise UserError(f"device={device}: expected cpu, cuda, cuda:N or auto for an ONNX model")
