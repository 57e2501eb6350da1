"""`train.max_minutes`: train for a wall-clock budget instead of a fixed number of epochs (ultralytics'
`time=`). The same config then uses what a machine can do in the time: more epochs on a fast day, fewer
on a slow one, with the schedule always ending at the end of the budget.

After every epoch the budget divides the time left by the mean time of an iteration so far in this process
(evaluations included) and sets the run's length to the whole epochs that fit. A changed length rebuilds
the LR schedule for it at the current iteration (as `resume` does with a new `train.max_epochs`), so the
cosine (or step) schedule reaches its end when the time does; hooks that count epochs from the end
(`PipelineSwitchHook`) follow. `train.max_epochs` is only the first guess. If an epoch overruns the
budget, the run stops after the optimizer step that crossed it, then evaluates and saves as at any end.

The clock starts when training starts (after the datasets are read and cached); a resumed run adds the
time its checkpoint had spent. What this cannot give is a run that repeats bit for bit: its length depends
on the machine's speed that day.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..dist import broadcast_object
from ..errors import ConfigError
from .schedules import restore_position

if TYPE_CHECKING:
    from torch.optim.lr_scheduler import LRScheduler

    from .runner import Runner

log = logging.getLogger("detframe")
clock = time.perf_counter  # module-level so that tests can drive the budget with a clock of their own


class TimeBudget:
    """The wall-clock budget of a run.

    Args:
        minutes: the budget (training and its evaluations; not the start-up before the first epoch).
        schedule_for: builds the LR schedule for a run of the given total iterations.
    """

    def __init__(self, minutes: float, schedule_for: Callable[[int], LRScheduler]) -> None:
        self.seconds = float(minutes) * 60.0
        self.schedule_for = schedule_for
        self.spent_before = 0.0  # seconds spent by earlier processes of this run (resume)
        self.seconds_per_iter: float | None = None  # the latest estimate, evaluations included
        self._start, self._first_iter = clock(), 0

    def start(self, runner: Runner) -> None:
        """Start this process's clock at iteration `runner.iter`."""
        self._start, self._first_iter = clock(), runner.iter

    def spent(self) -> float:
        """Seconds of the budget used so far."""
        return self.spent_before + clock() - self._start

    def over(self) -> bool:
        return self.spent() >= self.seconds

    def fit(self, runner: Runner) -> None:
        """After an epoch: set the run's length to the epochs that fit in the time left, at this process's
        mean time per iteration so far (evaluations included). Rank 0's clock decides for every rank."""
        done = runner.iter - self._first_iter
        if done <= 0:
            return
        self.seconds_per_iter = (clock() - self._start) / done
        self._refit(runner, broadcast_object(self._epochs_that_fit(runner, runner.epoch + 1)))

    def _epochs_that_fit(self, runner: Runner, at_least: int) -> int:
        left_iters = max(0.0, self.seconds - self.spent()) / self.seconds_per_iter
        return max(at_least, int((runner.iter + left_iters) // runner.iters_per_epoch))

    def _refit(self, runner: Runner, epochs: int) -> None:
        if epochs == runner.max_epochs:
            return
        log.info("train.max_minutes=%g: %d epochs fit (%.2f s an iteration, %.1f of %.1f min spent)",
                 self.seconds / 60, epochs, self.seconds_per_iter, self.spent() / 60, self.seconds / 60)
        try:
            set_length(runner, epochs, self.schedule_for)
        except ConfigError as e:  # e.g. YOLOX's warmup + no-augmentation epochs longer than the fitted run
            log.warning("train.max_minutes=%g: the LR schedule cannot be fitted to %d epochs (%s); it keeps "
                        "the shape it has and the run ends after epoch %d", self.seconds / 60, epochs, e,
                        epochs)
            runner.max_epochs, runner.max_iters = epochs, epochs * runner.iters_per_epoch

    def end_now(self, runner: Runner) -> None:
        """The budget ran out inside an epoch: this iteration is the run's last."""
        log.info("train.max_minutes=%g: the budget is spent at epoch %d, iteration %d: training ends here",
                 self.seconds / 60, runner.epoch + 1, runner.iter)
        runner.max_epochs, runner.max_iters = runner.epoch + 1, runner.iter

    def state_dict(self, runner: Runner) -> dict[str, Any]:
        return {"spent": self.spent(), "max_epochs": runner.max_epochs,
                "seconds_per_iter": self.seconds_per_iter}

    def load_state_dict(self, runner: Runner, state: dict[str, Any]) -> None:
        """Resume: carry the time spent into this process and refit the length to the time left (this
        config's budget, at the checkpoint's speed), or take the checkpoint's length before any fit."""
        self.spent_before = float(state.get("spent", 0.0))
        self._start = clock()
        self.seconds_per_iter = state.get("seconds_per_iter")
        if self.seconds_per_iter:
            self._refit(runner, self._epochs_that_fit(runner, runner.epoch + (1 if runner.start_step else 0)))
        elif int(state.get("max_epochs", runner.max_epochs)) != runner.max_epochs:
            set_length(runner, int(state["max_epochs"]), self.schedule_for)


def set_length(runner: Runner, max_epochs: int, schedule_for: Callable[[int], LRScheduler]) -> None:
    """Make the run `max_epochs` long, with its LR schedule rebuilt for that length at the current
    iteration (the optimizer's LR set to the new schedule's value there)."""
    position = runner.scheduler.state_dict()
    scheduler = schedule_for(max_epochs * runner.iters_per_epoch)  # raises before anything has changed
    restore_position(scheduler, position)
    runner.scheduler, runner.max_epochs = scheduler, max_epochs
    runner.max_iters = max_epochs * runner.iters_per_epoch
