"""When the priors are recorded into a graph rather than computed: while `torch.jit.trace` or
`torch.onnx.export` (which traces) runs, the feature maps' sizes are traced 0-dim tensors, and priors
made from them with tensor ops (`torch.arange` over such a size, shapes taken from a tensor) follow the
input size of the exported graph. The generators then skip their cache, whose keys are plain ints."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


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


def _to(made: Any, device: torch.device | None) -> Any:
    return tuple(t.to(device) for t in made) if isinstance(made, tuple) else made.to(device)
