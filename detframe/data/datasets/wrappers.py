"""Datasets made of datasets: concatenation (VOC 2007 + 2012) and repetition (a small set N times
per epoch), written as config nodes:

    train: {type: ConcatDataset, datasets: [{type: VOCDetection, ...}, {type: VOCDetection, ...}]}
    train: {type: RepeatDataset, times: 10, dataset: {type: VOCDetection, ...}}

`build_dataset` builds the inner datasets first (with the same class list) and passes them in.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ...errors import ConfigError
from ...registry import DATASETS
from ...structures import Sample
from .base import DetectionDataset
from .records import ImageRecord, Problem, unique_ids


@DATASETS.register()
class ConcatDataset(DetectionDataset):
    """The records of several datasets with the same classes, one after the other.

    Image ids are kept when they are unique across the parts, else renumbered 0..N-1 (VOC ids are
    positions in each list, so VOC 2007 + 2012 is renumbered). Evaluating a concatenation uses those
    ids and the first part's category ids.

    Args:
        datasets: the built parts.
        class_names: the classes (each part was built with them).
        transforms: callable applied to each `Sample`.
        on_error: "error" or "skip" (see `DetectionDataset`).
    """

    def __init__(self, datasets: Sequence[DetectionDataset], class_names: Sequence[str] | None = None,
                 transforms: Callable[[Sample], Sample] | None = None, on_error: str = "error") -> None:
        if not datasets:
            raise ConfigError("ConcatDataset.datasets: needs at least one dataset")
        names = list(class_names) if class_names is not None else datasets[0].class_names
        for d in datasets:
            if d.class_names != names:
                raise ConfigError(f"ConcatDataset: {d!r} has classes {d.class_names}, the first part {names}")
        super().__init__(names, transforms, on_error)
        self.parts = list(datasets)
        self.category_ids = list(datasets[0].category_ids)
        self.source = " + ".join(d.source or type(d).__name__ for d in datasets)
        records: list[ImageRecord] = [r for d in datasets for r in d.records]
        if not unique_ids(records):
            records = [replace(r, image_id=i) for i, r in enumerate(records)]
        self.records = records
        for d in datasets:
            self.quirks.update(d.quirks)
            self.problems.extend(d.problems)
            self.skipped |= d.skipped
        self.listed = sum(d.listed for d in datasets)
        self.with_masks = all(d.with_masks for d in datasets)

    def no_masks_reason(self) -> str:
        first = next(d for d in self.parts if not d.with_masks)
        return f"its part {first.source or first!r}: {first.no_masks_reason()}"

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", {len(self.parts)} parts)"


@DATASETS.register()
class RepeatDataset(DetectionDataset):
    """A dataset repeated `times` times per epoch (fewer, longer epochs for small sets: less
    evaluation and loader start-up overhead per image seen).

    Args:
        dataset: the built dataset.
        times: how many times each image appears per epoch.
        class_names: the classes (the dataset was built with them).
        transforms: callable applied to each `Sample`.
        on_error: "error" or "skip" (see `DetectionDataset`).
    """

    def __init__(self, dataset: DetectionDataset, times: int, class_names: Sequence[str] | None = None,
                 transforms: Callable[[Sample], Sample] | None = None, on_error: str = "error") -> None:
        if times < 1:
            raise ConfigError(f"RepeatDataset.times: expected a positive integer, got {times}")
        super().__init__(class_names if class_names is not None else dataset.class_names, transforms,
                         on_error)
        self.dataset, self.times = dataset, int(times)
        self.records = dataset.records
        self.category_ids = list(dataset.category_ids)
        self.source = dataset.source
        self.quirks, self.problems = dataset.quirks, dataset.problems
        self.listed, self.skipped = dataset.listed, dataset.skipped
        self.with_masks = dataset.with_masks

    def __len__(self) -> int:
        return len(self.records) * self.times

    def record(self, index: int) -> ImageRecord:
        return self.records[index % len(self.records)]

    def settle(self, problems: Sequence[Problem] | None = None) -> None:
        """Problems found later (image checks) are settled by the inner dataset, whose records these are."""
        if problems is not None:
            self.dataset.settle(problems)
            self.records = self.dataset.records

    def to_coco(self) -> dict:
        return self.dataset.to_coco()

    def no_boxes_reason(self) -> str | None:
        return self.dataset.no_boxes_reason()

    def no_masks_reason(self) -> str:
        return self.dataset.no_masks_reason()

    def __repr__(self) -> str:
        return f"RepeatDataset({self.times} x {self.dataset!r})"
