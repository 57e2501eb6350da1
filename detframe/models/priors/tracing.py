"""When the priors are recorded into a graph rather than computed: while `torch.jit.trace` or
`torch.onnx.export` (which traces) runs, the feature maps' sizes are traced 0-dim tensors, and priors
made from them with tensor ops (`torch.arange` over such a size, shapes taken from a tensor) follow the
input size of the exported graph. The generators then skip their cache, whose keys are plain ints."""
from __future__ import annotations

import torch


def tracing() -> bool:
    """Whether a graph is being traced (TorchScript or the TorchScript-based ONNX exporter)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
