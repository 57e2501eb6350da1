"""The config API: the typed schema, composition with one-line errors, the checks of a config's values
(`check_config`, `check_training`: config/validate.py), and saved run configs.

Anything may import it (tools, benchmarks, tests); it imports nothing of the engine, data or models.

    from detframe.config import compose
    cfg = compose(["config=ssd300_voc0712", "data.root=/data/VOCdevkit"])
"""
from .compose import (
    EXPERIMENT_GROUP,
    check_renamed,
    compose,
    config_dir,
    experiments,
    friendly_error,
    group_options,
    is_group,
    resolve_config_arg,
)
from .saved import apply_overrides, load_run_config, replace_groups, split_group_overrides
from .schema import SCHEMA_NAME, DataConfig, PipelineConfig, RuntimeConfig, TrainConfig, TrainLoopConfig
from .validate import check_config, check_training

__all__ = [
    "EXPERIMENT_GROUP", "SCHEMA_NAME", "DataConfig", "PipelineConfig", "RuntimeConfig", "TrainConfig",
    "TrainLoopConfig", "apply_overrides", "check_config", "check_renamed", "check_training", "compose",
    "config_dir", "experiments", "friendly_error", "group_options", "is_group", "load_run_config",
    "replace_groups", "resolve_config_arg", "split_group_overrides",
]
