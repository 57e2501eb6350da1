"""Freezing parts of a model from config, by module-name patterns, for any backbone.

    train:
      freeze: [backbone.features.0, backbone.features.1]   # stem and first stage: not trained
      freeze_norm: [backbone]                             # every norm layer of the backbone frozen

A pattern is a dotted module-name prefix or an fnmatch glob (`backbone.layer[12]`); the names are
those of `model.named_modules()` (print them with `python -c "..."`, see the README). Frozen means:
parameters get `requires_grad=False` (the optimizer never sees them), and BatchNorm layers become
torchvision's `FrozenBatchNorm2d`, whose statistics no longer move in training (detectron2 and
torchvision's detection models do the same; a BatchNorm left in train mode would keep updating its
running mean and variance even with frozen weights).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from ..errors import ConfigError, choices_text, did_you_mean
from .optim import NORM_TYPES, matches

log = logging.getLogger("detframe")


def freeze(model: nn.Module, modules: Sequence[str] = (), norms: Sequence[str] = ()) -> nn.Module:
    """Freeze the modules matching `modules` entirely, and the norm layers under `norms`.

    Args:
        model: changed in place (BatchNorm2d children are replaced); also returned.
        modules: patterns of modules whose parameters are frozen (their BatchNorms too).
        norms: patterns under which every norm layer is frozen; "*" means all of the model's.

    Raises:
        ConfigError: a pattern matches no module (the message lists the top-level modules).
    """
    names = [n for n, _ in model.named_modules() if n]
    for key, patterns in (("train.freeze", modules), ("train.freeze_norm", norms)):
        for pattern in patterns:
            if pattern != "*" and not any(matches(n, pattern) for n in names):
                top = sorted({n.split(".")[0] for n in names})
                raise ConfigError(f"{key}: '{pattern}' matches no module of the model."
                                  f"{did_you_mean(pattern, names)} Top-level modules: {choices_text(top)}")
    frozen_params = 0
    for name, module in list(model.named_modules()):
        whole = any(matches(name, p) for p in modules)
        norm = isinstance(module, NORM_TYPES) and any(p == "*" or matches(name, p) for p in norms)
        if whole or norm:
            for p in module.parameters(recurse=False):
                frozen_params += p.requires_grad
                p.requires_grad_(False)
    converted = _freeze_batchnorms(model, "", list(modules) + list(norms))
    if modules or norms:
        log.info("frozen: %d parameter tensors, %d BatchNorm layers (train.freeze=%s, train.freeze_norm=%s)",
                 frozen_params, converted, list(modules), list(norms))
    return model


def _freeze_batchnorms(module: nn.Module, prefix: str, patterns: Sequence[str]) -> int:
    """Replace the BatchNorm2d children under `patterns` by FrozenBatchNorm2d; returns how many."""
    count = 0
    for child_name, child in module.named_children():
        name = f"{prefix}.{child_name}" if prefix else child_name
        if isinstance(child, nn.BatchNorm2d) and any(p == "*" or matches(name, p) for p in patterns):
            setattr(module, child_name, _frozen_copy(child))
            count += 1
        else:
            count += _freeze_batchnorms(child, name, patterns)
    return count


def _frozen_copy(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    frozen = FrozenBatchNorm2d(bn.num_features, eps=bn.eps)
    if bn.affine:
        frozen.weight.copy_(bn.weight.detach())
        frozen.bias.copy_(bn.bias.detach())
    if bn.track_running_stats:
        frozen.running_mean.copy_(bn.running_mean)
        frozen.running_var.copy_(bn.running_var)
    return frozen.to(bn.weight.device if bn.affine else bn.running_mean.device)
