"""albumentations inside detframe pipelines: any transform by name (`Albu`), and SSD's photometric
distortion composed from albumentations transforms (`PhotoMetricDistortion`).

albumentations (2.x) draws from its own generators, which ignore `numpy.random.seed` and are copied
as they are into every DataLoader worker (so two workers would augment identically). Each call
therefore reseeds them from `numpy.random`, which the dataset seeds per sample: runs are
reproducible and workers differ.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import albumentations as A
import numpy as np

from ...errors import ConfigError, did_you_mean
from ...registry import TRANSFORMS
from ...rules import NonNegativeFloat, Probability, Range, min_max
from ...structures import Sample

# albumentations' transforms that take other transforms; their children are written as
# {transform: Name, ...} mappings under `transforms`.
COMPOSITES = ("OneOf", "SomeOf", "RandomOrder", "Sequential", "SelectiveChannelTransform")


def albu_transform(name: str, kwargs: Mapping[str, Any], where: str = "Albu") -> A.BasicTransform:
    """Instantiate albumentations' transform `name`; nested composites are built recursively."""
    target = getattr(A, name, None)
    if (target is None or not isinstance(target, type)
            or not issubclass(target, (A.BasicTransform, A.BaseCompose))):
        names = [n for n in dir(A) if n[:1].isupper()]
        raise ConfigError(f"{where}.transform: albumentations has no transform "
                          f"'{name}'.{did_you_mean(name, names)}")
    kwargs = dict(kwargs)
    if name in COMPOSITES:
        children = kwargs.pop("transforms", None)
        if not isinstance(children, Sequence) or not children:
            raise ConfigError(f"{where}({name}): needs `transforms`, a list of "
                              f"{{transform: Name, ...}} mappings")
        kwargs["transforms"] = [_child(c, f"{where}({name})") for c in children]
    if name in ("Mosaic",):
        raise ConfigError(f"{where}({name}): albumentations' mixing transforms need the other images; "
                          "use detframe's {type: Mosaic} / {type: MixUp}, which draw them from the dataset")
    try:
        return target(**kwargs)
    except (TypeError, ValueError) as e:  # albumentations validates its arguments with pydantic
        raise ConfigError(f"{where}({name}): {' '.join(str(e).split())}") from None


def _child(cfg: Any, where: str) -> A.BasicTransform:
    if not isinstance(cfg, Mapping) or "transform" not in cfg:
        raise ConfigError(f"{where}.transforms: expected {{transform: Name, ...}} mappings, got {cfg!r}")
    kwargs = {k: v for k, v in cfg.items() if k != "transform"}
    return albu_transform(cfg["transform"], kwargs, where)


def _leaves(op: Any) -> list[Any]:
    if isinstance(op, A.BaseCompose):
        return [leaf for t in op.transforms for leaf in _leaves(t)]
    return [op]


def _is_geometric(op: Any) -> bool:
    if isinstance(op, A.BaseCompose):
        return any(_is_geometric(t) for t in op.transforms)
    return not isinstance(op, A.ImageOnlyTransform)


FactorPair = min_max(Range(0))  # [min, max] of a multiplicative factor


class _Seeded:
    """An `A.Compose` whose random generators are reseeded from `numpy.random` at every call."""

    def __init__(self, ops: list[Any], bbox_params: A.BboxParams | None) -> None:
        self.compose = A.Compose(ops, bbox_params=bbox_params, strict=False)
        self._parts = [self.compose, *_walk(self.compose.transforms)]

    def __call__(self, **data: Any) -> dict[str, Any]:
        seed = int(np.random.randint(2**31))
        # One generator pair shared by all parts: cheaper than set_random_seed on each (~35 us per call).
        rng, py_random = np.random.default_rng(seed), random.Random(seed)
        for part in self._parts:
            part.random_generator, part.py_random = rng, py_random
        return self.compose(**data)


def _walk(transforms: Sequence[Any]) -> list[Any]:
    out = []
    for t in transforms:
        out.append(t)
        if isinstance(t, A.BaseCompose):
            out += _walk(t.transforms)
    return out


