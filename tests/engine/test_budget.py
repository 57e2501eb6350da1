"""train.max_minutes: the run's length and LR schedule refitted to a wall-clock budget after every epoch,
a stop inside an epoch that overruns it, and a resume that carries the time spent. A fake clock that
advances a fixed time per optimizer step makes the arithmetic exact; one end-to-end run uses real time."""
from __future__ import annotations

import pytest
import torch

from detframe.engine import Hook, PipelineSwitchHook, Runner, TrainingInterrupted, resume_run, save_run
from detframe.engine import budget as budget_module
from detframe.engine.budget import TimeBudget
from detframe.errors import ConfigError

from ..conftest import compose
from .helpers import make_runner
from .test_runner_parts import AbsError, Line, ValBatch, batches


class FakeClock(Hook):
    """Time that moves only when an optimizer step ends, by `seconds_per_step`."""

    def __init__(self, seconds_per_step: float) -> None:
        self.now, self.seconds_per_step = 0.0, seconds_per_step

    def __call__(self) -> float:
        return self.now

    def after_step(self, runner, losses):
        self.now += self.seconds_per_step


def linear_decay(optimizer):
    """The schedule factory: LR falls linearly to 0 at the run's last iteration."""
    return lambda total: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1 - it / total)


def budget_runner(tmp_path, name, monkeypatch, seconds_per_step, minutes, max_epochs=2, **kwargs):
    clock = FakeClock(seconds_per_step)
    monkeypatch.setattr(budget_module, "clock", clock)
    torch.manual_seed(0)
    model = Line()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    factory = linear_decay(optimizer)
    xs = torch.linspace(-2, 2, 5)
    runner = Runner(model, batches(), optimizer, factory(max_epochs * 6), work_dir=tmp_path / name,
                    max_epochs=max_epochs, hooks={"clock": clock, **kwargs.pop("hooks", {})},
                    evaluator=AbsError(xs), val_loader=[ValBatch(xs, list(range(5)))],
                    budget=TimeBudget(minutes, factory), **kwargs)
    return runner, clock


class LRs(Hook):
    def __init__(self):
        self.lrs, self.epochs = [], []

    def after_step(self, runner, losses):
        self.lrs.append(runner.lr)
        self.epochs.append(runner.max_epochs)


def test_the_length_and_schedule_follow_the_time_left(tmp_path, monkeypatch):
    # 6 steps an epoch at 1.5 s each: 9 s an epoch, 63 s of budget -> 7 epochs, not the 2 configured.
    record = LRs()
    runner, clock = budget_runner(tmp_path, "fit", monkeypatch, 1.5, 63 / 60, hooks={"lrs": record})
    metrics = runner.train()
    assert runner.iter == 42 and clock.now == 63.0 and "val/mae" in metrics
    assert record.epochs[:6] == [2] * 6 and set(record.epochs[6:]) == {7}
    # The schedule was rebuilt for 42 iterations at iteration 6: from there the LR is 0.1 x (1 - it / 42)
    # (recorded after each step's scheduler.step(): the LR of the next step).
    assert record.lrs[5] == pytest.approx(0.1 * (1 - 6 / 12))
    assert record.lrs[6] == pytest.approx(0.1 * (1 - 7 / 42))
    assert record.lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_an_epoch_that_overruns_the_budget_ends_the_run_inside_it(tmp_path, monkeypatch):
    # 10 s a step, 25 s of budget: the third step crosses it; the run ends there, evaluated and saved.
    runner, _ = budget_runner(tmp_path, "over", monkeypatch, 10.0, 25 / 60, max_epochs=5, val_interval=5)
    metrics = runner.train()
    assert runner.iter == 3 and "val/mae" in metrics


def test_a_schedule_that_cannot_be_fitted_keeps_its_shape_and_the_run_still_ends_in_time(
        tmp_path, monkeypatch, caplog):
    # As YOLOX's schedule refuses a run shorter than its warmup + no-augmentation epochs.
    runner, clock = budget_runner(tmp_path, "unfit", monkeypatch, 1.5, 27 / 60, max_epochs=10)
    factory = runner.budget.schedule_for

    def refusing(total):
        if total < 30:
            raise ConfigError(f"no cosine phase in {total} iterations")
        return factory(total)

    runner.budget.schedule_for = refusing
    before = runner.scheduler
    runner.train()
    assert runner.iter == 18 and clock.now == 27.0 and runner.scheduler is before
    assert "cannot be fitted to 3 epochs (no cosine phase in 18 iterations)" in caplog.text


