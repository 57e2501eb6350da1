"""Checks before a run reads its data or trains, beyond the config's own values (config/validate.py,
run when the config is composed): the component nodes built only after the datasets are read (optimizer,
schedule, evaluators, transforms), checked without building them, and the built model against the
config (BatchNorm with a batch of one image, the input size against the model's stride, and one blank
image of the smallest training size through the model, which catches any size its layers do not fit).

They live here because they need the registries or the model, which the config package does not
import. A check of the model against the config goes in `check_model`, one of the training loader in
`check_train_loader`; both raise `ConfigError` with one line naming the key and its value.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from ..config.validate import value_of
from ..data.collate import Collate
from ..errors import ConfigError
from ..models import check_detector
from ..registry import EVALUATORS, TRANSFORMS
from ..rules import show
from ..structures import Sample
from .optim import check_optimizer
from .schedules import check_scheduler

# What the training sampler draws multi-scale sizes from: multiples of this (data/samplers.py).
MULTI_SCALE_STEP = 32
# torch's message when BatchNorm in training mode meets one value per channel.
BATCHNORM_ONE_VALUE = "Expected more than 1 value per channel when training"
ALL_SECTIONS = ("optimizer", "scheduler", "evaluator", "pipeline.train", "pipeline.val")


def check_components(cfg: DictConfig, sections: Sequence[str] = ALL_SECTIONS) -> None:
    """Check the component nodes of `sections` (`model`, `optimizer`, `scheduler`, `evaluator`,
    `pipeline.train`, `pipeline.val`) against their signatures and rules, without building them."""
    if "model" in sections:
        check_detector(cfg.model)
    if "optimizer" in sections and cfg.get("optimizer"):
        check_optimizer(cfg.optimizer)
    if "scheduler" in sections and cfg.get("scheduler"):
        check_scheduler(cfg.scheduler)
    evaluators = cfg.get("evaluator")
    if "evaluator" in sections and isinstance(evaluators, DictConfig):
        nodes = [evaluators] if "type" in evaluators else [n for n in evaluators.values() if n is not None]
        for node in nodes:
            if isinstance(node, DictConfig) and "type" in node:  # build_evaluator reports the others
                EVALUATORS.check(node)
    for split in ("train", "val"):
        if f"pipeline.{split}" in sections:
            for node in cfg.pipeline.get(split) or []:
                TRANSFORMS.check(node)


def batchnorm_layers(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers that compute batch statistics in training (frozen ones are
    FrozenBatchNorm2d by then, engine/freeze.py)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def batchnorm_message(culprit: str, layers: Sequence[str],
                      what: str = "a batch of one image per process") -> str:
    """One line for a batch of one image meeting BatchNorm layers in training mode."""
    where = f" ({', '.join(layers[:2])}{', ...' if len(layers) > 2 else ''})" if layers else ""
    return (f"{culprit}: {what}, and the model trains {len(layers) or 'its'} BatchNorm layers{where}, "
            "which need at least 2 images; set data.batch_size>=2, or freeze them with "
            "train.freeze_norm=[*] (or a pattern such as [backbone]), or use GroupNorm")


def check_model(cfg: DictConfig, model: nn.Module, world_size: int = 1) -> None:
    """The built (and frozen) model against the config, before any data is read."""
    check_masks(cfg, model)
    batch_size = value_of(cfg.data, "batch_size")
    if batch_size == 1 and not _synced(cfg, world_size):
        layers = batchnorm_layers(model)
        if layers:
            raise ConfigError(batchnorm_message("data.batch_size=1", layers))
    _check_input_size(cfg, model)
    _check_forward(cfg, model)


def check_masks(cfg: DictConfig, model: nn.Module) -> None:
    """A model that trains on instance masks (`requires_masks`, Mask R-CNN) needs data read with them;
    the dataset itself is checked when it is built (a layout or a file without masks: data/build.py)."""
    if not getattr(model, "requires_masks", False) or value_of(cfg.data, "with_masks"):
        return
    node = cfg.data.get("train")
    where = f"data.train ({_dataset_text(node)})" if node is not None else "the dataset"
    raise ConfigError(f"data.with_masks=false: the model ({type(model).__name__}) needs instance masks, and "
                      f"{where} is read without them; set data.with_masks=true with a COCO-format set "
                      "whose annotations have 'segmentation' polygons or RLE")


def _dataset_text(node: Any) -> str:
    """A dataset node as a user knows it: its type and file or folder."""
    if not isinstance(node, DictConfig):
        return str(node)
    for key in ("ann_file", "root", "images"):
        value = value_of(node, key)
        if value:
            return f"{node.get('type')} {value}"
    return str(node.get("type"))


def check_train_loader(cfg: DictConfig, loader: Any, model: nn.Module, world_size: int = 1) -> None:
    """A training set of a single image per process gives batches of one image whatever the batch size
    (the loader keeps an incomplete batch only when there is no complete one, data/build.py)."""
    sampler = getattr(loader, "batch_sampler", None)
    if sampler is None or getattr(sampler, "drop_last", True) or _synced(cfg, world_size):
        return
    count = len(sampler.sampler) if getattr(sampler, "sampler", None) is not None else sampler.num_samples
    layers = batchnorm_layers(model) if count == 1 else []
    if layers:
        raise ConfigError(batchnorm_message(f"data.train has 1 image per process "
                                            f"(data.batch_size={sampler.batch_size})", layers))


def _synced(cfg: DictConfig, world_size: int) -> bool:
    """SyncBatchNorm computes its statistics over the images of every process."""
    return bool(value_of(cfg.runtime, "sync_bn")) and world_size > 1


def _check_input_size(cfg: DictConfig, model: nn.Module) -> None:
    """The input size covers the model's largest stride (a smaller image leaves the coarsest feature map
    empty or 1x1), and a multi-scale range holds a size the sampler can draw."""
    strides = getattr(getattr(model, "backbone", None), "strides", None)
    stride = max(strides) if strides else 1
    size = value_of(cfg.pipeline, "size")
    sides = [size] if isinstance(size, int) else list(size or [])
    if sides and min(sides) < stride:
        raise ConfigError(f"pipeline.size={show(size)}: expected at least {stride}, the model's largest "
                          f"stride (backbone strides {list(strides)})")
    multi_scale = value_of(cfg.pipeline, "multi_scale")
    if not multi_scale:
        return
    lo, hi = multi_scale
    first = math.ceil(max(lo, stride) / MULTI_SCALE_STEP) * MULTI_SCALE_STEP
    if first > hi:
        raise ConfigError(f"pipeline.multi_scale={show(multi_scale)}: expected [min, max] holding a multiple "
                          f"of {MULTI_SCALE_STEP} >= {stride} (the sizes drawn per batch), e.g. "
                          f"[{first}, {max(hi, first)}]")


def _check_forward(cfg: DictConfig, model: nn.Module) -> None:
    """One blank image of the smallest training size through `predict`, in eval mode (no statistics
    move, nothing random): a size the layers do not fit (SSD300's extra layers below ~270 px) fails
    here, in one line, instead of at the first step after the datasets are read."""
    size, multi_scale = value_of(cfg.pipeline, "size"), value_of(cfg.pipeline, "multi_scale")
    sides = [("pipeline.size", size, side) for side in ([size] if isinstance(size, int) else size or [])]
    if multi_scale:
        first = math.ceil(multi_scale[0] / MULTI_SCALE_STEP) * MULTI_SCALE_STEP
        sides.append(("pipeline.multi_scale", multi_scale, first))
    parameter = next(model.parameters(), None)
    if not sides or parameter is None or not hasattr(model, "predict"):
        return
    key, value, side = min(sides, key=lambda s: s[2])
    image = Sample(np.zeros((side, side, 3), np.uint8), np.zeros((0, 4)), np.zeros(0), 0, (side, side))
    batch = Collate(value_of(cfg.data, "size_divisor") or 1)([image]).to(parameter.device)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model.predict(batch)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{key}={show(value)}: the model does not fit {side}x{side} px inputs ({reason}); "
                          "expected a larger size") from None
    finally:
        model.train(training)
