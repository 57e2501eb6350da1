"""Named registries: a config's `type:` key selects a registered class or function.

A `Registry` is a flat dict from name to callable. `build(cfg, **parts)` calls the entry named by
`cfg.type` with the other keys as keyword arguments, `parts` replacing nested configs by objects the
caller already built. Arguments are checked against the callable's signature first, so a misspelt key,
a wrong type or a value out of range names the config path and the closest valid argument instead of
surfacing as a `TypeError` deep inside a constructor. The allowed values come from the constructor's
annotations (`score_threshold: Probability`, see detframe/rules.py) or, for callables we cannot
annotate, from `register(rules=...)`. `check(cfg)` does the same checks without building, for nodes
that are built only after the datasets are read.
"""
from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError, UserError, choices_text, did_you_mean
from .rules import Rule, as_rule, check_value, rules_of


class Registry:
    """A named mapping from string keys to classes or factory functions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[str, Callable[..., Any]] = {}
        self._rules: dict[str, dict[str, list[Rule]]] = {}

    def register(self, name: str | None = None, *, force: bool = False,
                 rules: Mapping[str, Any] | None = None) -> Callable:
        """Decorator filing a class or function under `name` (default: its `__name__`).

        Args:
            rules: argument name -> a `Rule` or a rules alias (`PositiveFloat`), for a callable whose
                signature we cannot annotate (torch's optimizers); annotations are the usual place.
        """

        def wrap(obj: Callable) -> Callable:
            key = name or obj.__name__
            if key in self._entries and not force and self._entries[key] is not obj:
                raise KeyError(f"{self.name} registry already has an entry '{key}' ({self._entries[key]!r})")
            self._entries[key] = obj
            self._rules[key] = {arg: [as_rule(r)] for arg, r in (rules or {}).items()}
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

    def rules(self, name: str) -> dict[str, list[Rule]]:
        """The argument rules given to `register(rules=...)` for the entry `name`."""
        return self._rules.get(name, {})

    def build(self, cfg: Mapping | DictConfig, **parts: Any) -> Any:
        """Build the entry named by `cfg["type"]`.

        Args:
            cfg: a mapping with a `type` key; the other keys are keyword arguments.
            parts: already-built objects that replace the same-named keys of `cfg` (nested configs
                that the caller built first), or extra arguments not in the config.

        Raises:
            ConfigError: the arguments do not fit the signature or its rules, or the constructor
                rejects them with a ValueError or TypeError (its message, after the config path).
        """
        type_name, target, kwargs, where = self._resolve(cfg)
        kwargs.update(parts)
        check_arguments(target, kwargs, where=where, rules=self.rules(type_name))
        try:
            return target(**kwargs)
        except (ValueError, TypeError) as e:
            if isinstance(e, UserError):
                raise
            # Arguments that pass the checks above but that the constructor refuses (lists of unequal
            # lengths, torch's own argument checks) are the config's fault too: one line, not a traceback.
            text = " ".join(str(e).split()) or type(e).__name__
            named = text if type_name in text else f"{type_name}: {text}"
            raise ConfigError(f"{where}: {named}") from e

    def check(self, cfg: Mapping | DictConfig) -> None:
        """Check a node without building it: its type, and the names, types and allowed values of the
        keys it sets. Arguments the builder passes itself (`dataset`, `optimizer`) are not asked for."""
        type_name, target, kwargs, where = self._resolve(cfg)
        check_arguments(target, kwargs, where=where, rules=self.rules(type_name), complete=False)

    def _resolve(self, cfg: Mapping | DictConfig) -> tuple[str, Callable[..., Any], dict[str, Any], str]:
        """(type name, the registered callable, the other keys as plain values, the node's config path)."""
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
        return type_name, target, kwargs, where or type_name


def to_plain(cfg: Any) -> Any:
    """OmegaConf containers to plain dicts/lists (resolved); other values unchanged."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, Mapping):
        return dict(cfg)
    return cfg


def config_path(cfg: Any) -> str:
    """Path of an OmegaConf node inside its root config ("model.head", "pipeline.train[1]"), or "" if
    unknown."""
    parts: list[str] = []
    node = cfg
    try:
        while isinstance(node, (DictConfig, ListConfig)) and node._get_parent() is not None:
            parent = node._get_parent()  # OmegaConf keeps the path; there is no public accessor.
            key = node._key()
            parts.append(f"[{key}]" if isinstance(parent, ListConfig) else f".{key}")
            node = parent
    except Exception:
        return ""
    return "".join(reversed(parts)).lstrip(".")


def check_arguments(target: Callable, kwargs: dict[str, Any], where: str,
                    rules: Mapping[str, Sequence[Rule]] | None = None, complete: bool = True) -> None:
    """Raise `ConfigError` if `kwargs` does not fit `target`'s signature: an unknown name, a missing
    argument (when `complete`), a value outside the rules of its annotation or of `rules`, or a value of
    the wrong type.

    Args:
        target: a class (its `__init__` is read) or a function.
        kwargs: the arguments as plain values; built objects may be among them.
        where: the config path of the node, for the messages ("model.head").
        rules: argument name -> rules beside the annotations (`Registry.register(rules=...)`).
        complete: False when the builder adds arguments of its own later (`Registry.check`).
    """
    func = target.__init__ if inspect.isclass(target) else target
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return
    params = [p for p in sig.parameters.values() if p.name != "self"]
    name = getattr(target, "__name__", str(target))
    _check_names(params, kwargs, where, name)
    missing = [
        p.name for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in kwargs
    ]
    if missing and complete:
        raise ConfigError(f"{where}: {name} needs {', '.join(repr(m) for m in missing)}, "
                          "which the config does not set")
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:
        hints = {}
    for key, value in kwargs.items():
        check_value(f"{where}.{key}", value, [*rules_of(hints.get(key)), *(rules or {}).get(key, [])])
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(
                f"{where}.{key}: expected {_type_name(hints[key])}, got {value!r} ({type(value).__name__})"
            )


def _check_names(params: list[inspect.Parameter], kwargs: dict[str, Any], where: str, name: str) -> None:
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key in kwargs:
        if key not in names:
            raise ConfigError(
                f"{where}.{key}: {name} has no argument '{key}'.{did_you_mean(key, names)} "
                f"Valid arguments: {choices_text(names)}. (If an experiment sets it for another type, "
                f"drop it with ~{where}.{key})"
            )


def _matches(value: Any, hint: Any) -> bool:
    """Loose check of a config value against a type hint; unknown hints always pass."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _matches(value, typing.get_args(hint)[0])
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
    if typing.get_origin(hint) is typing.Annotated:
        return _type_name(typing.get_args(hint)[0])
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
SAMPLERS = Registry("sampler")
ROI_EXTRACTORS = Registry("RoI extractor")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
EVALUATORS = Registry("evaluator")
HOOKS = Registry("hook")