class StopAt(Hook):
    def __init__(self, iteration):
        self.iteration = iteration

    def after_step(self, runner, losses):
        if runner.iter == self.iteration:
            runner.request_stop("test")


def test_a_run_stopped_mid_epoch_resumes_with_the_time_it_had_spent(tmp_path, monkeypatch):
    # 9 s epochs, 63 s: 7 epochs. Stopped at iteration 15 (22.5 s, mid epoch 3), the resumed process has
    # 40.5 s left at the checkpoint's 1.5 s an iteration: the 27 iterations that were left.
    first, _ = budget_runner(tmp_path, "resumed", monkeypatch, 1.5, 63 / 60, hooks={"stop": StopAt(15)})
    with pytest.raises(TrainingInterrupted):
        first.train()
    state = torch.load(first.ckpt_dir / "last.pt", weights_only=False)["budget"]
    assert state == {"spent": 22.5, "max_epochs": 7, "seconds_per_iter": 1.5}
    second, clock = budget_runner(tmp_path, "resumed", monkeypatch, 1.5, 63 / 60)
    resume_run(second, first.ckpt_dir / "last.pt")
    assert (second.epoch, second.start_step, second.max_epochs, second.max_iters) == (2, 3, 7, 42)
    second.train()
    assert second.iter == 42 and clock.now == 40.5 and second.budget.spent() == 63.0
    assert second.lr == pytest.approx(0.0, abs=1e-12)


def test_resuming_with_a_larger_budget_lengthens_a_finished_run(tmp_path, monkeypatch):
    first, _ = budget_runner(tmp_path, "longer", monkeypatch, 1.5, 27 / 60)
    first.train()
    assert first.iter == 18
    path = save_run(first, "last.pt")
    second, _ = budget_runner(tmp_path, "longer", monkeypatch, 1.5, 54 / 60)  # 27 s more: 3 epochs
    resume_run(second, path)
    assert (second.epoch, second.max_epochs) == (3, 6)
    second.train()
    assert second.iter == 36


class Loader:
    batch_sampler = None


class FakeRunner:
    def __init__(self, max_epochs):
        self.model, self.train_loader = torch.nn.Identity(), Loader()
        self.max_epochs, self.epoch = max_epochs, 0


def test_pipeline_switch_stays_on_when_a_budget_lengthens_the_run(monkeypatch):
    switched = []
    monkeypatch.setattr("detframe.engine.hooks.set_skip", lambda loader, names: switched.append(tuple(names)))
    hook = PipelineSwitchHook(num_last_epochs=2, disable=["Mosaic"])
    runner = FakeRunner(max_epochs=4)
    for runner.epoch in range(3):
        hook.before_epoch(runner)
    runner.max_epochs = 9  # a budget found room for 5 more epochs after the switch
    for runner.epoch in range(3, 9):
        hook.before_epoch(runner)
    assert hook.switched and switched == [("Mosaic",)]


def test_a_real_budget_stops_a_long_run_early(tmp_path, tiny_shapes):
    # 100 epochs asked for, 2 seconds allowed: the run ends after a few epochs, fitted and evaluated.
    runner, _ = make_runner(tmp_path, tiny_shapes, "train.max_epochs=100", "train.max_minutes=0.033",
                            "train.val_interval=1")
    metrics = runner.train()
    assert runner.epoch < 100 and runner.iter < 100 * runner.iters_per_epoch
    assert "coco/AP" in metrics and runner.budget.spent() >= 2.0 * 0.9


@pytest.mark.parametrize("overrides,match", [
    (["train.max_minutes=0"], "max_minutes"),
    (["train.max_minutes=-5"], "max_minutes"),
    (["train.max_minutes=13", "train.max_iters=100"], "choose one"),
])
def test_a_budget_must_be_positive_and_alone(tiny_shapes, overrides, match):
    from detframe.config import check_training

    with pytest.raises(ConfigError, match=match):
        check_training(compose([f"data.root={tiny_shapes}", *overrides]))
