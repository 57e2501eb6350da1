"""Named registries: a config's `type:` key selects a registered class or function.

A `Registry` is a flat dict from name to callable. `build(cfg, **parts)` calls the entry named by
`cfg.type` with the other keys as keyword arguments, `parts` replacing nested configs by objects the
caller already built. Arguments are checked against the callable's signature first, so a misspelt key
or a wrong type names the config path and the closest valid argument instead of surfacing as a
`TypeError` deep inside a constructor.
"""
from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError, choices_text, did_you_mean


class Registry:
    """A named mapping from string keys to classes or factory functions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None, *, force: bool = False) -> Callable:
        """Decorator filing a class or function under `name` (default: its `__name__`)."""

        def wrap(obj: Callable) -> Callable:
            key = name or obj.__name__
            if key in self._entries and not force and self._entries[key] is not obj:
                raise KeyError(f"{self.name} registry already has an entry '{key}' ({self._entries[key]!r})")
            self._entries[key] = obj
            return obj

        return wrap

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.name} type '{name}'.{did_you_mean(name, self._entries)} "
                f"Known {self.name} types: {choices_text(self._entries)}"
            )
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def build(self, cfg: Mapping | DictConfig, **parts: Any) -> Any:
        """Build the entry named by `cfg["type"]`.

        Args:
            cfg: a mapping with a `type` key; the other keys are keyword arguments.
            parts: already-built objects that replace the same-named keys of `cfg` (nested configs
                that the caller built first), or extra arguments not in the config.
        """
        where = config_path(cfg)
        kwargs = to_plain(cfg)
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{where or self.name}: expected a mapping with a 'type' key, got {kwargs!r}")
        if "type" not in kwargs:
            raise ConfigError(
                f"{where or self.name}: missing 'type'. "
                f"Known {self.name} types: {choices_text(self._entries)}"
            )
        type_name = kwargs.pop("type")
        try:
            target = self.get(type_name)
        except ConfigError as e:
            raise ConfigError(f"{where + '.type' if where else 'type'}: {e}") from None
        kwargs.update(parts)
        check_arguments(target, kwargs, where=where or type_name)
        return target(**kwargs)


def to_plain(cfg: Any) -> Any:
    """OmegaConf containers to plain dicts/lists (resolved); other values unchanged."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, Mapping):
        return dict(cfg)
    return cfg


def config_path(cfg: Any) -> str:
    """Dotted path of an OmegaConf node inside its root config ("model.head"), or "" if unknown."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        try:
            return cfg._get_full_key(None)  # OmegaConf keeps the path; there is no public accessor.
        except Exception:
            return ""
    return ""


def check_arguments(target: Callable, kwargs: dict[str, Any], where: str) -> None:
    """Raise `ConfigError` if `kwargs` does not fit `target`'s signature (names and simple types)."""
    func = target.__init__ if inspect.isclass(target) else target
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return
    params = [p for p in sig.parameters.values() if p.name != "self"]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        names = None
    else:
        names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    name = getattr(target, "__name__", str(target))
    if names is not None:
        for key in kwargs:
            if key not in names:
                raise ConfigError(
                    f"{where}.{key}: {name} has no argument '{key}'.{did_you_mean(key, names)} "
                    f"Valid arguments: {choices_text(names)}. (If an experiment sets it for another type, "
                    f"drop it with ~{where}.{key})"
                )
    missing = [
        p.name for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in kwargs
    ]
    if missing:
        raise ConfigError(f"{where}: {name} needs {', '.join(repr(m) for m in missing)}, "
                          "which the config does not set")
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        return
    for key, value in kwargs.items():
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(
                f"{where}.{key}: expected {_type_name(hints[key])}, got {value!r} ({type(value).__name__})"
            )


def _matches(value: Any, hint: Any) -> bool:
    """Loose check of a config value against a type hint; unknown hints always pass."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args))
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (dict, Mapping) or hint is dict:
        return isinstance(value, Mapping)
    return True


def _type_name(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "")


def import_modules(names: Sequence[str]) -> None:
    """Import user modules so that their `@REGISTRY.register()` decorators run (`custom_imports`)."""
    for module in names:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"custom_imports: cannot import '{module}': {e}") from e


# One registry per kind of component.
DETECTORS = Registry("detector")
BACKBONES = Registry("backbone")
NECKS = Registry("neck")
HEADS = Registry("head")
LOSSES = Registry("loss")
CODERS = Registry("box coder")
ASSIGNERS = Registry("assigner")
PRIORS = Registry("prior generator")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
EVALUATORS = Registry("evaluator")
HOOKS = Registry("hook")
