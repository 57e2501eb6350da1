"""`Detector`: a trained model as a function from images to `Prediction`s, with the preprocessing of
evaluation.

    from detframe import Detector
    det = Detector.from_checkpoint("runs/x/checkpoints/best.pt", device="cpu")
    prediction = det("photo.jpg")                # or an RGB uint8 array, a PIL image, or a list of them
    prediction.boxes, prediction.class_names     # xyxy in the image's own pixels

Not to be confused with `detframe.models.detectors.base.Detector`, the ABC every model subclasses
(`loss(batch)`, `predict(batch)`): this class *wraps* such a model (or anything with that `predict`, such
as an ONNX runtime session) with its run config, and is what `from detframe import Detector` gives.

The images go through the SAME code as evaluation's: a `Sample` per image, the transforms built from
`pipeline.val` by `build_pipeline`, `Collate(data.size_divisor)`, then `model.predict(batch)`, so that
detections on a val image equal `tools/eval.py`'s (tests/inference/test_predict.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ..data.collate import Collate
from ..data.imagefile import read_image
from ..data.transforms import build_pipeline
from ..errors import ConfigError, DatasetError, UserError
from ..structures import Detections, Sample
from .results import Prediction

# Exported files by suffix, and the loader of detframe.export.runtime that runs each.
EXPORTED = {".onnx": "load_onnx_model", ".torchscript": "load_torchscript_model"}


class Detector:
    """A detection model with its run config: call it on images, get a `Prediction` per image.

    Args:
        model: anything with `predict(batch: Batch) -> list[Detections]` (boxes in original pixels): the
            torch detector, in eval mode on `device`, or an exported model's runner.
        config: the run config the model was trained with: `data.class_names`, `pipeline.val` and
            `data.size_divisor` are used.
        device: where the batches go: auto (CUDA when available), cpu, cuda, cuda:N.
        score_threshold: drop detections scoring at or below this. It can only remove what `model` gives:
            the model's own threshold (`model.head.score_threshold`) applies first; `from_checkpoint`
            sets that one too, so there a lower value does lower it.
        max_detections: keep at most this many detections per image (after the class filter).
        classes: keep only these classes (names or indices); None keeps all.
        batch_size: images per forward pass when called on a list.
    """

    def __init__(self, model: Any, config: DictConfig, device: str | torch.device = "cpu", *,
                 score_threshold: float | None = None, max_detections: int | None = None,
                 classes: Sequence[str | int] | None = None, batch_size: int = 8) -> None:
        if isinstance(model, torch.nn.Module):
            model.eval()
        self.model = model
        self.config = config
        self.device = _device(device)
        self.class_names = [str(n) for n in config.data.class_names]
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.class_ids = None if classes is None else class_indices(classes, self.class_names)
        self.batch_size = max(1, int(batch_size))
        self.transforms = build_pipeline(config.pipeline.val)
        self.collate = Collate(config.data.get("size_divisor", 1))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", *, score_threshold: float | None = None,
                        max_detections: int | None = None, size: int | Sequence[int] | None = None,
                        classes: Sequence[str | int] | None = None, batch_size: int = 8,
                        overrides: Sequence[str] = ()) -> Detector:
        """The model of a checkpoint (a `.pt` of detframe, the EMA's weights when the run kept them), or of
        a file tools/export.py wrote (`.onnx`, run by onnxruntime; `.torchscript`), with the config saved
        with it.

        Args:
            path: the checkpoint, `.onnx` or `.torchscript` file.
            device: auto | cpu | cuda | cuda:N.
            score_threshold: the model's score threshold (`model.head.score_threshold`, higher or lower
                than the trained config's); default: the config's.
            max_detections: the model's detections per image (`model.head.max_detections`); with
                `classes`, the detections kept per image of those classes (the model's own cap stays).
            size: the input size instead of `pipeline.size` (an int or [h, w]): every `size` of the
                `pipeline.val` transforms is set to it. An `.onnx` file takes it only when exported
                with dynamic=all (its images of another size are refused otherwise).
            classes: keep only these classes (names or indices).
            batch_size: images per forward pass.
            overrides: further `key=value` changes of the saved config (`model.head.nms_iou=0.5`).
        """
        path = Path(path).expanduser()
        if path.suffix.lower() in EXPORTED:
            if overrides:
                raise ConfigError(f"{' '.join(overrides)}: config overrides apply to a .pt checkpoint; the "
                                  f"model in {path} was fixed at export")
            model, config = _load_exported(path, device)
            if size is not None:
                _set_size(config, size)  # only a dynamic=all export takes it; the others refuse another size
        else:
            # with a class filter the cap applies after it, not inside the model (before it)
            head_max = max_detections if classes is None else None
            model, config = _load_torch(path, device, score_threshold, head_max, size, overrides)
        return cls(model, config, _model_device(model, device), score_threshold=score_threshold,
                   max_detections=max_detections, classes=classes, batch_size=batch_size)

    def __call__(self, images: Any, batch_size: int | None = None) -> Prediction | list[Prediction]:
        """Detect objects.

        Args:
            images: one image or a list of them; an image is a file path (read in stored pixel order, the
                EXIF orientation not applied, as datasets read it), a uint8 RGB numpy array [H, W, 3]
                (NOT OpenCV's BGR: convert with `image[:, :, ::-1]`), or a PIL image.
            batch_size: images per forward pass (default: the detector's).

        Returns:
            A `Prediction` for one image, a list of them (in order) for a list.
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        loaded = [load_image(item) for item in items]
        predictions = list(self.predict_arrays([image for image, _ in loaded], [s for _, s in loaded],
                                               batch_size))
        return predictions[0] if single else predictions

    def predict_arrays(self, images: Sequence[np.ndarray], sources: Sequence[str] | None = None,
                       batch_size: int | None = None) -> Iterable[Prediction]:
        """`Prediction`s of uint8 RGB [H, W, 3] arrays, `batch_size` at a time, yielded in order."""
        step = batch_size or self.batch_size
        sources = list(sources) if sources is not None else [""] * len(images)
        for start in range(0, len(images), step):
            yield from self.predict_batch(images[start:start + step], sources[start:start + step])

    @torch.no_grad()
    def predict_batch(self, images: Sequence[np.ndarray], sources: Sequence[str]) -> list[Prediction]:
        """One forward pass over `images` (uint8 RGB [H, W, 3] arrays)."""
        if len(images) == 0:
            return []
        samples = [self.transforms(_sample(image, i, source))
                   for i, (image, source) in enumerate(zip(images, sources))]
        batch = self.collate(samples).to(self.device)
        detections = self.model.predict(batch)
        return [self._prediction(det, image, source)
                for det, image, source in zip(detections, images, sources)]

    def _prediction(self, det: Detections, image: np.ndarray, source: str) -> Prediction:
        boxes, scores, labels = det.boxes.float().cpu(), det.scores.float().cpu(), det.labels.long().cpu()
        keep = torch.ones(len(scores), dtype=torch.bool)
        if self.score_threshold is not None:
            keep &= scores > self.score_threshold
        if self.class_ids is not None:
            keep &= torch.isin(labels, torch.tensor(self.class_ids, dtype=torch.long))
        index = keep.nonzero().flatten()[: self.max_detections]  # detections come best first
        labels_kept = labels[index].numpy()
        masks = None if det.masks is None else det.masks[index.to(det.masks.device)].bool().cpu().numpy()
        return Prediction(boxes=boxes[index].numpy(), scores=scores[index].numpy(), labels=labels_kept,
                          class_names=[self.class_names[int(c)] for c in labels_kept],
                          image_size=(int(image.shape[0]), int(image.shape[1])), source=source, image=image,
                          masks=masks)


def class_indices(classes: Sequence[str | int], names: Sequence[str]) -> list[int]:
    """Class names or indices (an int, or a string of digits that is no class name) -> indices; one-line
    error naming an unknown one and listing the names."""
    found = []
    for c in classes:
        text = str(c)
        if text in names:
            found.append(list(names).index(text))
        elif text.lstrip("-").isdigit() and 0 <= int(text) < len(names):
            found.append(int(text))
        else:
            raise ConfigError(f"classes: unknown class '{text}'; the model's classes are "
                              f"{', '.join(names)} (or their indices 0..{len(names) - 1})")
    return found


def load_image(item: Any) -> tuple[np.ndarray, str]:
    """(uint8 RGB [H, W, 3], source text) of a path, an array or a PIL image; one-line error otherwise."""
    if isinstance(item, (str, Path)):
        try:
            return read_image(Path(item).expanduser()), str(item)
        except DatasetError as e:  # without the dataset advice (data.on_error) that follows the ';'
            raise UserError(str(e).split(";")[0]) from None
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
            raise UserError(f"an image array must be uint8 RGB [H, W, 3]; got {item.dtype} "
                            f"{list(item.shape)}")
        return item, ""
    if hasattr(item, "convert") and hasattr(item, "size"):  # a PIL image, without importing PIL to check
        return np.asarray(item.convert("RGB")), str(getattr(item, "filename", "") or "")
    raise UserError(f"cannot predict on a {type(item).__name__}: give a file path, a uint8 RGB array "
                    "[H, W, 3] or a PIL image (or a list of them)")


def _sample(image: np.ndarray, index: int, source: str) -> Sample:
    """An image as the datasets give it to the transforms: no boxes, its size as the original size."""
    return Sample(image=np.ascontiguousarray(image), boxes=np.zeros((0, 4), np.float32),
                  labels=np.zeros(0, np.int64), image_id=index, orig_size=image.shape[:2], file_name=source)


def _load_torch(path: Path, device: str, score_threshold: float | None, max_detections: int | None,
                size: int | Sequence[int] | None, overrides: Sequence[str]) -> tuple[Any, DictConfig]:
    """The checkpoint's model built from its saved config (as changed by the arguments), weights loaded,
    in eval mode on `device`."""
    from ..config import apply_overrides, check_config, load_run_config
    from ..engine import inference_weights, load_checkpoint, select_device
    from ..engine.preflight import check_components
    from ..engine.setup import prepare_model
    from ..models import build_detector
    from ..registry import import_modules
    from ..weights import load_weights_into

    state = load_checkpoint(path, "checkpoint")
    config = load_run_config(path, state)
    config = apply_overrides(config, [*overrides, *_head_overrides(config, score_threshold, max_detections)])
    if size is not None:
        _set_size(config, size)
    import_modules(config.get("custom_imports") or [])
    check_config(config)
    check_components(config, ("model", "pipeline.val"))
    model = build_detector(config.model)
    load_weights_into(model, inference_weights(state, f"checkpoint={path}"), f"checkpoint={path}")
    channels_last = bool(config.runtime.get("channels_last", False))
    model = prepare_model(model, select_device(device), channels_last, sync_bn=False)
    return model.eval(), config


def _head_overrides(config: DictConfig, score_threshold: float | None,
                    max_detections: int | None) -> list[str]:
    """`model.<head>.<key>=value` for the given values, where the final head has such a key: `head` for
    one-stage models, `roi_head` for two-stage ones (their `rpn_head` makes proposals, not detections)."""
    wanted = {"score_threshold": score_threshold, "max_detections": max_detections}
    name = "roi_head" if OmegaConf.select(config, "model.roi_head") is not None else "head"
    head = OmegaConf.select(config, f"model.{name}") or {}
    return [f"model.{name}.{key}={value}" for key, value in wanted.items()
            if value is not None and key in head]


def _set_size(config: DictConfig, size: int | Sequence[int]) -> None:
    """Input size `size` for prediction: `pipeline.size` and the `size` of every `pipeline.val` transform
    (a saved config holds them resolved, so setting `pipeline.size` alone would change nothing)."""
    value = int(size) if isinstance(size, (int, np.integer)) else [int(s) for s in size]
    with open_dict(config):
        config.pipeline.size = value
        for node in config.pipeline.val or []:
            if "size" in node:
                node.size = value


def _load_exported(path: Path, device: str) -> tuple[Any, DictConfig]:
    """An exported file (tools/export.py) as (model with `predict`, run config), by its suffix."""
    from ..export import runtime

    return getattr(runtime, EXPORTED[path.suffix.lower()])(path, device)


def _model_device(model: Any, device: str) -> torch.device:
    """Where the model's batches go: its parameters' device (a torch model), else the device asked for."""
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return parameter.device if parameter is not None else _device(device)


def _device(device: str | torch.device) -> torch.device:
    """`auto` (CUDA when available), cpu, cuda, cuda:N, checked to exist."""
    from ..engine.setup import select_device

    return device if isinstance(device, torch.device) else select_device(str(device))
