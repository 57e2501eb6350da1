"""When the priors are recorded into a graph rather than computed: while `torch.jit.trace` or
`torch.onnx.export` (which traces) runs, the feature maps' sizes are traced 0-dim tensors, and priors
made from them with tensor ops (`torch.arange` over such a size, shapes taken from a tensor) follow the
input size of the exported graph. The generators then skip their cache, whose keys are plain ints."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ...errors import ConfigError


def tracing() -> bool:
    """Whether a graph is being traced (TorchScript or the TorchScript-based ONNX exporter)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def cached(cache: dict, make: Callable[[], Any], device: torch.device | None,
           feature_shapes: Sequence[Sequence[int]], *key: Any) -> Any:
    """`make()` (a tensor or a tuple of them) on `device`, kept in `cache` under the feature shapes, `key`
    and the device; made anew, uncached, while tracing (see above). The one cache of every generator."""
    if tracing():  # traced sizes: recorded as ops that follow the input size, not cached
        return _to(make(), device)
    full_key = (tuple(tuple(s) for s in feature_shapes), *key, str(device))
    if full_key not in cache:
        cache[full_key] = _to(make(), device)
    return cache[full_key]


def check_strides(owner: str, strides: Sequence[float], feature_shapes: Sequence[Sequence[Any]],
                  image_size: Sequence[Any]) -> None:
    """Raise a ConfigError when a level's map is not the input size over its configured stride (within the
    one cell that padding and rounding give). A `strides` list that disagrees with the backbone's
    `out_indices` (e.g. [8, 16, 32] on C4-C5) would otherwise decode every box at the wrong scale without
    an error. Skipped while tracing (the sizes are then tensors) and when the input size is unknown."""
    if tracing() or not image_size:
        return
    height, width = (int(v) for v in image_size[-2:])
    for k, (stride, (h, w)) in enumerate(zip(strides, feature_shapes)):
        if abs(int(h) - height / stride) >= 1 or abs(int(w) - width / stride) >= 1:
            raise ConfigError(
                f"{owner}: strides[{k}] is {stride:g}, but level {k}'s map is {int(h)}x{int(w)} "
                f"for a {height}x{width} input (stride {height / int(h):g}); the strides must be the "
                f"backbone's at its out_indices, finest first (got {[float(s) for s in strides]})")


def _to(made: Any, device: torch.device | None) -> Any:
    return tuple(t.to(device) for t in made) if isinstance(made, tuple) else made.to(device)
