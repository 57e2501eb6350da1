"""The pipeline: a list of transforms applied in order, some of which mix in other images.

A transform is `__call__(Sample) -> Sample`, moving image and boxes together. A *mixing* transform
(Mosaic, MixUp) needs further images of the dataset: it subclasses `MixTransform`, and `Compose`
draws `num_mix` random samples from the dataset (`source`) and passes each through the transforms
listed *before* the mixing one, so that every image of a mosaic is at the same scale and a MixUp
partner is a mosaic too. All randomness comes from `numpy.random`, which the dataset seeds per
sample (see `DetectionDataset.__getitem__`), so a run is reproducible for any number of workers.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from ...registry import TRANSFORMS
from ...structures import Sample


class SampleSource(Protocol):
    """Where mixing transforms draw further images from: a dataset."""

    def __len__(self) -> int: ...
    def load_sample(self, index: int) -> Sample: ...


class MixTransform:
    """Base of the transforms that combine the current sample with `num_mix` others.

    Subclasses implement `mix(sample, others)`; `Compose` applies it with probability `p`.
    """

    num_mix: int = 1
    p: float = 1.0

    def mix(self, sample: Sample, others: list[Sample]) -> Sample:
        raise NotImplementedError

    def __call__(self, sample: Sample) -> Sample:
        raise TypeError(f"{type(self).__name__} mixes several images: use it inside a pipeline applied "
                        "by a dataset")


def transform_name(t: Any) -> str:
    """The name a transform is known by in configs: `Albu` transforms by their albumentations name."""
    return getattr(t, "name", None) or type(t).__name__


@TRANSFORMS.register()
class Compose:
    """Apply transforms in order; mixing transforms draw their extra images from `source`."""

    carries_masks = True  # when each of its transforms does (check_carries_masks looks inside)

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, source: SampleSource | None = None,
                 skip: Sequence[str] = ()) -> Sample:
        """Transform `sample`.

        Args:
            sample: the untransformed sample.
            source: the dataset that mixing transforms draw their other images from.
            skip: names of transforms to leave out (`PipelineSwitchHook` turns mosaic off this way).
        """
        return self._run(sample, len(self.transforms), source, tuple(skip))

    def _run(self, sample: Sample, stop: int, source: SampleSource | None, skip: tuple[str, ...]) -> Sample:
        for i, t in enumerate(self.transforms[:stop]):
            if skip and transform_name(t) in skip:
                continue
            if isinstance(t, MixTransform):
                if np.random.random() >= t.p:
                    continue
                if source is None or len(source) == 0:
                    raise TypeError(f"{transform_name(t)} needs a dataset to draw images from; "
                                    "apply the pipeline through one")
                others = [self._run(source.load_sample(int(np.random.randint(len(source)))), i, source, skip)
                          for _ in range(t.num_mix)]
                sample = t.mix(sample, others)
            else:
                sample = t(sample)
        return sample

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


def build_pipeline(cfgs: Sequence[Mapping[str, Any]] | None) -> Compose:
    """Build a `Compose` from a list of transform configs (each with a `type`)."""
    return Compose([TRANSFORMS.build(c) for c in (cfgs or [])])


def keep_boxes(sample: Sample, boxes: np.ndarray, keep: np.ndarray | None = None, **changes: Any) -> Sample:
    """A copy of `sample` with new `boxes` (one row per old box) of which only `keep` survive; masks
    (the sample's, or new ones in `changes`) follow `keep` too."""
    if keep is None:
        return replace(sample, boxes=boxes, **changes)
    masks = changes.pop("masks", sample.masks)
    return replace(sample, boxes=boxes[keep], labels=sample.labels[keep], ignore=sample.ignore[keep],
                   masks=None if masks is None else masks[keep], **changes)


def clip_and_filter(
    boxes: np.ndarray, size: tuple[int, int], area_before: np.ndarray, min_visibility: float, min_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Clip boxes to an image of `size` = (h, w) and drop those left too small.

    Args:
        boxes: [N, 4] xyxy after a geometric transform, possibly outside the image.
        area_before: [N] each box's area as it would be without clipping (same scale as `boxes`).
        min_visibility: drop a box when less than this fraction of `area_before` stays in the image.
        min_size: drop a box narrower or lower than this many pixels after clipping.

    Returns:
        (clipped boxes [N, 4], keep mask [N]).
    """
    h, w = size
    boxes = boxes.copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (bw > min_size) & (bh > min_size) & (bw * bh >= min_visibility * area_before)
    return boxes, keep
