"""Composing a config from the command line, once, with one-line errors.

The config tree ships inside the package (`detframe/configs/`, found through package resources, so a
wheel works as well as a clone). `compose` runs Hydra's Compose API over it; a misspelt key, a wrong
type or an unknown option becomes a `ConfigError` naming the closest valid name instead of Hydra's
generic message or a traceback, and every value is checked against its rules (config/validate.py)
before the config is returned. `config=NAME` picks an experiment file, `config=path.yaml` a file of
the user's anywhere on disk.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import ConfigError, choices_text, did_you_mean
from . import schema  # noqa: F401  (registers the schema with Hydra's ConfigStore)
from .validate import check_config

EXPERIMENT_GROUP = "experiment"
# Config keys that were renamed or removed: using one is an error that names its replacement.
RENAMED = {
    "hooks.eval": "EvalHook is gone: the runner evaluates every train.val_interval epochs and after the "
                  "last; remove hooks.eval and set train.val_interval=N (0: never)",
}


def config_dir() -> Path:
    """The folder of the config tree (`train.yaml`, groups `data/`, `model/` ...) inside the package."""
    path = Path(str(resources.files("detframe").joinpath("configs")))
    if not (path / "train.yaml").is_file():
        raise ConfigError(f"the config tree is missing from the installed package ({path}); "
                          "reinstall detframe")
    return path


def group_options(group: str) -> list[str]:
    """The option names of a config group (`data` -> coco, raccoon, shapes, ...)."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def experiments() -> list[str]:
    return group_options(EXPERIMENT_GROUP)


def is_group(key: str) -> bool:
    """Whether `key` names a config group (a folder of the tree), `experiment` or `config` included."""
    return key in ("config", EXPERIMENT_GROUP) or (config_dir() / key).is_dir()


def resolve_config_arg(overrides: Sequence[str]) -> list[str]:
    """Rewrite `config=NAME` to the experiment group choice, and `config=path.yaml` to a search path
    entry plus that choice, so a user's experiment file outside the package composes like ours."""
    out: list[str] = []
    search: list[Path] = []
    for arg in overrides:
        if arg.startswith("config="):
            out += _experiment_choice(arg.split("=", 1)[1], search)
        else:
            out.append(arg)
    if search:
        out.append("hydra.searchpath=[" + ",".join(f"file://{p}" for p in search) + "]")
    return out