@TRANSFORMS.register()
class Albu:
    """Any albumentations transform by name, bbox-aware:
    `{type: Albu, transform: RandomBrightnessContrast, p: 0.5}`.

    Composites take a list of children: `{type: Albu, transform: OneOf, p: 0.3, transforms:
    [{transform: Blur, blur_limit: 3}, {transform: MedianBlur}]}`. Boxes go through albumentations'
    `pascal_voc` format (absolute xyxy); boxes that a geometric transform pushes out of the image, or
    leaves less than `min_visibility` of their area, are dropped with their labels. Geometric
    transforms here are for training: they are not tracked in `Sample.scale`.
    """

    def __init__(self, transform: str, min_visibility: Probability = 0.0, min_area: NonNegativeFloat = 1.0,
                 p: Probability | None = None, **kwargs: Any) -> None:
        if p is not None:  # a named argument so that its range is checked with the config's other values
            kwargs["p"] = p
        op = albu_transform(transform, kwargs)
        self.name = transform
        # Pixel-only transforms leave boxes alone; only geometric ones need albumentations' box handling.
        self.geometric = _is_geometric(op)
        # albumentations moves masks (its `masks` target) with the image in every dual transform.
        self.carries_masks = all("masks" in leaf.targets for leaf in _leaves(op) if _is_geometric(leaf))
        bbox_params = A.BboxParams(format="pascal_voc", label_fields=["indices"],
                                   min_visibility=min_visibility, min_area=min_area)
        self.pipeline = _Seeded([op], bbox_params if self.geometric else None)

    def __call__(self, sample: Sample) -> Sample:
        if not self.geometric:
            return replace(sample, image=self.pipeline(image=sample.image)["image"])
        h, w = sample.size
        boxes = sample.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        masks = {"masks": sample.masks} if sample.masks is not None and len(sample.masks) else {}
        out = self.pipeline(image=sample.image, bboxes=boxes, indices=np.arange(len(boxes)), **masks)
        keep = np.asarray(out["indices"], np.int64)
        new_boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        return replace(sample, image=out["image"], boxes=new_boxes, labels=sample.labels[keep],
                       ignore=sample.ignore[keep], masks=self._masks(sample, out, keep))

    @staticmethod
    def _masks(sample: Sample, out: dict[str, Any], keep: np.ndarray) -> np.ndarray | None:
        """The transformed masks of the boxes albumentations kept ([0, h, w] when none is left)."""
        if sample.masks is None:
            return None
        if "masks" not in out:
            return np.zeros((0, *out["image"].shape[:2]), np.uint8)
        return np.asarray(out["masks"], np.uint8)[keep]

    def __repr__(self) -> str:
        return f"Albu({self.name})"


@TRANSFORMS.register()
class PhotoMetricDistortion:
    """SSD's photometric distortion: brightness, contrast, saturation and hue, each applied with
    probability `p_each`, in random order (the reference Caffe SSD and mmdetection recipe), composed
    from albumentations transforms.

    Args:
        brightness_delta: add a value in [-delta, delta] to every pixel (0..255 scale).
        contrast_range: multiply pixel values by a factor from this range.
        saturation_range: scale saturation by a factor from this range.
        hue_delta: shift hue by up to this many OpenCV hue units (0..180 is the full circle).
        p_each: probability of each of the four distortions.
    """

    carries_masks = True  # pixel values only

    def __init__(
        self,
        brightness_delta: NonNegativeFloat = 32,
        contrast_range: FactorPair = (0.5, 1.5),
        saturation_range: FactorPair = (0.5, 1.5),
        hue_delta: NonNegativeFloat = 18,
        p_each: Probability = 0.5,
    ) -> None:
        lo, hi = contrast_range
        ops = [
            A.RandomBrightnessContrast(brightness_limit=brightness_delta / 255, contrast_limit=0,
                                       brightness_by_max=True, p=p_each),
            A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(lo - 1, hi - 1), p=p_each),
            A.ColorJitter(brightness=0, contrast=0, saturation=tuple(saturation_range), hue=0, p=p_each),
            A.HueSaturationValue(hue_shift_limit=hue_delta, sat_shift_limit=0, val_shift_limit=0, p=p_each),
        ]
        self.pipeline = _Seeded([A.RandomOrder(ops, n=len(ops), p=1.0)], None)
        self.args = (brightness_delta, tuple(contrast_range), tuple(saturation_range), hue_delta, p_each)

    def __call__(self, sample: Sample) -> Sample:
        return replace(sample, image=self.pipeline(image=sample.image)["image"])

    def __repr__(self) -> str:
        return ("PhotoMetricDistortion(brightness_delta={}, contrast_range={}, saturation_range={}, "
                "hue_delta={}, p_each={})").format(*self.args)
