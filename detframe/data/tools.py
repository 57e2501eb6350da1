"""The entry points behind tools/check_dataset.py and tools/browse_dataset.py.

Both take the training command line (config=NAME|path.yaml, group choices, key=value overrides),
compose it as tools/train.py does, and add a few keys of their own.
"""
from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ..errors import ConfigError, UserError

log = logging.getLogger("detframe")


def split_args(args: Sequence[str], own: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Separate this tool's `key=value` arguments (keys of `own`, with their defaults) from the
    config overrides."""
    values, rest = dict(own), []
    for arg in args:
        key = arg.split("=", 1)[0]
        if "=" in arg and key in own:
            values[key] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return values, rest


def compose_config(args: Sequence[str]) -> DictConfig:
    """The training config for a command line, checked as tools/train.py checks it."""
    from ..cli import resolve_config_arg, validate_overrides
    from ..registry import import_modules

    cfg = validate_overrides("train", resolve_config_arg(args))
    import_modules(cfg.get("custom_imports") or [])
    return cfg


def run(main, argv: Sequence[str] | None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    try:
        return main(list(sys.argv[1:] if argv is None else argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


# -- check ----------------------------------------------------------------------------------------

CHECK_KEYS = {"level": "full", "splits": "train,val"}


def check_main(argv: Sequence[str] | None = None) -> int:
    """`python tools/check_dataset.py config=... [level=full|quick] [splits=train,val] [overrides]`."""
    return run(_check, argv)


def _check(args: list[str]) -> int:
    own, rest = split_args(args, CHECK_KEYS)
    quiet = logging.getLogger("detframe")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the report says what the start-up log lines would
    try:
        return _check_splits(own, compose_config(rest))
    finally:
        quiet.setLevel(level)


def _check_splits(own: dict[str, str], cfg: DictConfig) -> int:
    from .build import build_dataset
    from .check import check_dataset, format_report

    policy = cfg.data.get("on_error", "error")
    errors = 0
    for split in [s for s in own["splits"].split(",") if s]:
        dataset = build_dataset(cfg.data, split, None, check="off", on_error="collect")
        report = check_dataset(dataset, f"data.{split}", own["level"], settle=False)
        print(format_report(report), end="\n\n")
        errors += len(report.problems)
    if errors and policy == "skip":
        print(f"{errors} problems; with data.on_error=skip training drops the images concerned (a warning names each)")
        return 0
    if errors:
        print(f"{errors} problems: training stops at the first. Fix them, or set data.on_error=skip to drop the images concerned")
        return 1
    print("no problems found")
    return 0


# -- browse ---------------------------------------------------------------------------------------

BROWSE_KEYS = {"n": "16", "split": "train", "out": "browse", "seed": "0"}


def browse_main(argv: Sequence[str] | None = None) -> int:
    """`python tools/browse_dataset.py config=... [pipeline=...] [n=16] [split=train] [out=browse] [seed=0]`."""
    return run(_browse, argv)


def _browse(args: list[str]) -> int:
    from .build import build_dataset
    from .datasets.base import DetectionDataset
    from .samplers import SampleKey

    own, rest = split_args(args, BROWSE_KEYS)
    try:
        n, seed = int(own["n"]), int(own["seed"])
    except ValueError:
        raise ConfigError(f"n and seed must be integers, got n={own['n']} seed={own['seed']}") from None
    cfg = compose_config(rest)
    split = own["split"]
    pipeline = cfg.pipeline.train if split == "train" else cfg.pipeline.val
    dataset = build_dataset(cfg.data, split, pipeline)
    if not isinstance(dataset, DetectionDataset):
        raise ConfigError(f"data.{split}: browse_dataset needs a DetectionDataset, got {type(dataset).__name__}")
    rng = np.random.default_rng(seed)
    indices = rng.permutation(len(dataset))[:n] if n <= len(dataset) else rng.integers(len(dataset), size=n)
    out = Path(own["out"]).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    counts, ignored, tiles = Counter(), Counter(), []
    for k, index in enumerate(indices):
        sample = dataset[SampleKey(int(index), int(rng.integers(2**31)))]
        names = [dataset.class_names[int(i)] for i in sample.labels]
        counts.update(names)
        ignored.update(name for name, ig in zip(names, sample.ignore) if ig)
        picture = draw_sample(sample, dataset.class_names)
        path = out / f"{k:03d}_{Path(sample.file_name).stem}.png"
        write_png(path, picture)
        tiles.append(picture)
    write_png(out / "grid.png", grid(tiles))
    print(f"{len(tiles)} images of data.{split} after the {split} pipeline written to {out}/ (grid.png: all of them)")
    print(f"boxes per class in these images: " + (", ".join(f"{c} {counts[c]}" + (f" ({ignored[c]} ignored)" if ignored[c] else "")
                                                           for c in dataset.class_names) or "none"))
    return 0


def class_colours(num_classes: int) -> list[tuple[int, int, int]]:
    """Distinct, saturated colours (golden-ratio hue steps)."""
    import colorsys

    return [tuple(int(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.9, 1.0)) for i in range(num_classes)]


def draw_sample(sample, class_names: Sequence[str]) -> np.ndarray:
    """The sample's image (uint8 RGB [H, W, 3]) with its boxes (torchvision's draw_bounding_boxes)
    and class names drawn; ignored (difficult / crowd) boxes in grey."""
    import torch
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import draw_bounding_boxes

    if len(sample.boxes) == 0:
        return np.ascontiguousarray(sample.image)
    palette = class_colours(len(class_names))
    colours = [(160, 160, 160) if ig else palette[int(i)] for i, ig in zip(sample.labels, sample.ignore)]
    h, w = sample.image.shape[:2]
    image = torch.from_numpy(np.ascontiguousarray(sample.image)).permute(2, 0, 1)
    drawn = Image.fromarray(draw_bounding_boxes(image, torch.from_numpy(sample.boxes), colors=colours,
                                                width=max(1, round(max(h, w) / 320))).permute(1, 2, 0).numpy())
    # torchvision draws labels in PIL's 10 px bitmap font unless given a font file; a scaled one reads better.
    font = ImageFont.load_default(size=max(10, round(max(h, w) / 40)))
    draw = ImageDraw.Draw(drawn)
    for box, label, ignored, colour in zip(sample.boxes, sample.labels, sample.ignore, colours):
        text = class_names[int(label)] + (" (ignored)" if ignored else "")
        x, y = float(box[0]), float(box[1])
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        y -= (bottom - top) if y - (bottom - top) >= 0 else 0
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=colour)
        draw.text((x, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(drawn)


def grid(pictures: list[np.ndarray], tile: int = 320) -> np.ndarray:
    """Pictures scaled to fit `tile` x `tile` cells, in a near-square grid."""
    import cv2

    cols = max(1, int(np.ceil(np.sqrt(len(pictures)))))
    rows = max(1, int(np.ceil(len(pictures) / cols)))
    canvas = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for k, picture in enumerate(pictures):
        h, w = picture.shape[:2]
        f = tile / max(h, w)
        small = cv2.resize(picture, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        r, c = divmod(k, cols)
        canvas[r * tile:r * tile + small.shape[0], c * tile:c * tile + small.shape[1]] = small
    return canvas


def write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1])):
        raise UserError(f"cannot write {path}")
