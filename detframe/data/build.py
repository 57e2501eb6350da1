"""Datasets and loaders from the `data` and `pipeline` config sections."""
from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, SequentialSampler

from ..dist import get_rank, get_world_size, is_distributed
from ..errors import ConfigError, DatasetError, choices_text
from ..registry import DATASETS
from .cache import ImageCache
from .check import check_dataset, exif_warning, summary_line
from .collate import Collate
from .datasets.base import DetectionDataset
from .samplers import InferenceSampler, KeyedDataset, TrainBatchSampler
from .synthetic import ensure_shapes
from .transforms import build_pipeline
from .transforms.masks import check_carries_masks

log = logging.getLogger(__name__)

# Datasets the project can make itself (`data.generate: shapes`).
GENERATORS = {"shapes": ensure_shapes}
# Config keys of dataset wrappers whose values are datasets to build first.
NESTED = {"datasets", "dataset"}


def build_dataset(data_cfg: DictConfig, split: str, pipeline_cfg: Any, check: str | None = None,
                  on_error: str | None = None) -> Dataset:
    """Build `data.<split>` with the class list of `data` and the transform list `pipeline_cfg`,
    check it (`data.check`, unless `check` overrides it) under the `data.on_error` policy (unless
    `on_error` overrides it), and cache its images when `data.cache` asks for it."""
    if data_cfg.get("generate"):
        name = data_cfg.generate
        if name not in GENERATORS:
            raise ConfigError(f"data.generate: unknown generator '{name}'. Known: {choices_text(GENERATORS)}")
        GENERATORS[name](data_cfg.root, with_masks=bool(data_cfg.get("with_masks", False)))
    if split not in data_cfg or data_cfg[split] is None:
        raise ConfigError(f"data.{split}: the data config defines no '{split}' dataset")
    options = {"class_names": list(data_cfg.class_names),
               "on_error": on_error or data_cfg.get("on_error", "error")}
    with_masks = bool(data_cfg.get("with_masks", False))
    pipeline = build_pipeline(pipeline_cfg)
    if with_masks:
        options["with_masks"] = True
        check_carries_masks(pipeline.transforms, f"pipeline.{split}")
    dataset = _build_node(data_cfg[split], options, transforms=pipeline)
    if with_masks:
        _check_masks(dataset, split)
    if isinstance(dataset, DetectionDataset):
        _check(dataset, split, check or data_cfg.get("check", "quick"))
        if data_cfg.get("cache"):
            cache = ImageCache(data_cfg.cache, data_cfg.get("cache_dir"))
            if cache.fill(dataset.records):
                dataset.cache = cache
    elif len(dataset) == 0:
        raise ConfigError(f"data.{split}: the dataset is empty ({dataset!r})")
    return dataset


def _check_masks(dataset: Dataset, split: str) -> None:
    """data.with_masks=true on a dataset that cannot give masks: one line naming it, before training."""
    if getattr(dataset, "with_masks", False):
        return
    name = getattr(dataset, "source", "") or repr(dataset)
    reason = dataset.no_masks_reason() if isinstance(dataset, DetectionDataset) else "it gives no masks"
    raise DatasetError(f"data.{split} ({name}): {reason}, so it has no instance masks; data.with_masks=true "
                       "(asked for by a model that needs instance masks) needs a COCO-format set with "
                       "'segmentation' polygons or RLE")


def _check(dataset: DetectionDataset, split: str, level: str) -> None:
    """The start-up check: bad files stop the run (or are dropped under on_error=skip), warnings are
    logged, and a split left without any box to use is an error whatever the policy."""
    report = check_dataset(dataset, f"data.{split}", level)
    log.info("%s", summary_line(report))
    for name in report.missing_classes:
        log.warning("data.%s: class '%s' of data.class_names has no instance in this split", split, name)
    if exif_warning(report):
        log.warning("%s", exif_warning(report))
    if report.no_boxes and dataset.on_error != "collect":
        raise DatasetError(report.no_boxes)


