"""Graceful stop on SIGTERM and SIGINT: finish the current step, save, exit with a resume hint.

A cluster scheduler (SLURM, Kubernetes) sends SIGTERM before it kills a job; Ctrl-C sends SIGINT. The
handler only records the signal; the runner checks `requested` after each optimizer step, so the
checkpoint it then writes is a consistent state between two steps. A second Ctrl-C stops at once.
"""
from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from ..errors import UserError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(UserError):
    """Training stopped on a signal after saving a checkpoint; `exit_code` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class GracefulStop:
    """Context manager: while inside, SIGTERM/SIGINT set `requested` (the signal's name) instead of
    killing the process. Outside the main thread (where handlers cannot be installed) it does nothing."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.signum = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: the user does not want to wait
        self.requested, self.signum = signal.Signals(signum).name, signum
        # No logging here: a handler may run while the logging module holds its lock.
        sys.stderr.write(f"\n{self.requested} received: finishing the current step, then saving a checkpoint "
                         "(Ctrl-C again to stop at once)\n")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum else 1
