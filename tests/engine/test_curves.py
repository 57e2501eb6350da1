"""scalars.jsonl and the plots at the end of a run (LoggerHook, vis/curves.py), and tools/plot_runs.py."""
import json

import numpy as np
import pytest

from detframe.cli.plot_runs import main as plot_runs
from detframe.cli.plot_runs import run_labels
from detframe.engine import TrainingInterrupted
from detframe.vis.curves import read_scalars, series, smooth

from .helpers import make_runner

# 8 training images, batch 2: 4 iterations per epoch; evaluation after each epoch.
TWO_EPOCHS = ["pipeline.size=64", "train.max_epochs=2", "train.val_interval=1", "hooks.logger.images=0",
              "hooks.logger.tensorboard=false", "hooks.logger.plots=true"]


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_a_run_writes_scalars_and_plots_and_a_resume_does_not_repeat_iterations(tmp_path, tiny_shapes):
    runner, _ = make_runner(tmp_path, tiny_shapes, *TWO_EPOCHS, name="a", stop_at=6)
    with pytest.raises(TrainingInterrupted):
        runner.train()
    scalars = runner.work_dir / "scalars.jsonl"
    with open(scalars, "a") as f:  # the half-written line of a killed process
        f.write('{"iter": 7, "epoch": 2, "train/lo')
    runner, _ = make_runner(tmp_path, tiny_shapes, *TWO_EPOCHS, "resume=auto", name="a")
    assert runner.iter == 6
    runner.train()

    records = lines(scalars)
    train = [r for r in records if "train/loss" in r]
    val = [r for r in records if "val/coco/AP" in r]
    assert [r["iter"] for r in train] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [(r["iter"], r["epoch"]) for r in val] == [(4, 1), (8, 2)]
    assert {"train/loss_cls", "train/loss_box", "train/loss", "train/lr", "train/grad_norm", "time/iter",
            "time/data", "epoch"} <= set(train[0])
    assert {"val/coco/AP50", "val/coco/AR100"} <= set(val[0])
    assert sorted(p.name for p in (runner.work_dir / "plots").glob("*.png")) == ["train.png", "val.png"]

    # a second run (its file, edited), and both overlaid in one figure set, labelled by their overrides
    other = tmp_path / "b"
    (other / ".hydra").mkdir(parents=True)
    (other / "scalars.jsonl").write_text("".join(json.dumps({**r, "train/loss": r.get("train/loss", 0) / 2})
                                                 + "\n" for r in records))
    (runner.work_dir / ".hydra").mkdir()
    (runner.work_dir / ".hydra" / "overrides.yaml").write_text("- data.root=x\n- optimizer.lr=0.01\n")
    (other / ".hydra" / "overrides.yaml").write_text("- data.root=x\n- optimizer.lr=0.02\n")
    assert run_labels([runner.work_dir, other]) == ["optimizer.lr=0.01", "optimizer.lr=0.02"]
    out = tmp_path / "compared"
    assert plot_runs([str(runner.work_dir), str(other), f"out={out}"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["train.png", "val.png"]
    assert plot_runs([str(tmp_path)]) == 0  # the folder of both: a sweep's folder
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == ["train.png", "val.png"]


def test_a_record_that_goes_back_supersedes_the_later_ones(tmp_path):
    path = tmp_path / "scalars.jsonl"
    rows = [{"iter": 1, "train/loss": 3.0}, {"iter": 2, "train/loss": 2.0}, {"iter": 2, "val/AP": 0.1},
            {"iter": 2, "train/loss": 2.5}, {"iter": 3, "train/loss": 1.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    x, y = series(read_scalars(path), "train/", "iter")["train/loss"]
    assert x.tolist() == [1, 2, 3] and y.tolist() == [3.0, 2.5, 1.0]
    assert series(read_scalars(path), "val/", "iter")["val/AP"][1].tolist() == [0.1]


def test_smoothing_keeps_a_constant_and_ignores_nan():
    assert np.allclose(smooth(np.full(20, 2.0)), 2.0)
    assert len(smooth(np.arange(10.0))) == 10
    y = np.arange(20.0)
    y[5] = np.nan
    assert np.isfinite(smooth(y)).all()


def test_plot_runs_names_a_folder_without_scalars_and_a_stray_argument(tmp_path, capsys):
    assert plot_runs([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}: no scalars.jsonl (not a detframe training run folder")
    assert err.count("\n") == 1
    assert plot_runs([str(tmp_path), "dpi=300"]) == 2
    assert "dpi=300: plot_runs takes run folders and out=FOLDER" in capsys.readouterr().err
    assert run_labels([tmp_path / "0", tmp_path / "1"]) == ["0", "1"]