def _build_node(node: Any, options: dict[str, Any], transforms: Any = None) -> Dataset:
    """Build one dataset node, building nested dataset nodes (`datasets:`, `dataset:`) first."""
    if not hasattr(node, "get") or node.get("type") is None:
        return DATASETS.build(node)  # the registry reports the missing type
    parts: dict[str, Any] = {}
    for key in NESTED & set(node.keys()):
        value = node[key]
        parts[key] = ([_build_node(v, options) for v in value] if key == "datasets"
                      else _build_node(value, options))
    target = DATASETS.get(node.type)
    accepted = inspect.signature(target.__init__).parameters
    for name, value in options.items():
        if name in accepted and name not in node:
            parts[name] = value
    if transforms is not None and "transforms" in accepted:
        parts["transforms"] = transforms
    return DATASETS.build(node, **parts)


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    train: bool,
    size_divisor: int = 1,
    seed: int = 0,
    distributed: bool = False,
    *,
    aspect_ratio_grouping: bool = False,
    multi_scale: Sequence[int] | None = None,
    pin_memory: bool | None = None,
    persistent_workers: bool | None = None,
) -> DataLoader:
    """A DataLoader yielding `Batch`es.

    Args:
        dataset: the dataset. For training it gets `SampleKey`s carrying per-sample seeds (a dataset
            other than a `DetectionDataset` is wrapped in `KeyedDataset`, which seeds and unwraps them).
        batch_size: images per batch, per process.
        num_workers: loader processes (0: load in the main process).
        train: shuffle (a permutation per epoch from the loader's generator, which the runner
            reseeds from (seed, epoch)), drop the last incomplete batch, and allow grouping and
            multi-scale; otherwise the images in order.
        size_divisor: pad each batch's height and width to a multiple of this.
        seed: seed of the loader's generator.
        distributed: shard across the processes of the initialised torch.distributed group: a
            DistributedSampler for training (call `set_epoch(loader, epoch)` each epoch), an unpadded
            contiguous shard for evaluation.
        aspect_ratio_grouping: batch landscape and portrait images separately (less padding).
        multi_scale: (min, max): a random input size per batch, a multiple of 32 (training only).
        pin_memory: page-locked batches for faster host-to-GPU copies (default: when CUDA is available).
        persistent_workers: keep workers between epochs (default: when there are workers).
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    rank, world = _dist_info(distributed)
    if train:
        sampler = (DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
                   if distributed else None)
        count = len(sampler) if sampler is not None else len(dataset)
        groups = None
        if aspect_ratio_grouping and isinstance(dataset, DetectionDataset):
            groups = (dataset.aspect_ratios() < 1.0).astype(int)
        batch_sampler = TrainBatchSampler(len(dataset), batch_size, generator,
                                          drop_last=count >= batch_size, sampler=sampler, group_ids=groups,
                                          multi_scale=multi_scale, rank=rank)
        if not isinstance(dataset, DetectionDataset):
            dataset = KeyedDataset(dataset)  # your own dataset: seeded per sample like ours
    else:
        index_sampler = (InferenceSampler(len(dataset), rank, world) if distributed
                         else SequentialSampler(dataset))
        batch_sampler = BatchSampler(index_sampler, batch_size, drop_last=False)
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=Collate(size_divisor),
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0 and (persistent_workers is None or persistent_workers),
        generator=generator,
        worker_init_fn=_worker_init,
    )


def _worker_init(worker_id: int) -> None:
    """OpenCV's own thread pool in every worker oversubscribes the CPU (torch already uses one thread
    per worker); the workers are the parallelism.

    SIGTERM ends a worker with exit code 0, as PyTorch's workers already end on SIGINT. A scheduler's
    SIGTERM reaches the whole process group; a worker killed by it makes PyTorch's SIGCHLD handler raise
    in the main process, in the middle of the checkpoint the main process is writing on that same signal
    (engine/signals.py). Ignoring the signal instead would hang the exit of a main process that stops
    on an error: multiprocessing then ends its workers with SIGTERM and waits for them."""
    import signal

    import cv2

    cv2.setNumThreads(0)
    signal.signal(signal.SIGTERM, _exit_quietly)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def train_loader_options(cfg: DictConfig) -> dict[str, Any]:
    """The optional `build_dataloader` arguments a training config sets (data.* and pipeline.multi_scale)."""
    data = cfg.data
    return {
        "aspect_ratio_grouping": bool(data.get("aspect_ratio_grouping", False)),
        "multi_scale": list(cfg.pipeline.multi_scale) if cfg.pipeline.get("multi_scale") else None,
        "pin_memory": data.get("pin_memory"),
        "persistent_workers": data.get("persistent_workers"),
    }


def _dist_info(distributed: bool) -> tuple[int, int]:
    if not distributed:
        return 0, 1
    if not is_distributed():
        raise ConfigError("build_dataloader(distributed=True) needs an initialised torch.distributed "
                          "process group (launch with torchrun)")
    return get_rank(), get_world_size()


def set_epoch(loader: Any, epoch: int) -> None:
    """Tell the loader's samplers the epoch: DistributedSampler shuffles by (seed, epoch). A loader
    without samplers (a list of batches) is left alone."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    candidates = (batch_sampler, getattr(batch_sampler, "sampler", None), getattr(loader, "sampler", None))
    for sampler in {id(s): s for s in candidates if s is not None}.values():
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)


def set_skip(loader: DataLoader, names: Sequence[str]) -> None:
    """Leave the transforms named `names` out of the training pipeline from the next epoch on
    (names travel with each sample's key, so persistent workers follow)."""
    if not isinstance(loader.batch_sampler, TrainBatchSampler):
        raise ConfigError("set_skip: the loader is not a training loader built by "
                          "build_dataloader(train=True)")
    loader.batch_sampler.skip = tuple(names)
