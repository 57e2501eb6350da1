"""`detframe-check-dataset` and `detframe-browse-dataset` (tools/check_dataset.py, tools/browse_dataset.py).

Both take the training command line (config=NAME|path.yaml, group choices, key=value overrides),
compose it as tools/train.py does, and add a few keys of their own (`CHECK_ARGS`, `BROWSE_ARGS`), checked
before any data is read.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from ..config import compose
from ..errors import ConfigError
from ..registry import import_modules
from ..rules import Folder, NonEmpty, NonNegativeInt, OneOf, PositiveInt
from .common import Arg, check_split, comma_list, parse_args, run_tool

log = logging.getLogger("detframe")


def compose_config(args: Sequence[str]) -> DictConfig:
    """The training config for a command line, checked as tools/train.py checks it."""
    cfg = compose(args)
    import_modules(cfg.get("custom_imports") or [])
    return cfg


# -- check_dataset ----------------------------------------------------------------------------------------

CHECK_ARGS = {
    "level": Arg("full", "image files: full (decode) | quick (headers) | off (the annotations only)",
                 rule=OneOf("full", "quick", "off")),
    "splits": Arg("train,val", "comma-separated splits of the data config", kind=comma_list,
                  rule=NonEmpty("list of splits")),
}


def check_main(argv: Sequence[str] | None = None) -> int:
    """`python tools/check_dataset.py config=... [level=full|quick] [splits=train,val] [overrides]`."""
    return run_tool(_check, argv)


def _check(args: list[str]) -> int:
    own, rest = parse_args(args, CHECK_ARGS, "check_dataset")
    cfg = compose_config(rest)
    for split in own["splits"]:
        check_split("splits", split, cfg)
    quiet = logging.getLogger("detframe")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the report says what the start-up log lines would
    try:
        return _check_splits(own, cfg)
    finally:
        quiet.setLevel(level)


def _check_splits(own: dict[str, Any], cfg: DictConfig) -> int:
    from ..data import build_dataset
    from ..data.check import check_dataset, format_report, warning_count

    policy = cfg.data.get("on_error", "error")
    errors = warnings = empty = 0
    for split in own["splits"]:
        dataset = build_dataset(cfg.data, split, None, check="off", on_error="collect")
        report = check_dataset(dataset, f"data.{split}", own["level"], settle=False)
        print(format_report(report), end="\n\n")
        errors += len(report.problems)
        empty += report.no_boxes is not None
        warnings += warning_count(report)
    if empty:  # no policy trains on (or evaluates) a split without boxes
        print(f"{errors + empty} problems: training stops at the first. Fix them" +
              (", or set data.on_error=skip to drop the images concerned" if errors else ""))
        return 1
    if errors and policy == "skip":
        print(f"{errors} problems; with data.on_error=skip training drops the images concerned "
              "(a warning names each)")
        return 0
    if errors:
        print(f"{errors} problems: training stops at the first. Fix them, or set data.on_error=skip "
              "to drop the images concerned")
        return 1
    print("no problems found" + (f" ({warnings} warnings above)" if warnings else ""))
    return 0


# -- browse_dataset ---------------------------------------------------------------------------------------

BROWSE_ARGS = {
    "n": Arg("16", "number of images", kind=int, rule=PositiveInt),
    "split": Arg("train", "a split of the data config"),
    "out": Arg("browse", "the folder the PNGs are written to", rule=Folder()),
    "seed": Arg("0", "which images and augmentations", kind=int, rule=NonNegativeInt),
}


def browse_main(argv: Sequence[str] | None = None) -> int:
    """`python tools/browse_dataset.py config=... [pipeline=...] [n=16] [split=train] [out=browse]
    [seed=0]`."""
    return run_tool(_browse, argv)


def _browse(args: list[str]) -> int:
    from ..data import DetectionDataset, SampleKey, build_dataset
    from ..vis import draw_sample, grid, write_png

    own, rest = parse_args(args, BROWSE_ARGS, "browse_dataset")
    n, seed = own["n"], own["seed"]
    cfg = compose_config(rest)
    split = own["split"]
    check_split("split", split, cfg)
    pipeline = cfg.pipeline.train if split == "train" else cfg.pipeline.val
    dataset = build_dataset(cfg.data, split, pipeline)
    if not isinstance(dataset, DetectionDataset):
        raise ConfigError(f"data.{split}: browse_dataset needs a DetectionDataset, "
                          f"got {type(dataset).__name__}")
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
    print(f"{len(tiles)} images of data.{split} after the {split} pipeline written to {out}/ "
          "(grid.png: all of them)")
    print("boxes per class in these images: "
          + (", ".join(f"{c} {counts[c]}" + (f" ({ignored[c]} ignored)" if ignored[c] else "")
                       for c in dataset.class_names) or "none"))
    return 0
