"""The typed schema of a training config (configs/train.yaml) and the OmegaConf resolvers it uses.

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
    # [min, max]: a random input size per training batch (multiple of 32)
    multi_scale: Optional[list[int]] = None
    train: list[Any] = field(default_factory=list)
    val: list[Any] = field(default_factory=list)


@dataclass
class TrainLoopConfig:
    max_epochs: int = 12
    # iteration-based: stop after this many iterations (the schedule spans them)
    max_iters: Optional[int] = None
    val_interval: int = 1  # evaluate every N epochs (and after the last)
    log_interval: int = 10  # log and write TensorBoard scalars every N iterations
    accumulate: int = 1  # batches per optimizer step (gradient accumulation); an iteration is one step
    clip_grad_norm: Optional[float] = None  # clip the global gradient norm to this (None: no clipping)
    # optimizer.lr is for this total batch; scaled linearly to the real one
    base_batch_size: Optional[int] = None
    freeze: list[str] = field(default_factory=list)  # module-name patterns whose parameters are not trained
    freeze_norm: list[str] = field(default_factory=list)  # norm layers under these patterns frozen ("*": all)
    nonfinite: str = "error"  # a NaN/inf loss or gradient: error (stop) | skip (drop the step, count it)
    max_skipped: int = 50  # with nonfinite=skip: stop after this many non-finite steps in a row


@dataclass
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: the local rank's GPU)
    amp: str = "off"  # off | fp16 (with a GradScaler) | bf16: mixed precision of the forward pass and loss
    # NHWC memory format for the model and its inputs (faster convs on CPUs and GPUs)
    channels_last: bool = True
    compile: bool = False  # torch.compile the model's forward pass
    sync_bn: bool = False  # SyncBatchNorm across GPUs in distributed runs (CUDA only)
    deterministic: bool = False  # deterministic kernels and per-sample augmentation seeds: exact resume
    cudnn_benchmark: bool = True  # let cuDNN pick the fastest kernels (ignored when deterministic)
    dist_backend: str = "auto"  # auto (nccl on GPUs, gloo on CPUs) | nccl | gloo
    dist_timeout_minutes: float = 30.0  # how long a rank waits for the others in a collective
    find_unused_parameters: bool = False  # DDP: for models whose forward leaves some parameters unused


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
    # auto (the newest checkpoint of this experiment's runs) or a checkpoint path
    resume: Optional[str] = None
    load_from: Optional[str] = None  # a checkpoint to take weights from (fine-tuning)


ConfigStore.instance().store(name=SCHEMA_NAME, node=TrainConfig)
