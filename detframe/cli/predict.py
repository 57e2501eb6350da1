"""`detframe-predict` / `python tools/predict.py`: run a trained model on images, a folder, a glob, a list
of files or a video, and write the drawn images (or an MP4), predictions.json and optional YOLO txt and
per-image JSON.

    python tools/predict.py checkpoint=PATH source=PATH|FOLDER|GLOB|LIST.txt|VIDEO [key=value ...]

Other `key=value` arguments change the config saved in the checkpoint (`model.head.nms_iou=0.5`).
The outputs are described in detframe/inference/outputs.py.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..rules import DEVICE, SIZE, Folder, NonEmpty, Probability, Range
from .common import Arg, parse_args, require_key_values, run_tool

log = logging.getLogger("detframe")
# What the summary line says of the files left out.
SKIPPED = {"unreadable": "unreadable", "not_images": "not images by their suffix", "missing": "missing"}


def _size(text: str) -> Any:
    """`320` -> 320; `[320,480]` -> [320, 480] (checked by the SIZE rule)."""
    value = yaml.safe_load(text)
    if not isinstance(value, (int, list)) or isinstance(value, bool):
        raise ValueError(text)
    return value


def _names(text: str) -> list[str]:
    """`[cat,dog]` or `cat,dog` -> ["cat", "dog"]."""
    return [item.strip() for item in text.strip().strip("[]").split(",") if item.strip()]


PREDICT_ARGS = {
    "checkpoint": Arg(None, "a detframe checkpoint (.pt) or an exported .onnx model", rule=NonEmpty("path")),
    "source": Arg(None, "an image, a folder, a glob pattern, a .txt list of images or a video file",
                  rule=NonEmpty("path")),
    "out": Arg(None, "the output folder (default <run>/predict/<n>, the first n not taken, where <run> is "
                     "the checkpoint's run folder)", rule=Folder()),
    "recursive": Arg("false", "true | false: a folder's subfolders too (and ** in a glob)", kind=bool),
    "batch_size": Arg("8", "images per forward pass", kind=int, rule=Range(1, integer=True)),
    "device": Arg("auto", "auto | cpu | cuda | cuda:N", rule=DEVICE),
    "score_threshold": Arg(None, "the model's score threshold (default: the trained config's)", kind=float,
                           rule=Probability),
    "max_detections": Arg(None, "detections per image (default: the trained config's)", kind=int,
                          rule=Range(1, integer=True)),
    "size": Arg(None, "input size instead of the trained one: N or [h,w]", kind=_size, rule=SIZE),
    "classes": Arg(None, "keep only these classes: [name,...] or [id,...]", kind=_names,
                   rule=NonEmpty("list of class names or ids")),
    "save_images": Arg("true", "true | false: images (or an MP4) with the detections drawn", kind=bool),
    "save_json": Arg("true", "true | false: predictions.json with every detection", kind=bool),
    "save_txt": Arg("false", "true | false: YOLO txt per image (class cx cy w h score, normalised)",
                    kind=bool),
    "save_per_image_json": Arg("false", "true | false: a JSON file per image", kind=bool),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(run_predict, argv)


def parse_predict_args(args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The tool's own arguments, read and checked, and the config overrides."""
    require_key_values(args, ", ".join(PREDICT_ARGS), "overrides of the checkpoint's config (key=value)")
    own, rest = parse_args(args, PREDICT_ARGS, "predict")
    for key in ("checkpoint", "source"):
        if key not in own:
            raise ConfigError(f"{key}=...: missing; predict needs checkpoint=PATH and source=PATH")
    return own, rest


