"""torch.distributed helpers: the process group torchrun asks for, rank queries, small collectives.

Every function works unchanged in a plain single-process run (rank 0 of a world of 1), so the runner
has one code path. Launching is torchrun's job (`torchrun --nproc-per-node N tools/train.py ...`):
it sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, which `init_from_env` reads.
"""
from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError

log = logging.getLogger("detframe")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0: the one process that writes logs, TensorBoard events and checkpoints."""
    return get_rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(backend: str = "auto", timeout_minutes: float = 30.0) -> bool:
    """Join the process group described by torchrun's environment variables, once.

    Args:
        backend: "nccl", "gloo" or "auto" (nccl when CUDA is available, else gloo).
        timeout_minutes: how long a collective may wait for the slowest rank before failing.

    Returns:
        True when running distributed (WORLD_SIZE > 1), False for a plain single process.
    """
    if not launched_by_torchrun():
        return False
    if is_distributed():
        return True
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ConfigError(f"runtime.dist_backend: expected auto, nccl or gloo, got '{backend}'")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("runtime.dist_backend=nccl needs CUDA; use gloo (or auto) on CPU machines")
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` as rank `src` has it, on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (all ranks then take the same branch)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over ranks (a copy; `value` itself is unchanged)."""
    if not is_distributed():
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / get_world_size()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
