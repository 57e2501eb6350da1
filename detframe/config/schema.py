"""The typed schema of a training config (configs/train.yaml) and the OmegaConf resolvers it uses.

The top-level sections (data, pipeline, train, runtime, ...) are dataclasses: a misspelt key or a
wrong type there fails when Hydra composes the config. A field's allowed values are rules in its
type (`batch_size: PositiveInt`, detframe/rules.py), checked right after composition by
`config.validate.check_config`; to add one, annotate the field. Component nodes (`model`,
`optimizer`, ...) are free-form mappings with a `type`; their keys are checked against the
constructor's signature and annotations (detframe/registry.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, OmegaConf

from ..rules import (
    DEVICE,
    SIZE,
    Distinct,
    Each,
    Increasing,
    NonEmpty,
    NonNegativeInt,
    OneOf,
    PositiveFloat,
    PositiveInt,
    Range,
)

SCHEMA_NAME = "detframe_schema"

OmegaConf.register_new_resolver("len", lambda items: len(items), replace=True)


@dataclass
class DataConfig:
    class_names: Annotated[list[str], NonEmpty(), Distinct()] = MISSING  # label i is class_names[i]
    num_classes: PositiveInt = II("len:${data.class_names}")
    root: str = MISSING  # dataset folder; the train/val nodes usually interpolate it
    generate: Optional[str] = None  # "shapes": generate the synthetic set at `root` if missing
    train: Any = None  # dataset node: {type: VOCDetection|CocoDetection, ...}
    val: Any = None
    batch_size: PositiveInt = 16  # images per batch and process
    val_batch_size: PositiveInt = 16
    num_workers: NonNegativeInt = 2
    size_divisor: PositiveInt = II("pipeline.size_divisor")  # pad batches to a multiple of this
    # bad input (unreadable file, unknown class): error | skip (drop the image, warn)
    on_error: Annotated[str, OneOf("error", "skip")] = "error"
    # read instance masks (COCO `segmentation` polygons / RLE) into Sample.masks, for Mask R-CNN
    with_masks: bool = False
    # image files checked at start-up: quick (headers, truncation) | full (decode) | off
    check: Annotated[str, OneOf("quick", "full", "off")] = "quick"
    # keep decoded images: ram | disk (under cache_dir)
    cache: Optional[Annotated[str, OneOf("ram", "disk")]] = None
    cache_dir: Optional[str] = None  # default ~/.cache/detframe/images
    aspect_ratio_grouping: bool = False  # batch landscape and portrait images apart (less padding)
    pin_memory: Optional[bool] = None  # default: when CUDA is available
    persistent_workers: Optional[bool] = None  # default: when num_workers > 0


@dataclass
class PipelineConfig:
    size: Annotated[Any, SIZE] = 320  # input size, int or [h, w]; the transform lists interpolate it
    # batches padded to a multiple of this (1 for fixed-size inputs such as SSD300)
    size_divisor: PositiveInt = 32
    # [min, max]: a random input size per training batch (multiple of 32)
    multi_scale: Optional[Annotated[list[int], Each(Range(1, integer=True), length=2), Increasing()]] = None
    train: list[Any] = field(default_factory=list)
    val: list[Any] = field(default_factory=list)


@dataclass
class TrainLoopConfig:
    max_epochs: PositiveInt = 12
    # iteration-based: stop after this many iterations (the schedule spans them)
    max_iters: Optional[PositiveInt] = None
    # wall-clock budget in minutes: after each epoch the run's length (and its LR schedule) is refitted to
    # the epochs that fit; max_epochs is then only the first guess (engine/budget.py)
    max_minutes: Optional[PositiveFloat] = None
    val_interval: NonNegativeInt = 1  # evaluate every N epochs (and after the last); 0: never
    log_interval: PositiveInt = 10  # log and write TensorBoard scalars every N iterations
    # batches per optimizer step (gradient accumulation); an iteration is one step
    accumulate: PositiveInt = 1
    # clip the global gradient norm to this (None: no clipping)
    clip_grad_norm: Optional[PositiveFloat] = None
    # optimizer.lr is for this total batch; scaled linearly to the real one
    base_batch_size: Optional[PositiveInt] = None
    freeze: list[str] = field(default_factory=list)  # module-name patterns whose parameters are not trained
    freeze_norm: list[str] = field(default_factory=list)  # norm layers under these patterns frozen ("*": all)
    # a NaN/inf loss or gradient: error (stop) | skip (drop the step, count it)
    nonfinite: Annotated[str, OneOf("error", "skip")] = "error"
    max_skipped: PositiveInt = 50  # with nonfinite=skip: stop after this many non-finite steps in a row


@dataclass
class RuntimeConfig:
    device: Annotated[str, DEVICE] = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: the rank's GPU)
    # off | fp16 (with a GradScaler) | bf16: mixed precision of the forward pass and loss (a bare YAML `off`
    # reads as false: accepted)
    amp: Annotated[str, OneOf("off", "fp16", "bf16", aliases=("False", "false", "none", "no", "0"))] = "off"
    # NHWC memory format for the model and its inputs (faster convs on CPUs and GPUs)
    channels_last: bool = True
    compile: bool = False  # torch.compile the model's forward pass
    sync_bn: bool = False  # SyncBatchNorm across GPUs in distributed runs (CUDA only)
    deterministic: bool = False  # deterministic kernels and per-sample augmentation seeds: exact resume
    cudnn_benchmark: bool = True  # let cuDNN pick the fastest kernels (ignored when deterministic)
    dist_backend: Annotated[str, OneOf("auto", "nccl", "gloo")] = "auto"  # auto (nccl on GPUs, gloo on CPUs)
    dist_timeout_minutes: PositiveFloat = 30.0  # how long a rank waits for the others in a collective
    find_unused_parameters: bool = False  # DDP: for models whose forward leaves some parameters unused


@dataclass
class TrainConfig:
    experiment_name: str = "run"
    seed: Annotated[int, Range(0, 2**32 - 1, integer=True)] = 0  # numpy takes seeds in [0, 2**32)
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
