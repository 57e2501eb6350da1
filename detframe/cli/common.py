"""What every command-line tool shares: its own `key=value` arguments beside config overrides, read and
checked against the same rules as the config (detframe/rules.py), and user errors printed as one line
with exit status 2.

A tool lists its own arguments as a table of `Arg`s; `parse_args` splits them from the overrides,
reads each as its kind and checks it against its rule, so `k=0` fails like `data.batch_size=0` does:
`error: k=0: expected an integer >= 1`. An unknown key close to one of the tool's own
(`chekpoint=...`) is reported with the suggestion rather than passed on as a config override.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from ..config import TrainConfig, is_group
from ..errors import ConfigError, UserError, did_you_mean
from ..rules import OneOf, Rule, as_rule, check_value

KIND_TEXT = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@dataclass(frozen=True)
class Arg:
    """One of a tool's own `key=value` arguments.

    Attributes:
        default: the value as one would type it; None: left out of the parsed arguments unless given.
        help: what it is, for messages and docs.
        kind: how the text is read: int, float, bool (true/false), str, or a function of the text
            (`comma_list`) that raises ValueError for text it cannot read.
        rule: the allowed values once read: a `Rule` or an alias such as `PositiveInt`
            (detframe/rules.py), or None for any value of the kind.
    """

    default: str | None
    help: str
    kind: Callable[[str], Any] = str
    rule: Rule | Any = None


def parse_args(args: Sequence[str], spec: Mapping[str, Arg], tool: str,
               note: str = "") -> tuple[dict[str, Any], list[str]]:
    """Split a command line into the tool's own arguments (the keys of `spec`), read and checked, and
    the config overrides, kept in their order.

    Args:
        args: the command line, `key=value` items.
        spec: the tool's own arguments.
        tool: the tool's name, for messages.
        note: appended to the message of a bad own argument (how the tool's arguments go together).

    Returns:
        (key -> value for each argument given or with a default, the other arguments).
    """
    given, rest = {}, []
    for arg in args:
        key, has_value, value = arg.partition("=")
        if has_value and key in spec:
            given[key] = value
        else:
            _check_not_misspelt(arg, spec, tool)
            rest.append(arg)
    values = {}
    for key, arg in spec.items():
        text = given.get(key, arg.default)
        if text is not None:
            values[key] = read_arg(key, text, arg, note)
    return values, rest


def require_key_values(args: Sequence[str], keys: str, others: str) -> None:
    """Stop on a bare word (`best.pt` for `checkpoint=best.pt`): every argument of a tool is key=value
    (or `~key`). `keys` lists the tool's own keys and `others` says what the rest override."""
    for arg in args:
        if "=" not in arg and not arg.startswith("~"):
            raise ConfigError(f"expected key=value, got '{arg}'. Keys: {keys}, or {others}")


def read_arg(key: str, text: str, arg: Arg, note: str = "") -> Any:
    """`text` read as `arg.kind` and checked against `arg.rule`; `ConfigError` naming the key otherwise."""
    suffix = f" ({note})" if note else ""
    rules = [as_rule(arg.rule)] if arg.rule is not None else []
    try:
        value = _read(text, arg.kind)
    except ValueError:
        expected = rules[0].text if rules else KIND_TEXT.get(arg.kind, "a valid value")
        raise ConfigError(f"{key}={text}: expected {expected}{suffix}") from None
    try:
        check_value(key, value, rules)
    except ConfigError as e:
        raise ConfigError(f"{e}{suffix}") from None
    return value


def comma_list(text: str) -> list[str]:
    """`train,val` -> ["train", "val"] (empty items dropped)."""
    return [item for item in text.split(",") if item]


def _read(text: str, kind: Callable[[str], Any]) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    return kind(text)


def _check_not_misspelt(arg: str, spec: Mapping[str, Arg], tool: str) -> None:
    """Stop on `chekpoint=x.pt`: a plain key that is no config key but close to one of the tool's own."""
    key, has_value, _ = arg.partition("=")
    if not has_value or key.startswith(("+", "~")) or "." in key or key in _config_keys() or is_group(key):
        return
    close = did_you_mean(key, spec)
    if close:
        raise ConfigError(f"{arg}: {tool} has no argument '{key}'.{close} Its own arguments: "
                          f"{', '.join(spec)}; other key=value arguments override the config")


def _config_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)} | {"hydra"}


def check_split(key: str, split: str, cfg: DictConfig) -> None:
    """`split` names a dataset node of the data config (`data.train`, `data.val`, ...)."""
    nodes = {name: cfg.data._get_node(name) for name in cfg.data}  # without resolving `root: ???`
    splits = [name for name, node in nodes.items() if isinstance(node, DictConfig) and "type" in node]
    check_value(key, split, [OneOf(*splits)])


def run_tool(main: Callable[[list[str]], Any], argv: Sequence[str] | None, level: int = logging.INFO) -> int:
    """Run `main(args)` with logging set up; a `UserError` is printed as `error: ...` and gives status 2."""
    logging.basicConfig(level=level, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    try:
        result = main(list(sys.argv[1:] if argv is None else argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
