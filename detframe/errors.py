"""Errors that are the user's to fix (a config key, a dataset path), printed without a traceback.

The tools catch `UserError` at the top and print its message alone: a misspelt key deserves one clear
line, not forty lines of Hydra and OmegaConf internals.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Base of the errors whose message is the whole story (bad config, bad data)."""


class ConfigError(UserError, ValueError):
    """A config names an unknown key, choice or component, or gives a value of the wrong type."""


class DatasetError(UserError, ValueError):
    """A dataset is missing, unreadable or inconsistent with the config."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    if not close:
        # Case-insensitive second try: `mobilenetv3` vs `MobileNetV3`.
        lowered = {str(c).lower(): str(c) for c in choices}
        close = [lowered[m] for m in difflib.get_close_matches(str(name).lower(), lowered, n=1, cutoff=0.6)]
    return f" Did you mean '{close[0]}'?" if close else ""


def choices_text(choices: Iterable[str]) -> str:
    """Sorted, comma-separated list of valid names for an error message."""
    names = sorted(str(c) for c in choices)
    return ", ".join(names) if names else "(none)"