def _experiment_choice(value: str, search: list[Path]) -> list[str]:
    names = experiments()
    if value in names:
        return [f"{EXPERIMENT_GROUP}={value}"]
    path = Path(value).expanduser()
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        raise ConfigError(
            f"config={value}: no such experiment.{did_you_mean(value, names)} Experiments in "
            f"{config_dir() / EXPERIMENT_GROUP}: {choices_text(names)}; or give the path of a YAML file"
        )
    if not path.is_file():
        raise ConfigError(f"config={value}: file not found ({path.resolve()})")
    text = path.read_text()
    try:
        top = OmegaConf.create(text) or {}
    except Exception as e:
        raise ConfigError(f"config={value}: not valid YAML: {e}") from None
    # Our experiment files are `# @package _global_`; a user's plain YAML means the same thing.
    if "@package" not in text.split("\n", 1)[0]:
        text = "# @package _global_\n" + text
    tmp = Path(tempfile.mkdtemp(prefix="detframe-config-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    (tmp / EXPERIMENT_GROUP).mkdir()
    (tmp / EXPERIMENT_GROUP / f"{path.stem}.yaml").write_text(text)
    search += [tmp, path.resolve().parent]  # the parent: the user's own group files (data/my_set.yaml ...)
    named = isinstance(top, ListConfig) or "experiment_name" in top
    return [f"{EXPERIMENT_GROUP}={path.stem}", *([] if named else [f"experiment_name={path.stem}"])]


def compose(overrides: Sequence[str] = (), *, hydra: bool = False, config_name: str = "train",
            check: bool = True) -> DictConfig:
    """The config for a command line's overrides, checked; `ConfigError` with a short message otherwise.

    Args:
        overrides: `group=option`, `key=value`, `+key=value`, `~key` and `config=NAME|path.yaml`, as on
            the command line (no Hydra flags). A sweep (`a=1,2`) is checked with its first value.
        hydra: also return the `hydra` node (run folder, logging), with `hydra.*` overrides applied;
            otherwise those overrides are left out.
        config_name: the primary config file of the tree.
        check: check the values against their rules (`config.validate.check_config`); a caller that
            changes the config further (tools/eval.py's overrides) checks it itself afterwards.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = resolve_config_arg(overrides)
    simple = _first_of_sweeps([o for o in overrides if hydra or not _is_hydra_key(o)])
    _check_renamed_overrides(simple)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        try:
            cfg = hydra_compose(config_name=config_name, overrides=simple, return_hydra_config=hydra)
        except Exception as e:
            groups = [o for o in simple
                      if is_group(o.lstrip("+~").split("=", 1)[0]) or o.startswith("hydra.searchpath")]
            raise friendly_error(e, config_name, groups) from None
    check_renamed(cfg)
    if check:
        check_config(cfg)
    return cfg


def _is_hydra_key(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra.") and not override.startswith("hydra.searchpath")


def _first_of_sweeps(overrides: Sequence[str]) -> list[str]:
    """Each override as given, a sweep (`a=1,2`, `a=range(3)`) replaced by its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as e:
        raise ConfigError(f"cannot parse the command line: {str(e).splitlines()[0]}") from None
    simple = []
    for text, o in zip(overrides, parsed):
        if o.is_sweep_override():
            first = next(iter(o.sweep_string_iterator()), None)
            if first is None:
                continue
            prefix = text[: len(text) - len(text.lstrip("+~"))]
            text = f"{prefix}{o.get_key_element()}={first}"
        simple.append(text)
    return simple


def _check_renamed_overrides(overrides: Sequence[str]) -> None:
    for text in overrides:
        key = text.lstrip("+~").split("=", 1)[0]
        old = next((k for k in RENAMED if key == k or key.startswith(k + ".")), None)
        if old is not None:
            raise ConfigError(f"{text}: {RENAMED[old]}")


def check_renamed(cfg: DictConfig) -> None:
    """Fail on a key of `RENAMED` set by a config file (a user's experiment written for an older version)."""
    for key, hint in RENAMED.items():
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node and node[leaf] is not None:
            raise ConfigError(f"{key}: {hint}")


def friendly_error(e: Exception, config_name: str, group_overrides: list[str]) -> ConfigError:
    """One line for a composition error: the unknown option or key with the closest valid names."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

    if isinstance(e, MissingConfigException):
        return _missing_option(e)
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    source = message.split("'")[1] if message.startswith("Error merging") and "'" in message else ""
    where = f" (in {source})" if source else ""
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        full_key = getattr(cause, "full_key", None) or ""
        key = full_key.rpartition(".")[2] if full_key else str(getattr(cause, "key", ""))
        parent = full_key.rpartition(".")[0]
        keys = _valid_keys(config_name, parent, group_overrides)
        hint = "" if source else f" To add a new key on purpose, write +{full_key}=..."
        return ConfigError(
            f"unknown config key '{full_key}'{where}.{did_you_mean(key, keys)} "
            f"Valid keys under '{parent or '<root>'}': {choices_text(keys)}.{hint}"
        )
    if isinstance(cause, ValidationError):
        full_key = getattr(cause, "full_key", "") or ""
        msg = str(getattr(cause, "msg", cause)).strip().splitlines()[0]
        return ConfigError(f"{full_key}{where}: wrong type: {msg}")
    return ConfigError(message + (f": {str(cause).splitlines()[0]}" if cause is not None else ""))


def _missing_option(e: Exception) -> ConfigError:
    group, _, name = (getattr(e, "missing_cfg_file", None) or "").rpartition("/")
    options = getattr(e, "options", None)
    if group and options is None and (config_dir() / group).is_dir():  # a list choice: evaluator=[coco,voc7]
        options = group_options(group)
    if group and options is not None:
        what = "experiment" if group == EXPERIMENT_GROUP else f"option in config group '{group}'"
        return ConfigError(f"{'config' if group == EXPERIMENT_GROUP else group}={name}: no such {what}."
                           f"{did_you_mean(name, options)} Available: {choices_text(options)}")
    return ConfigError(str(e).strip().splitlines()[0])


def _valid_keys(config_name: str, parent: str, group_overrides: list[str]) -> list[str]:
    """Keys of the node at `parent`, composed with as many of the group choices as still compose
    (only on the error path: composing again costs tens of milliseconds)."""
    from hydra import compose as hydra_compose

    no_experiment = [o for o in group_overrides if not o.lstrip("+~").startswith(EXPERIMENT_GROUP + "=")]
    for overrides in (group_overrides, no_experiment, []):
        try:
            base = hydra_compose(config_name=config_name, overrides=overrides)
        except Exception:
            continue
        node = OmegaConf.select(base, parent) if parent else base
        if isinstance(node, DictConfig):
            return list(node.keys())
    return []
