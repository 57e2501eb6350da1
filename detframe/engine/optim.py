"""Optimizers from config, with parameter groups and linear LR scaling by batch size.

    optimizer:
      type: SGD                      # any registered optimizer: SGD, Adam, AdamW
      lr: 0.01                       # for train.base_batch_size images per step, when that is set
      momentum: 0.9
      weight_decay: 5.0e-4
      paramwise:                     # detframe's options, not the optimizer's (see `param_groups`)
        norm_decay_mult: 0.0         # no weight decay on normalisation layers
        bias_decay_mult: 0.0         # nor on biases
        lr_mult: {backbone: 0.1}     # module-name pattern -> LR multiplier
"""
from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.optim import Optimizer

from ..errors import ConfigError, choices_text, did_you_mean
from ..registry import OPTIMIZERS, check_arguments, config_path, to_plain
from ..rules import Decay, Each, NonNegativeFloat, PositiveFloat, Probability
from .schedules import build_scheduler, current_lr, warmup_factor  # noqa: F401  (re-exported)

log = logging.getLogger("detframe")

# torch's signatures say `lr: float | Tensor`: the allowed values are given here instead.
_RATES = {"lr": PositiveFloat, "weight_decay": NonNegativeFloat}
_ADAM = {**_RATES, "betas": Each(Decay, length=2), "eps": NonNegativeFloat}
OPTIMIZERS.register("SGD", rules={**_RATES, "momentum": Decay, "dampening": Probability})(torch.optim.SGD)
OPTIMIZERS.register("Adam", rules=_ADAM)(torch.optim.Adam)
OPTIMIZERS.register("AdamW", rules=_ADAM)(torch.optim.AdamW)
MULTIPLIERS = Each(NonNegativeFloat, text="{pattern: a number >= 0, ...}")

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def build_optimizer(cfg: DictConfig | Mapping, model: nn.Module, lr_scale: float = 1.0) -> Optimizer:
    """The `optimizer` config over the model's trainable parameters.

    Args:
        cfg: `{type, lr, ..., paramwise: {...}}`; `paramwise` goes to `param_groups`, the rest to the
            optimizer's constructor (both checked against their signatures).
        model: the (unwrapped) model; frozen parameters (`requires_grad=False`) are left out.
        lr_scale: multiplies `lr` (linear scaling of the LR with the total batch size).
    """
    target, node, paramwise = check_optimizer(cfg)
    node["lr"] = float(node["lr"]) * lr_scale
    groups = param_groups(model, node["lr"], float(node.get("weight_decay", 0.0)), **paramwise)
    return target(groups, **node)


