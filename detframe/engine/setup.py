"""Runtime set-up from the `runtime` config section: device, seeds, determinism, mixed precision, and
the wrapped model the training step runs (channels_last, SyncBN, DDP, torch.compile)."""
from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..dist import get_world_size, is_distributed, local_rank
from ..errors import ConfigError

log = logging.getLogger("detframe")

AMP_DTYPES = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def select_device(name: str) -> torch.device:
    """`auto`: CUDA when available (the local rank's GPU under torchrun), else CPU; otherwise the named
    device, checked to exist."""
    if name == "auto":
        return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device: '{name}' asked for, but CUDA is not available here "
                          "(use auto or cpu)")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank())  # one GPU per process under torchrun
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_determinism(deterministic: bool, cudnn_benchmark: bool = True) -> None:
    """Deterministic kernels (slower on GPUs) or cuDNN autotuning. Ops without a deterministic version
    warn instead of failing, so a long run does not die on one."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by cuBLAS for determinism
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = cudnn_benchmark


def parse_amp(value: object, device: torch.device) -> torch.dtype | None:
    """`runtime.amp` -> the autocast dtype, or None for full precision."""
    text = str(value).strip().lower()
    if text in ("false", "none", "no", "0", ""):  # YAML reads a bare `off` as false
        text = "off"
    if text not in AMP_DTYPES:
        raise ConfigError(f"runtime.amp: expected off, fp16 or bf16, got '{value}'")
    dtype = AMP_DTYPES[text]
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"runtime.amp=bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                          "use fp16")
    return dtype


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool, sync_bn: bool) -> nn.Module:
    """Move to `device`, NHWC memory format if asked, SyncBatchNorm in multi-GPU runs if asked."""
    if sync_bn and get_world_size() > 1:
        if device.type != "cuda":
            raise ConfigError("runtime.sync_bn: SyncBatchNorm works on GPUs only (torch has no CPU version); "
                              "set runtime.sync_bn=false, or freeze the norm layers with train.freeze_norm")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        log.info("SyncBatchNorm across %d processes", get_world_size())
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


class LossModule(nn.Module):
    """`forward(batch)` is `detector.loss(batch)`: what DDP wraps, so that its gradient hooks see the
    whole loss computation while detectors keep the one contract `loss(batch) -> dict`."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        return self.detector.loss(batch)


def train_module(model: nn.Module, device: torch.device, compile_model: bool = False,
                 find_unused_parameters: bool = False) -> Callable[[Any], dict[str, torch.Tensor]]:
    """What the training step calls to get a batch's losses: `model.loss`, or DDP around it in distributed
    runs. With `compile_model` the model's forward pass (images -> head outputs) is compiled in place
    (call this after the EMA has copied the plain model)."""
    if compile_model:
        model.compile()
    if not is_distributed():
        return model.loss
    return DistributedDataParallel(LossModule(model),
                                   device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters)
