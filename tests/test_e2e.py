"""Tiny end-to-end runs through the real command-line tools: train, save, resume, evaluate."""
import json
import re

import pytest
import torch

from .conftest import FAST, RACCOON, needs_raccoon, run_tool

pytestmark = pytest.mark.slow


def train(tmp_path, tiny_shapes, name, *extra):
    run_dir = tmp_path / name
    args = [f"data.root={tiny_shapes}", *FAST, f"hydra.run.dir={run_dir}", *extra]
    result = run_tool("train.py", args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result.stdout + result.stderr


def test_train_save_resume_evaluate(tmp_path, tiny_shapes):
    run_dir, log = train(tmp_path, tiny_shapes, "first", "train.max_epochs=2")
    ckpts = run_dir / "checkpoints"
    assert (ckpts / "last.pt").is_file() and (ckpts / "best.pt").is_file()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "train.log").is_file()
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run_dir / "plots").glob("*.png")) == ["train.png", "val.png"]
    assert '"train/loss"' in (run_dir / "scalars.jsonl").read_text()
    assert "coco/AP50" in (run_dir / "train.log").read_text() and "epoch 2/2" in log
    state = torch.load(ckpts / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["iter"] == 4 and {"model", "optimizer", "scheduler"} <= set(state)

    # resume continues from the saved position with the rest of the schedule
    resumed, log = train(tmp_path, tiny_shapes, "resumed", "train.max_epochs=3",
                         f"resume={ckpts / 'last.pt'}")
    assert "resumed from" in log and "2 epochs and 4 iterations done" in log
    assert "epoch 1/3" not in log and "epoch 3/3" in log
    state = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and state["iter"] == 6

    # evaluation with the config saved in the checkpoint, nothing else needed
    result = run_tool("eval.py", [f"checkpoint={ckpts / 'best.pt'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"coco/AP50\s+\d\.\d{4}", result.stdout)
    metrics = json.loads((run_dir / "eval_best" / "metrics.json").read_text())["metrics"]
    assert set(metrics) >= {"coco/AP", "coco/AP50", "coco/AP75", "coco/APs", "coco/AR100"}

    result = run_tool("eval.py", [f"checkpoint={ckpts / 'best.pt'}", "data.val_batch_sise=2"], cwd=tmp_path)
    assert result.returncode == 2 and "Did you mean 'val_batch_size'?" in result.stderr


def test_voc_layout_and_user_config_file(tmp_path, tiny_shapes):
    own = tmp_path / "my_experiment.yaml"
    own.write_text("defaults:\n  - override /data: shapes_voc\ntrain:\n  max_epochs: 1\n")
    run_dir, log = train(tmp_path, tiny_shapes, "voc", f"config={own}")
    assert "VOCDetection(8 images" in log and (run_dir / "checkpoints" / "last.pt").is_file()


def test_print_config_without_training(tmp_path):
    result = run_tool("train.py", ["--cfg", "job", "config=ssdlite_shapes", "optimizer.lr=0.5"], cwd=tmp_path)
    assert result.returncode == 0 and "lr: 0.5" in result.stdout
    assert "experiment_name: ssdlite_shapes" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_command_line_errors_are_short(tmp_path):
    result = run_tool("train.py", ["optimizer.lrr=0.1"], cwd=tmp_path)
    assert result.returncode == 2 and "Did you mean 'lr'?" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_tool("train.py", ["config=no_such_experiment"], cwd=tmp_path)
    assert result.returncode == 2 and "ssdlite_shapes" in result.stderr
    result = run_tool("train.py", ["data=raccoon", f"data.root={tmp_path / 'missing'}", *FAST], cwd=tmp_path)
    assert result.returncode == 2 and "VOC dataset root not found" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@needs_raccoon
def test_raccoon_trains_and_evaluates(tmp_path):
    run_dir = tmp_path / "raccoon"
    # train on the 40 val photos to keep it short: this checks real JPEGs and XML quirks end to end
    args = ["data=raccoon", f"data.root={RACCOON}", *FAST, "train.max_epochs=1", "data.train.split=val",
            f"hydra.run.dir={run_dir}"]
    result = run_tool("train.py", args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "VOCDetection(40 images" in result.stdout and "coco/AP50" in result.stdout
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def test_a_training_run_composes_its_config_once(tmp_path, tiny_shapes, monkeypatch):
    """tools/train.py composes once (with the run folder and logging), writes Hydra's record, trains."""
    import logging

    import hydra

    from detframe.cli.train import main

    calls = []
    compose = hydra.compose
    monkeypatch.setattr(hydra, "compose",
                        lambda *a, **k: calls.append(k.get("overrides")) or compose(*a, **k))
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main([f"data.root={tiny_shapes}", *FAST, "pipeline.size=96", "train.max_iters=1",
                     "train.val_interval=0", "hooks.checkpoint.save_best=null", "hydra.run.dir=once"]) == 0
    finally:  # run_job configured logging for the run (console + train.log): give pytest its own back
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    assert len(calls) == 1
    run = tmp_path / "once"
    assert (run / "checkpoints" / "last.pt").is_file() and "optimizer SGD" in (run / "train.log").read_text()
    assert {p.name for p in (run / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
