"""The bad-input catalogue's one assertion: a tool given a bad input stops (or warns) with a message that
names the culprit, and never prints a traceback."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
from pathlib import Path

from ..conftest import FAST, run_tool

# A training run small enough to reach the first step in seconds on the tiny shapes set.
TINY_TRAIN = [*FAST, "pipeline.size=96", "train.max_iters=1", "hooks.checkpoint.save_best=null"]


def run(tool: str, args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """tools/<tool>.py with `args`, in a subprocess, as a user runs it."""
    return run_tool(f"{tool}.py", [str(a) for a in args], cwd=cwd, timeout=timeout)


def run_main(tool: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The same tool's `main(argv)` in this process, its printed output captured: the same code from the
    command line on, without the ~4 s of a new interpreter importing torch. The tool sets up logging
    as it does in a process of its own (pytest's handlers are set aside meanwhile), so its warnings are
    in the captured output too.

    The tool's exit status is its return value or its `sys.exit` code. The logging set-up a training
    run makes (Hydra's job: console and train.log handlers) is undone afterwards.
    """
    from detframe.cli import tool as tool_main

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level, here = list(root.handlers), root.level, os.getcwd()
    root.handlers[:] = []  # so the tool's own logging set-up (basicConfig, Hydra's) writes into `err`/`out`
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = tool_main(tool.replace("_", "-"))([str(a) for a in args])
            except SystemExit as e:
                status = e.code
    finally:
        os.chdir(here)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    status = status if isinstance(status, int) else (0 if status is None else 1)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


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
