"""What every command-line tool shares: its own `key=value` arguments beside config overrides, and
user errors printed as one line with exit status 2."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError, UserError


def split_args(args: Sequence[str], own: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Separate a tool's own `key=value` arguments (the keys of `own`, which holds their defaults) from
    the config overrides, which are returned in their order."""
    values, rest = dict(own), []
    for arg in args:
        key, has_value, value = arg.partition("=")
        if has_value and key in own:
            values[key] = value
        else:
            rest.append(arg)
    return values, rest


def parse_int(key: str, value: str, minimum: int | None = None) -> int:
    """`value` as an int, or a ConfigError naming the tool's key."""
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{key}={value}: expected an integer") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{key}={value}: expected an integer >= {minimum}")
    return number


def parse_float(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{key}={value}: expected a number") from None


def parse_bool(key: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ConfigError(f"{key}={value}: expected true or false")
    return value.lower() == "true"


def run_tool(main: Callable[[list[str]], Any], argv: Sequence[str] | None, level: int = logging.INFO) -> int:
    """Run `main(args)` with logging set up; a `UserError` is printed as `error: ...` and gives status 2."""
    logging.basicConfig(level=level, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    try:
        result = main(list(sys.argv[1:] if argv is None else argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
