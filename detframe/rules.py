"""Allowed values: the rules config keys, component arguments and tool arguments are checked against.

One mechanism serves all three. A rule says whether a value is allowed and, in words, what is allowed
(`Range(1, integer=True)`: "an integer >= 1"). Rules sit where the value is declared:

- A schema field (detframe/config/schema.py) or an argument of a registered component carries them as
  type metadata, usually through the aliases at the end of this module::

      batch_size: PositiveInt = 16                        # DataConfig
      score_threshold: Probability = 0.05                 # a head's constructor
      rule: Annotated[str, OneOf("greater", "less")] = "greater"

  `config.validate.check_config` checks the schema right after composition; `registry.check_arguments`
  checks a component's arguments whenever its node is checked or built. A new component gets its
  checks by annotating its constructor, nothing else.
- An argument of a callable we cannot annotate (torch's optimizers): `REGISTRY.register(rules={...})`.
- A tool's own `key=value` argument: the `Arg` table of its module (cli/common.py).

A new kind of rule is a `Rule` subclass with `allows(value)` and `text` (and `hint(value)` for a
suggestion); give a common combination an alias below rather than spelling it out at each argument.

Checks between several values (class counts, the input size against the model's stride, BatchNorm and
a batch of one image) are functions: config/validate.py (the config alone) and engine/preflight.py
(the config and the built model). Every failure is one line: `key=value: expected <what is allowed>`.
"""
from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from .errors import ConfigError, did_you_mean


class Rule:
    """What values a key allows; `text` completes "expected ..."."""

    text = "a valid value"

    def allows(self, value: Any) -> bool:
        raise NotImplementedError

    def hint(self, value: Any) -> str:
        """Extra words after the message (" Did you mean ...?"), or ""."""
        return ""


class Range(Rule):
    """A finite number (an int with `integer`) between `lo` and `hi`, each bound closed unless marked
    open; booleans are not numbers here."""

    def __init__(self, lo: float | None = None, hi: float | None = None, *, integer: bool = False,
                 lo_open: bool = False, hi_open: bool = False) -> None:
        self.lo, self.hi, self.integer, self.lo_open, self.hi_open = lo, hi, integer, lo_open, hi_open
        kind = "an integer" if integer else "a number"
        if lo is not None and hi is not None:
            self.text = f"{kind} in {'(' if lo_open else '['}{show(lo)}, {show(hi)}{')' if hi_open else ']'}"
        elif lo is not None:
            self.text = f"{kind} {'>' if lo_open else '>='} {show(lo)}"
        elif hi is not None:
            self.text = f"{kind} {'<' if hi_open else '<='} {show(hi)}"
        else:
            self.text = kind

    def allows(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if (self.integer and not isinstance(value, int)) or not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)


class OneOf(Rule):
    """One of a few choices (a string compares case-sensitively); `aliases` are accepted quietly (YAML
    reads a bare `off` as false, so `runtime.amp` also takes "False")."""

    def __init__(self, *choices: Any, aliases: Sequence[Any] = ()) -> None:
        self.choices, self.aliases = tuple(choices), tuple(aliases)
        self.text = "one of " + ", ".join(show(c) for c in choices)

    def allows(self, value: Any) -> bool:
        return not isinstance(value, (list, dict)) and (value in self.choices or value in self.aliases)

    def hint(self, value: Any) -> str:
        close = did_you_mean(str(value), [str(c) for c in self.choices])
        return "." + close if close else ""


class Pattern(Rule):
    """A string matching the regular expression `regex` as a whole."""

    def __init__(self, regex: str, text: str) -> None:
        self.regex, self.text = re.compile(regex), text

    def allows(self, value: Any) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


class Each(Rule):
    """A list (of `length` items, when given) whose items all satisfy `rule`, or a mapping whose values
    do."""

    def __init__(self, rule: Rule | Any, length: int | None = None, text: str | None = None) -> None:
        self.rule, self.length = as_rule(rule), length
        count = f" of {length} items" if length is not None else ""
        self.text = text or f"a list{count}, each {self.rule.text}"

    def allows(self, value: Any) -> bool:
        if isinstance(value, Mapping):
            return self.length is None and all(self.rule.allows(v) for v in value.values())
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return False
        return (self.length is None or len(value) == self.length) and all(self.rule.allows(v) for v in value)


class AnyOf(Rule):
    """Any one of `rules` (`pipeline.size`: an integer, or a list of two)."""

    def __init__(self, *rules: Rule, text: str | None = None) -> None:
        self.rules = rules
        self.text = text or " or ".join(r.text for r in rules)

    def allows(self, value: Any) -> bool:
        return any(r.allows(value) for r in self.rules)


class NonEmpty(Rule):
    """A non-empty list, mapping or string (`what` names it in the message)."""

    def __init__(self, what: str = "list") -> None:
        self.text = f"a non-empty {what}"

    def allows(self, value: Any) -> bool:
        if hasattr(value, "__len__"):
            return len(value) > 0
        return value is not None


