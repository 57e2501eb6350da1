"""Datasets and loaders from the `data` and `pipeline` config sections."""
from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import ConfigError, choices_text
from ..registry import DATASETS
from .collate import Collate
from .synthetic import ensure_shapes
from .transforms import build_pipeline

log = logging.getLogger(__name__)

# Datasets the project can make itself (`data.generate: shapes`).
GENERATORS = {"shapes": ensure_shapes}


def build_dataset(data_cfg: DictConfig, split: str, pipeline_cfg: Any) -> Dataset:
    """Build `data.<split>` with the class list of `data` and the transform list `pipeline_cfg`."""
    if data_cfg.get("generate"):
        name = data_cfg.generate
        if name not in GENERATORS:
            raise ConfigError(f"data.generate: unknown generator '{name}'. Known: {choices_text(GENERATORS)}")
        GENERATORS[name](data_cfg.root)
    if split not in data_cfg or data_cfg[split] is None:
        raise ConfigError(f"data.{split}: the data config defines no '{split}' dataset")
    dataset = DATASETS.build(data_cfg[split], class_names=list(data_cfg.class_names), transforms=build_pipeline(pipeline_cfg))
    if len(dataset) == 0:
        raise ConfigError(f"data.{split}: the dataset is empty ({dataset!r})")
    log.info("data.%s: %r", split, dataset)
    return dataset


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    train: bool,
    size_divisor: int = 1,
    seed: int = 0,
    distributed: bool = False,
) -> DataLoader:
    """A DataLoader yielding `Batch`es; shuffled with its own seeded generator when training.

    With `distributed`, each process gets its share: a DistributedSampler (the same order on every rank,
    from `seed` and the epoch) for training, and every world_size-th image, unpadded, for evaluation
    (so that no image is evaluated twice). `batch_size` is per process.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = None
    if distributed:
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        sampler = (DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed) if train
                   else range(rank, len(dataset), world))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train and len(dataset) >= batch_size,
        num_workers=num_workers,
        collate_fn=Collate(size_divisor),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        generator=generator,
    )
    loader.seed = seed  # for set_epoch
    return loader


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Make the shuffle order and the worker seeds of `epoch` depend on (seed, epoch, rank) only, so a
    resumed run sees the same order as an uninterrupted one."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if loader.generator is not None:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        # The generator also seeds the loader workers: ranks must not share augmentation streams.
        loader.generator.manual_seed(int(getattr(loader, "seed", 0)) * 1000 + epoch + 1_000_003 * rank)
