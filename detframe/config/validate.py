"""Checking a composed config before any work starts: each schema field against the rules in its type,
then the checks between keys. Each failure is one `ConfigError` line naming the key, the value and what
is allowed (`data.batch_size=0: expected an integer >= 1`).

Where the rules live, and how to add one:

- a schema key's allowed values: the rules in its field's type in schema.py (`batch_size: PositiveInt`;
  the rule classes and aliases are in detframe/rules.py);
- a component argument's: the rules in the constructor's annotation (`score_threshold: Probability`),
  or `register(rules=...)` for a callable we cannot annotate; `registry.check_arguments` applies them
  when the node is built, and `Registry.check` before, for nodes built after the datasets are read;
- a check between keys of the config: a function `(cfg) -> None` here, listed in `CROSS_CHECKS`, or in
  `TRAINING_CHECKS` when it matters to training only (the other tools compose the training config too);
- a check between the config and the built model (BatchNorm and a batch of one, the input size and the
  model's stride): engine/preflight.py.

`compose` runs `check_config`; tools/train.py and `engine.build_runner` also run `check_training`.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import ConfigError
from ..rules import check_value, rules_of, show
from .schema import TrainConfig


def check_config(cfg: DictConfig) -> None:
    """Raise `ConfigError` for the first schema field outside its rules or the first failed cross-check.
    Keys that are missing (`???`) or do not resolve yet are left to the code that needs them."""
    _check_fields(cfg, TrainConfig, "")
    for check in CROSS_CHECKS:
        check(cfg)


def check_training(cfg: DictConfig) -> None:
    """`check_config`, and the checks that concern a training run only."""
    check_config(cfg)
    for check in TRAINING_CHECKS:
        check(cfg)


def _check_fields(node: DictConfig, schema: type, prefix: str) -> None:
    hints = typing.get_type_hints(schema, include_extras=True)
    for field in dataclasses.fields(schema):
        if field.name not in node:
            continue
        key, hint = prefix + field.name, hints[field.name]
        if dataclasses.is_dataclass(hint):
            child = node.get(field.name)
            if isinstance(child, DictConfig):
                _check_fields(child, hint, key + ".")
            continue
        check_value(key, value_of(node, field.name), rules_of(hint))


def value_of(node: Any, key: str | int) -> Any:
    """`node[key]` resolved, as a plain value; None when it is missing or does not resolve."""
    try:
        value = node[key]
        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
        return value
    except Exception:  # MISSING, an interpolation that resolves only at run time (${hydra:...})
        return None


def _class_counts(cfg: DictConfig) -> None:
    """`data.num_classes` and every `num_classes` of the model equal the number of class names: a head
    with one class less trains a whole epoch and then fails in evaluation."""
    names = value_of(cfg.data, "class_names") if isinstance(cfg.get("data"), DictConfig) else None
    if not isinstance(names, list):
        return
    listed = ", ".join(map(str, names[:8])) + (", ..." if len(names) > 8 else "")
    found = [("data.num_classes", value_of(cfg.data, "num_classes")),
             *_num_classes(cfg.get("model"), "model")]
    for key, value in found:
        if value is not None and value != len(names):
            raise ConfigError(f"{key}={show(value)}: expected {len(names)}, the number of data.class_names "
                              f"[{listed}] (our configs set it to ${{data.num_classes}})")


def _num_classes(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value) of every `num_classes` key under `node`."""
    if isinstance(node, DictConfig):
        for key in node:
            if key == "num_classes":
                yield f"{path}.{key}", value_of(node, key)
            else:
                yield from _num_classes(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from _num_classes(node._get_node(i), f"{path}[{i}]")


def _save_best(cfg: DictConfig) -> None:
    """A checkpoint hook's `save_best` names a metric of a configured evaluator; otherwise the run stops
    after its first evaluation."""
    evaluators, train = cfg.get("evaluator"), cfg.get("train")
    if not isinstance(evaluators, DictConfig) or "type" in evaluators or not value_of(train, "val_interval"):
        return  # a single evaluator node (an old saved config) names its prefix only when built
    prefixes = sorted(str(value_of(node, "prefix") or name) for name, node in evaluators.items()
                      if isinstance(node, DictConfig))
    for name, hook in (cfg.get("hooks") or {}).items():
        metric = value_of(hook, "save_best") if isinstance(hook, DictConfig) else None
        if isinstance(metric, str) and metric.split("/", 1)[0] not in prefixes:
            wanted = metric.split("/", 1)[0]
            raise ConfigError(
                f"hooks.{name}.save_best={metric}: expected a metric of the configured evaluators "
                f"({', '.join(p + '/...' for p in prefixes)}) or null; there is no evaluator '{wanted}' "
                f"(add it with evaluator=[{','.join(prefixes)},{wanted}])"
            )


def _one_length(cfg: DictConfig) -> None:
    """`train.max_iters` fixes the run's length, `train.max_minutes` fits it to the time: not both."""
    train = cfg.get("train")
    iters, minutes = value_of(train, "max_iters"), value_of(train, "max_minutes")
    if iters is not None and minutes is not None:
        raise ConfigError(f"train.max_iters={iters} and train.max_minutes={minutes}: choose one (max_iters: "
                          "a fixed number of iterations; max_minutes: the epochs that fit in the time); set "
                          "the other to null")


CROSS_CHECKS = [_class_counts]
TRAINING_CHECKS = [_save_best, _one_length]
