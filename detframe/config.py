"""The typed schema of a training config and the OmegaConf resolvers it uses.

The top-level sections (data, pipeline, train, runtime, ...) are dataclasses: a misspelt key or a
wrong type there fails when Hydra composes the config. Component nodes (`model`, `optimizer`, ...)
are free-form mappings with a `type`; their keys are checked against the constructor's signature
when the registry builds them (detframe/registry.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, OmegaConf

SCHEMA_NAME = "detframe_schema"

OmegaConf.register_new_resolver("len", lambda items: len(items), replace=True)


@dataclass
class DataConfig:
    class_names: list[str] = MISSING  # label i is class_names[i]
    num_classes: int = II("len:${data.class_names}")
    root: str = MISSING  # dataset folder; the train/val nodes usually interpolate it
    generate: Optional[str] = None  # "shapes": generate the synthetic set at `root` if missing
    train: Any = None  # dataset node: {type: VOCDetection|CocoDetection, ...}
    val: Any = None
    batch_size: int = 16
    val_batch_size: int = 16
    num_workers: int = 2
    size_divisor: int = II("pipeline.size_divisor")  # pad batches to a multiple of this
    on_error: str = "error"  # bad input (unreadable file, unknown class): error | skip (drop the image, warn)
    check: str = "quick"  # image files checked at start-up: quick (headers, truncation) | full (decode) | off
    cache: Optional[str] = None  # keep decoded images: ram | disk (under cache_dir)
    cache_dir: Optional[str] = None  # default ~/.cache/detframe/images
    aspect_ratio_grouping: bool = False  # batch landscape and portrait images apart (less padding)
    pin_memory: Optional[bool] = None  # default: when CUDA is available
    persistent_workers: Optional[bool] = None  # default: when num_workers > 0


@dataclass
class PipelineConfig:
    size: Any = 320  # input size, int or [h, w]; the transform lists interpolate it
    size_divisor: int = 32  # batches padded to a multiple of this (1 for fixed-size inputs such as SSD300)
    multi_scale: Optional[list[int]] = None  # [min, max]: a random input size per training batch (multiple of 32)
    train: list[Any] = field(default_factory=list)
    val: list[Any] = field(default_factory=list)


@dataclass
class TrainLoopConfig:
    max_epochs: int = 12
    val_interval: int = 1  # evaluate every N epochs (and after the last)
    log_interval: int = 10  # log and write TensorBoard scalars every N iterations


@dataclass
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class TrainConfig:
    experiment_name: str = "run"
    seed: int = 0
    custom_imports: list[str] = field(default_factory=list)  # modules to import so their registrations run
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    evaluator: dict[str, Any] = field(default_factory=dict)
    hooks: dict[str, Any] = field(default_factory=dict)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    resume: Optional[str] = None  # a checkpoint to continue training from
    load_from: Optional[str] = None  # a checkpoint to take weights from (fine-tuning)


ConfigStore.instance().store(name=SCHEMA_NAME, node=TrainConfig)
