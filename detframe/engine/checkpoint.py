"""Checkpoint files: written atomically, read without executing code (`weights_only=True`).

A training checkpoint (`Runner.state_dict`) holds:

    model, ema          raw weights, and the averaged ones ({model, updates, ...}) when EMAHook is on
    optimizer           its state (momentum buffers ...) and parameter groups
    scheduler           the LR schedule's position (the schedule itself is rebuilt from the config)
    scaler              the fp16 GradScaler's state (runtime.amp=fp16)
    epoch, step, iter   epochs completed, batches done in the next epoch (mid-epoch save), optimizer steps
    rng                 per rank: python, numpy, torch and CUDA generator states
    hooks, metrics      e.g. the best metric so far; the last evaluation
    config              the resolved config, as YAML text (tools/eval.py rebuilds the run from it)
    meta                detframe version, time, world size, batch sizes
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..errors import UserError
from ..weights import WeightsError, describe_model, read_torch_file, state_dict_in


class CheckpointError(UserError):
    """A checkpoint could not be written (disk full, no permission); the previous one is intact."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically: a temporary file in the same folder, flushed, fsynced, renamed.

    A crash, a kill or a full disk mid-write leaves the previous file at `path` intact.

    Raises:
        CheckpointError: the file system refused (the message names the path and the reason).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        kept = f"; the previous {path.name} is intact" if path.exists() else ""
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}{kept}") from e
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def link_checkpoint(src: Path, dst: Path) -> Path:
    """Make `dst` the same file as `src` (a hard link: no second write; a copy where links are not
    supported), atomically replacing any previous `dst`."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {dst}: {e.strerror or e}") from e
    return dst


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, key: str | None = None) -> dict[str, Any]:
    """Read a checkpoint on the CPU. Only tensors and plain containers load (`weights_only=True`).

    Args:
        path: the file.
        key: the argument that named it (`resume`, `load_from`, `checkpoint`), for messages.

    Raises:
        WeightsError: a one-line message naming the file: not found, not a PyTorch checkpoint (and what
            it looks like instead), damaged, refused (it would run code), or not a dict.
    """
    state = read_torch_file(path, "checkpoint", key)
    if not isinstance(state, dict):
        where = f"{key}={path}" if key else str(path)
        raise WeightsError(f"{where}: holds a {type(state).__name__}, not a checkpoint (a dict with the "
                           "model's weights)")
    return state


def inference_weights(state: dict[str, Any], where: str = "checkpoint") -> dict[str, Any]:
    """The weights to predict with: the EMA's when the run kept one, else the raw model's (or `state`
    itself when it is a bare state dict)."""
    return state_dict_in(state, where)


def saved_model(state: dict[str, Any]) -> str | None:
    """The model a checkpoint was trained as, from the config saved in it ("ResNet-18 + FPN + RetinaHead,
    4 classes"), or None when it holds no readable config."""
    try:
        config = yaml.safe_load(state["config"]) if isinstance(state.get("config"), str) else None
    except yaml.YAMLError:
        return None
    model = config.get("model") if isinstance(config, dict) else None
    return describe_model(model) if isinstance(model, dict) else None


def rng_state() -> dict[str, Any]:
    """Every generator's state, in types `torch.load(weights_only=True)` accepts."""
    _, keys, pos = random.getstate()
    _, np_keys, np_pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": list(keys), "python_pos": pos,
        "numpy": torch.from_numpy(np_keys.astype(np.int64)), "numpy_pos": int(np_pos),
        "numpy_gauss": [int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved (a checkpoint without CUDA state leaves CUDA's alone)."""
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    keys = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    has_gauss, gauss = state.get("numpy_gauss", [0, 0.0])
    np.random.set_state(("MT19937", keys.astype(np.uint32), int(state["numpy_pos"]), int(has_gauss),
                         float(gauss)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def prune(folder: Path, prefix: str, keep: int) -> list[Path]:
    """Delete all but the `keep` highest-numbered `<prefix><N>.pt` files of `folder`; returns the deleted."""
    numbered = []
    for p in folder.glob(f"{prefix}*.pt"):
        suffix = p.stem[len(prefix):]
        if suffix.isdigit():
            numbered.append((int(suffix), p))
    numbered.sort()
    doomed = [p for _, p in numbered[: max(0, len(numbered) - keep)]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
