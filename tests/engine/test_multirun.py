"""Hydra multirun through tools/train.py: one folder per run, each with its own config, log and checkpoint."""
import pytest
import torch
from omegaconf import OmegaConf

from ..conftest import FAST, run_tool


@pytest.mark.slow
def test_sweep_gives_one_folder_per_run(tmp_path, tiny_shapes):
    sweep = tmp_path / "sweep"
    args = ["-m", "optimizer.lr=0.01,0.02", f"data.root={tiny_shapes}", *FAST, "pipeline.size=96",
            "train.max_iters=1", "train.val_interval=0", "hooks.checkpoint.save_best=null",
            "hooks.logger.tensorboard=false", f"hydra.sweep.dir={sweep}"]
    result = run_tool("train.py", args, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["0", "1"]
    for num, lr in (("0", 0.01), ("1", 0.02)):
        run = sweep / num
        assert OmegaConf.load(run / "config.yaml").optimizer.lr == lr
        assert "optimizer SGD" in (run / "train.log").read_text()
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert state["iter"] == 1 and OmegaConf.create(state["config"]).optimizer.lr == lr
