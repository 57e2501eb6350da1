"""Datasets and loaders from the `data` and `pipeline` config sections."""
from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

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
) -> DataLoader:
    """A DataLoader yielding `Batch`es; shuffled with its own seeded generator when training."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) >= batch_size,
        num_workers=num_workers,
        collate_fn=Collate(size_divisor),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        generator=generator,
    )
