"""The Runner is made of parts: a toy model, a list of tensors, an optimizer and a schedule, no config and
no dataset. Hooks run in the order given; evaluation results reach after_epoch as an argument; the
run state saves and restores with plain functions."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from detframe.engine import Hook, NonFiniteLossError, Runner, resume_run, save_run


class Line(nn.Module):
    """y = w x + b fitted by least squares; a batch is a [N, 2] tensor of (x, y) rows."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.b = nn.Parameter(torch.zeros(()))

    def loss(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x, y = batch[:, 0], batch[:, 1]
        return {"loss_mse": ((self.w * x + self.b - y) ** 2).mean()}

    @torch.no_grad()
    def predict(self, batch: ValBatch) -> list[torch.Tensor]:
        return list(self.w * batch.x + self.b)


@dataclass
class ValBatch:
    x: torch.Tensor
    image_ids: list[int]

    def to(self, device, non_blocking=False) -> ValBatch:
        return ValBatch(self.x.to(device), self.image_ids)


class AbsError:
    """reset / process / compute: the mean absolute error of y = 2x + 1."""

    def __init__(self, xs: torch.Tensor) -> None:
        self.truth = {i: float(2 * x + 1) for i, x in enumerate(xs)}

    def reset(self) -> None:
        self.errors = []

    def process(self, image_ids, predictions) -> None:
        self.errors += [abs(float(p) - self.truth[i]) for i, p in zip(image_ids, predictions)]

    def compute(self) -> dict[str, float]:
        return {"val/mae": sum(self.errors) / len(self.errors)}


class Calls(Hook):
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def after_step(self, runner, losses):
        self.log.append((self.name, "after_step", runner.iter))

    def after_epoch(self, runner, metrics):
        self.log.append((self.name, "after_epoch", dict(metrics)))


def batches(seed: int = 0, count: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        x = torch.rand(8, generator=g) * 4 - 2
        out.append(torch.stack([x, 2 * x + 1], dim=1))
    return out


def make(tmp_path, name: str, **kwargs) -> Runner:
    torch.manual_seed(0)
    model = Line()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
    return Runner(model, batches(), optimizer, scheduler, work_dir=tmp_path / name, **kwargs)


def test_a_runner_of_parts_trains_a_toy_model_on_a_list_of_tensors(tmp_path):
    xs = torch.linspace(-2, 2, 5)
    log: list = []
    runner = make(tmp_path, "toy", max_epochs=20, accumulate=2, val_interval=10, evaluator=AbsError(xs),
                  val_loader=[ValBatch(xs[:3], [0, 1, 2]), ValBatch(xs[3:], [3, 4])],
                  hooks={"b": Calls("b", log), "a": Calls("a", log)})
    assert runner.iters_per_epoch == 3 and runner.max_iters == 60 and runner.config is None
    metrics = runner.train()
    assert runner.iter == 60 and metrics["val/mae"] < 1e-3
    assert abs(runner.model.w.item() - 2) < 1e-3 and abs(runner.model.b.item() - 1) < 1e-3
    assert log[:2] == [("b", "after_step", 1), ("a", "after_step", 1)]  # hooks run in the order given
    epochs = [m for name, stage, m in log if stage == "after_epoch" and name == "a"]
    assert len(epochs) == 20
    assert [i for i, m in enumerate(epochs) if m] == [9, 19]  # the evaluations, explicitly
    assert epochs[-1] == metrics


def test_state_saves_and_restores_with_plain_functions(tmp_path):
    straight = make(tmp_path, "straight", max_epochs=4)
    straight.train()

    first = make(tmp_path, "resumed", max_epochs=2)
    first.train()
    path = save_run(first, "last.pt")
    assert path == tmp_path / "resumed" / "checkpoints" / "last.pt"
    second = make(tmp_path, "resumed", max_epochs=4)
    resume_run(second, path)
    assert (second.epoch, second.iter) == (2, 12)
    second.train()
    assert torch.equal(second.model.w, straight.model.w) and torch.equal(second.model.b, straight.model.b)


# A skipped step calls the scheduler without optimizer.step, which torch warns about.
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_max_skipped_counts_non_finite_steps_in_a_row(tmp_path):
    def poisoned(runner, bad_calls):
        loss, calls = runner.model.loss, []

        def wrapped(batch):
            calls.append(1)
            out = loss(batch)
            return {k: v * float("nan") for k, v in out.items()} if len(calls) in bad_calls else out
        runner.train_module = wrapped

    alternating = make(tmp_path, "alternating", max_epochs=1, nonfinite="skip", max_skipped=1)
    poisoned(alternating, {1, 3, 5})
    alternating.train()
    assert alternating.skipped == 3 and alternating.iter == 6
    in_a_row = make(tmp_path, "in_a_row", max_epochs=1, nonfinite="skip", max_skipped=1)
    poisoned(in_a_row, {2, 3})
    with pytest.raises(NonFiniteLossError, match="2 non-finite steps in a row"):
        in_a_row.train()