def run_predict(args: Sequence[str]) -> dict[str, Any]:
    """Predict as the command line says; returns the counts (images, frames, detections, skipped) and
    the output folder."""
    from ..inference import Detector
    from ..inference.outputs import PredictionWriter
    from ..inference.sources import resolve_source

    own, overrides = parse_predict_args(args)
    source = resolve_source(own["source"], own["recursive"])
    checkpoint = Path(own["checkpoint"]).expanduser()
    detector = Detector.from_checkpoint(
        checkpoint, own["device"], score_threshold=own.get("score_threshold"),
        max_detections=own.get("max_detections"), size=own.get("size"), classes=own.get("classes"),
        batch_size=own["batch_size"], overrides=overrides)
    out = Path(own["out"]).expanduser() if "out" in own else default_out(checkpoint)
    writer = PredictionWriter(out, own["save_images"], own["save_json"], own["save_txt"],
                              own["save_per_image_json"])
    if source.video is not None:
        counts = _predict_video(detector, source.video, writer, own["save_images"])
    else:
        counts = _predict_images(detector, source, writer)
    written = writer.finish()
    if counts.get("video"):
        written.insert(0, counts["video"])
    elif own["save_images"]:
        written.insert(0, "images/")
    _summary(counts, writer.count, out, written)
    return {**counts, "detections": writer.count, "out": out}


def default_out(checkpoint: Path) -> Path:
    """<run>/predict/<n>: the checkpoint's run folder (above checkpoints/), the first free n from 1."""
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    n = 1
    while (run / "predict" / str(n)).exists():
        n += 1
    return run / "predict" / str(n)


def _predict_images(detector: Any, source: Any, writer: Any) -> dict[str, Any]:
    from ..inference.sources import read_images

    if source.not_images:
        shown = ", ".join(str(p) for p in source.not_images[:5])
        log.warning("source=%s: left out %d file(s) that are not images by their suffix: %s%s", source.text,
                    len(source.not_images), shown, ", ..." if len(source.not_images) > 5 else "")
    skipped: list[Path] = []
    done = 0
    with _progress(len(source.images), "images") as bar:
        for batch in _batches(read_images(source.images, skipped), detector.batch_size):
            paths, images = zip(*batch)
            for path, prediction in zip(paths, detector.predict_batch(images, [str(p) for p in paths])):
                writer.add(prediction, source.relative_name(path), image_id=done)
                done += 1
            bar.update(done + len(skipped) - bar.n)  # unreadable files count as done
    return {"images": done, "unreadable": len(skipped), "not_images": len(source.not_images),
            "missing": len(source.missing)}


def _predict_video(detector: Any, path: Path, writer: Any, save_video: bool) -> dict[str, Any]:
    from ..inference.outputs import VideoOutput
    from ..inference.sources import VideoFrames

    frames = VideoFrames(path)
    video = VideoOutput(writer.out / f"{path.stem}.mp4", frames.fps) if save_video else None
    done = 0
    try:
        with _progress(frames.count, "frames") as bar:
            for batch in _batches(iter(frames), detector.batch_size):
                for prediction in detector.predict_batch(batch, [str(path)] * len(batch)):
                    writer.add(prediction, Path(f"{path.stem}_{done:06d}"), image_id=done, frame=done)
                    if video is not None:
                        video.write(prediction.draw())
                    done += 1
                bar.update(len(batch))
    finally:
        if video is not None:
            video.close()
    if done == 0:
        raise ConfigError(f"source={path}: OpenCV read no frame from the video")
    return {"frames": done, "video": video.path.name if video is not None else ""}


def _batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _progress(total: int | None, unit: str) -> Any:
    """A tqdm bar with ETA on stderr (off when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit[:-1], desc="predict", file=sys.stderr, disable=None,
                dynamic_ncols=True)


def _summary(counts: dict[str, Any], detections: int, out: Path, written: list[str]) -> None:
    if "frames" in counts:
        what = f"{counts['frames']} frames"
    else:
        skipped = [f"{counts[k]} {text}" for k, text in SKIPPED.items() if counts[k]]
        what = f"{counts['images']} images" + (f" (skipped: {', '.join(skipped)})" if skipped else "")
    print(f"predicted {what}: {detections} detections; outputs in {out}/ ({', '.join(written) or 'nothing'})")