def check_optimizer(cfg: DictConfig | Mapping) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Check the `optimizer` config without a model: its type, and the names, types and allowed values of
    its arguments and of `paramwise`. Returns (optimizer class, its arguments, paramwise options)."""
    where = config_path(cfg) or "optimizer"
    node = to_plain(cfg)
    if not isinstance(node, dict) or "type" not in node:
        raise ConfigError(f"{where}: expected a mapping with a 'type' key. "
                          f"Known optimizer types: {choices_text(OPTIMIZERS)}")
    paramwise = node.pop("paramwise", None) or {}
    type_name = node.pop("type")
    try:
        target = OPTIMIZERS.get(type_name)
    except ConfigError as e:
        raise ConfigError(f"{where}.type: {e}") from None
    if "lr" not in node:
        raise ConfigError(f"{where}: no 'lr' given")
    check_arguments(param_groups, paramwise, where=f"{where}.paramwise", complete=False)
    for key in {"model", "lr", "weight_decay"} & set(paramwise):
        raise ConfigError(f"{where}.paramwise.{key}: not a paramwise option; set {where}.{key} instead")
    check_arguments(target, {**node, "params": []}, where=where, rules=OPTIMIZERS.rules(type_name))
    return target, node, paramwise


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    norm_decay_mult: NonNegativeFloat = 1.0,
    bias_decay_mult: NonNegativeFloat = 1.0,
    lr_mult: Annotated[dict[str, float], MULTIPLIERS] | None = None,
    decay_mult: Annotated[dict[str, float], MULTIPLIERS] | None = None,
) -> list[dict[str, Any]]:
    """Split the trainable parameters into groups by learning rate and weight decay.

    Args:
        model: the model; parameters with `requires_grad=False` are skipped.
        lr, weight_decay: the optimizer's base values.
        norm_decay_mult: weight-decay multiplier for the weights and biases of normalisation layers
            (BatchNorm, GroupNorm, LayerNorm); 0 turns their decay off.
        bias_decay_mult: weight-decay multiplier for the biases of other layers.
        lr_mult, decay_mult: `{pattern: multiplier}`. A pattern is a module-name prefix ("backbone",
            "head.cls_convs") or an fnmatch glob ("backbone.features.[0-3].*"); the longest pattern that
            matches a parameter's name wins.

    Returns:
        torch param groups (`params`, `lr`, `weight_decay`), in order of first appearance; a single
        group when no option changes anything.
    """
    lr_mult, decay_mult = dict(lr_mult or {}), dict(decay_mult or {})
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for option, patterns in (("lr_mult", lr_mult), ("decay_mult", decay_mult)):
        _check_patterns(model, names, patterns, f"optimizer.paramwise.{option}")
    norm_params = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES)
                   for p in m.parameters(recurse=False)}
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = _best_match(name, decay_mult, 1.0)
        if id(param) in norm_params:
            decay *= norm_decay_mult
        elif name.endswith("bias"):
            decay *= bias_decay_mult
        key = (_best_match(name, lr_mult, 1.0), decay)
        group = groups.setdefault(key, {"params": [], "lr": lr * key[0],
                                        "weight_decay": weight_decay * key[1]})
        group["params"].append(param)
    if not groups:
        raise ConfigError("the model has no trainable parameters (check train.freeze)")
    return list(groups.values())


def describe_groups(optimizer: Optimizer) -> str:
    """One line per parameter group: how many tensors and values, its LR and weight decay."""
    return "; ".join(
        f"{len(g['params'])} tensors ({sum(p.numel() for p in g['params']):,} values) "
        f"lr {g.get('initial_lr', g['lr']):.4g} wd {g.get('weight_decay', 0):.3g}"
        for g in optimizer.param_groups
    )


def matches(name: str, pattern: str) -> bool:
    """Module/parameter `name` lies under `pattern`: equal, a dotted prefix, or an fnmatch glob."""
    return name == pattern or name.startswith(pattern + ".") or fnmatch.fnmatchcase(name, pattern)


def _best_match(name: str, table: Mapping[str, float], default: float) -> float:
    best = max((p for p in table if matches(name, p)), key=len, default=None)
    return default if best is None else float(table[best])


def _check_patterns(model: nn.Module, names: Sequence[str], patterns: Mapping[str, Any], where: str) -> None:
    for pattern in patterns:
        if not any(matches(n, pattern) for n in names):
            modules = [n for n, _ in model.named_modules() if n and n.count(".") <= 1]
            raise ConfigError(f"{where}: '{pattern}' matches no trainable parameter."
                              f"{did_you_mean(pattern, modules)} "
                              f"Top-level modules: {choices_text(n for n in modules if '.' not in n)}")


def lr_scale_for(total_batch_size: int, base_batch_size: int | None) -> float:
    """Linear scaling rule (Goyal et al. 2017): the LR grows with the total batch size."""
    if not base_batch_size:
        return 1.0
    if base_batch_size < 1:
        raise ConfigError("train.base_batch_size: expected a positive number of images, "
                          f"got {base_batch_size}")
    return total_batch_size / base_batch_size


__all__: Sequence[str] = ["build_optimizer", "build_scheduler", "check_optimizer", "current_lr",
                          "describe_groups", "lr_scale_for", "matches", "param_groups", "warmup_factor"]
