"""The bad-input catalogue's one assertion: a tool given a bad input stops (or warns) with a message that
names the culprit, and never prints a traceback."""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..conftest import FAST, run_tool

# A training run small enough to reach the first step in seconds on the tiny shapes set.
TINY_TRAIN = [*FAST, "pipeline.size=96", "train.max_iters=1", "hooks.checkpoint.save_best=null"]


def run(tool: str, args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """tools/<tool>.py with `args`, in a subprocess, as a user runs it."""
    return run_tool(f"{tool}.py", [str(a) for a in args], cwd=cwd, timeout=timeout)


def assert_fails(result: subprocess.CompletedProcess, *culprits: object, status: int = 2) -> str:
    """Exit status `status`, no traceback, and every culprit (a file, key, value, line) named in the output.
    Returns the output for further checks."""
    out = result.stdout + result.stderr
    assert result.returncode == status, f"exit {result.returncode}, expected {status}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-4000:]
    for culprit in culprits:
        assert str(culprit) in out, f"{culprit!r} not named in:\n{out[-3000:]}"
    return out


def assert_warns(result: subprocess.CompletedProcess, *culprits: object) -> str:
    """The run goes on (exit 0), no traceback, and the warning names every culprit."""
    return assert_fails(result, *culprits, status=0)