class Distinct(Rule):
    """A list without repeated items (the repeated ones are named)."""

    text = "a list without repeats"

    def allows(self, value: Any) -> bool:
        return not self._repeated(value)

    def hint(self, value: Any) -> str:
        return f" ({', '.join(show(v) for v in self._repeated(value))} repeated)"

    @staticmethod
    def _repeated(value: Any) -> list[Any]:
        items = [str(v) for v in value] if isinstance(value, Sequence) else []
        return sorted({v for v in items if items.count(v) > 1})


class Increasing(Rule):
    """A list in non-decreasing order (a [min, max] pair)."""

    text = "[min, max] with min <= max"

    def allows(self, value: Any) -> bool:
        try:
            return all(a <= b for a, b in zip(value, value[1:]))
        except TypeError:
            return False


class Folder(Rule):
    """A path where a folder is or can be made: not an existing file."""

    text = "a folder (this is a file)"

    def allows(self, value: Any) -> bool:
        return isinstance(value, str) and value != "" and not Path(value).expanduser().is_file()


# -- using rules -------------------------------------------------------------------------------------------

def as_rule(rule: Rule | Any) -> Rule:
    """A `Rule`, or the one rule of an alias below (`Annotated[float, Range(0, 1)]`)."""
    if isinstance(rule, Rule):
        return rule
    found = rules_of(rule)
    if len(found) != 1:
        raise TypeError(f"expected a Rule or an Annotated type with one Rule, got {rule!r}")
    return found[0]


def min_max(item: Rule) -> Any:
    """The type of a [min, max] pair whose two items satisfy `item` (a transform's `scale` range)."""
    return Annotated[Sequence[float], Each(item, length=2), Increasing()]


def rules_of(hint: Any) -> list[Rule]:
    """The rules of a type hint: the `Rule`s of `Annotated[T, ...]`, also inside `Optional[...]` (a
    union should have one annotated arm; the rules of all arms apply)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return [m for m in hint.__metadata__ if isinstance(m, Rule)]
    if origin in (typing.Union, types.UnionType):
        return [r for arm in typing.get_args(hint) for r in rules_of(arm)]
    return []


def violation(key: str, value: Any, rules: Sequence[Rule]) -> str | None:
    """The message for the first of `rules` that `value` breaks, or None. None is not checked: whether
    a key may be null is the type's business."""
    if value is None:
        return None
    for rule in rules:
        if not rule.allows(value):
            return f"{key}={show(value)}: expected {rule.text}{rule.hint(value)}"
    return None


def check_value(key: str, value: Any, rules: Sequence[Rule]) -> None:
    """Raise `ConfigError` (one line naming key, value and what is allowed) if `value` breaks a rule."""
    message = violation(key, value, rules)
    if message:
        raise ConfigError(message)


def show(value: Any) -> str:
    """A value as one would type it in an override: `fast`, `0.01`, `[800, 480]`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value if value.strip() and value == value.strip() else repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e6:
        return str(int(value))
    return str(value)


# -- the vocabulary ----------------------------------------------------------------------------------------
# Sizes, counts, intervals in steps.
PositiveInt = Annotated[int, Range(1, integer=True)]
# Counts where 0 means "none" or "off".
NonNegativeInt = Annotated[int, Range(0, integer=True)]
# Rates, scales, strides.
PositiveFloat = Annotated[float, Range(0, lo_open=True)]
# Weights and decays that may be 0.
NonNegativeFloat = Annotated[float, Range(0)]
# Probabilities (a transform's `p`), score thresholds, ratios.
Probability = Annotated[float, Range(0, 1)]
# IoU thresholds: 0 would match everything.
IoUThreshold = Annotated[float, Range(0, 1, lo_open=True)]
# Momentum, EMA decay: 1 would never move.
Decay = Annotated[float, Range(0, 1, hi_open=True)]
# A probability whose logit is taken (a classifier's prior): (0, 1).
StrictProbability = Annotated[float, Range(0, 1, lo_open=True, hi_open=True)]
# Channel counts, strides, kernel sizes per level.
PositiveInts = Annotated[Sequence[int], Each(Range(1, integer=True))]
# Positive numbers per level or per coordinate (aspect ratios, box coder stds).
PositiveFloats = Annotated[Sequence[float], Each(Range(0, lo_open=True))]
# An input size: one side, or [h, w].
SIZE = AnyOf(Range(1, integer=True), Each(Range(1, integer=True), length=2),
             text="an integer >= 1, or [h, w] of two")
Size = Annotated[int | Sequence[int], SIZE]
# A pixel value (a fill colour).
PixelValue = Annotated[int, Range(0, 255, integer=True)]
# A torch device as the config and the tools take it.
DEVICE = Pattern(r"auto|cpu|(cuda|mps|xpu)(:\d+)?", "auto, cpu, cuda or cuda:N")
