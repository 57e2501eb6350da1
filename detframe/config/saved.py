"""A saved run's config, and command-line changes applied to it.

A checkpoint carries the resolved config it was trained with. Tools that start from a checkpoint
(evaluation, prediction, export) take that config and let the user change it: a group choice
(`data=raccoon`, `evaluator=[coco,voc07]`) replaces a whole section with the file of the tree, then
`key=value`, `+key=value` and `~key` change single values.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from ..errors import ConfigError, UserError, choices_text, did_you_mean
from .compose import compose, is_group

log = logging.getLogger("detframe")


def load_run_config(checkpoint: Path, state: dict[str, Any]) -> DictConfig:
    """The config a checkpoint was trained with: embedded in it, else config.yaml of its run folder."""
    if isinstance(state.get("config"), str):
        return OmegaConf.create(state["config"])
    for candidate in (checkpoint.parent / "config.yaml", checkpoint.parent.parent / "config.yaml"):
        if candidate.is_file():
            return OmegaConf.load(candidate)
    raise UserError(f"{checkpoint}: holds no config and there is no config.yaml beside it or in its "
                    "run folder")


def split_group_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(group choices such as `data=raccoon`, `evaluator=[coco,voc07]`, `config=...`; the other overrides)."""
    groups, keys = [], []
    for text in overrides:
        key = text.split("=", 1)[0]
        group = "=" in text and key[:1] not in "+~" and "." not in key and is_group(key)
        (groups if group else keys).append(text)
    return groups, keys


def replace_groups(cfg: DictConfig, group_overrides: Sequence[str]) -> DictConfig:
    """Replace whole sections of a saved config by freshly composed config-group files."""
    if any(o.startswith("config=") for o in group_overrides):
        raise ConfigError("config=...: a checkpoint brings its own config; change groups (data=..., "
                          "evaluator=...) and values instead")
    if not group_overrides:
        return cfg
    fresh = compose(["~experiment", *group_overrides])  # the group files alone, checked
    for text in group_overrides:
        group = text.split("=", 1)[0]
        cfg[group] = OmegaConf.to_container(fresh[group], resolve=False)  # interpolations re-resolve in `cfg`
    return cfg


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Apply `key=value`, `+key=value` (add) and `~key` (remove) overrides to a config.

    Unknown keys are errors. On a saved (resolved) config, `data.root=NEW` also moves the dataset paths
    that started with the old root, and `pipeline.size=NEW` also resizes the transforms whose `size` was
    the old one, as the `${data.root}` and `${pipeline.size}` interpolations they came from would have.
    """
    for text in overrides:
        key, _, value = text.partition("=")
        add, remove = key.startswith("+"), key.startswith("~")
        key = key.lstrip("+~")
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not add and (not isinstance(node, DictConfig) or leaf not in node):
            keys = list(node.keys()) if isinstance(node, DictConfig) else []
            raise ConfigError(f"unknown config key '{key}'.{did_you_mean(leaf, keys)} Valid keys under "
                              f"'{parent or '<root>'}': {choices_text(keys)}. To add one, write +{key}=...")
        if remove:
            with open_dict(node):
                node.pop(leaf)
            continue
        try:
            parsed = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            parsed = value
        old_root = OmegaConf.select(cfg, "data.root", throw_on_missing=False) if key == "data.root" else None
        old_size = _plain(OmegaConf.select(cfg, "pipeline.size", throw_on_missing=False)) \
            if key == "pipeline.size" else None
        OmegaConf.update(cfg, key, parsed, merge=True, force_add=add)
        if isinstance(old_root, str) and isinstance(parsed, str):
            _rebase_data_paths(cfg.data, old_root, parsed)
        if old_size is not None and parsed is not None and parsed != old_size:
            _resize_pipelines(cfg.pipeline, old_size, parsed)
    return cfg


def _plain(value: Any) -> Any:
    """A config value as plain Python (a ListConfig size [h, w] as a list), to compare with a parsed one."""
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _rebase_data_paths(data: DictConfig, old_root: str, new_root: str) -> None:
    """Rewrite literal dataset paths under `old_root` to `new_root` (the saved config is resolved)."""
    old = old_root.rstrip("/")
    for split in ("train", "val"):
        node = data.get(split)
        if not isinstance(node, DictConfig):
            continue
        for k in list(node.keys()):
            if OmegaConf.is_interpolation(node, k) or not isinstance(node[k], str):
                continue
            value = node[k]
            if value == old or value.startswith(old + "/"):
                node[k] = new_root.rstrip("/") + value[len(old):]
                log.info("data.%s.%s: %s -> %s", split, k, value, node[k])


def _resize_pipelines(pipeline: DictConfig, old_size: Any, new_size: Any) -> None:
    """Set `size` to `new_size` in every transform of the pipelines whose literal `size` is `old_size`
    (the saved config is resolved: those came from `${pipeline.size}`); a transform at a size of its
    own keeps it."""
    changed = []
    for name in ("train", "val"):
        transforms = pipeline.get(name)
        if not OmegaConf.is_list(transforms):
            continue
        for i, transform in enumerate(transforms):
            if not isinstance(transform, DictConfig) or "size" not in transform \
                    or OmegaConf.is_interpolation(transform, "size"):
                continue
            if _plain(transform.size) == old_size:
                transform.size = new_size
                changed.append(f"{name}[{i}] {transform.get('type')}")
    if changed:
        log.info("pipeline.size %s -> %s, and so the size of pipeline.%s", old_size, new_size,
                 ", ".join(changed))
