"""A test-only hook, imported by a training run through `custom_imports=[tests.engine.kill_hook]`:
SIGKILL one rank once, to test that torchrun's restart continues the run (tests/engine/test_elastic.py)."""
from __future__ import annotations

import os
import signal

from detframe.engine.hooks import Hook
from detframe.registry import HOOKS


@HOOKS.register()
class KillOnce(Hook):
    """After optimizer step `at_iter` (and the hooks listed before this one, the checkpoint among them),
    kill rank `rank` with SIGKILL: no handler runs, as when a node dies. Only in torchrun's first attempt,
    so the restarted group trains on."""

    def __init__(self, at_iter: int, rank: int = 1) -> None:
        self.at_iter, self.rank = at_iter, rank

    def after_step(self, runner, losses) -> None:
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if first_attempt and runner.iter == self.at_iter and runner.rank == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)
