"""torchrun --max-restarts: after kill -9 of one rank, the restarted group continues the same run folder from
its last checkpoint by itself, and ends where an uninterrupted run ends."""
import os
import subprocess
import sys

import pytest
import torch

from ..conftest import FAST, REPO

# 8 iterations of 2 x 2 images, a checkpoint after every one; deterministic kernels so that the resumed
# run can be compared with an uninterrupted one bit for bit.
ARGS = [*FAST, "data.batch_size=2", "data.val_batch_size=2", "pipeline.size=96", "train.max_epochs=4",
        "train.val_interval=100", "hooks.checkpoint.iter_interval=1", "hooks.checkpoint.save_best=null",
        "runtime.deterministic=true"]
KILL = ["custom_imports=[tests.engine.kill_hook]", "+hooks.kill={type: KillOnce, at_iter: 3, rank: 1}"]


def torchrun(cwd, data_root, *extra, restarts=1):
    # Without TORCH_DISABLE_SHARE_RDZV_TCP_STORE the restarted workers use the agent's store, where the killed
    # attempt's keys remain: of 5 such restarts here (torch 2.14), 2 failed to connect and 1 hung.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--max-restarts", str(restarts), str(REPO / "tools" / "train.py"), f"data.root={data_root}", *ARGS,
           *extra]
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
    return result, result.stdout + result.stderr


@pytest.mark.slow
def test_kill_9_of_one_rank_then_torchrun_restart_continues_the_run(tmp_path, tiny_shapes):
    (tmp_path / "killed").mkdir()
    result, log = torchrun(tmp_path / "killed", tiny_shapes, *KILL)
    assert result.returncode == 0, log[-4000:]
    assert "exitcode: -9" in log  # rank 1 was killed, not stopped
    runs = list((tmp_path / "killed" / "outputs" / "ssdlite_shapes").iterdir())
    assert len(runs) == 1  # the restart continued the first attempt's folder, no second one
    assert f"torchrun restart 1 of at most 1: continuing the run in {runs[0]} from its last checkpoint" in log
    assert "3 iterations done (+1 batches of epoch 2)" in log
    train_log = (runs[0] / "train.log").read_text()
    assert "torchrun restart 1" in train_log and "resumed from" in train_log
    state = torch.load(runs[0] / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step"], state["iter"]) == (4, 0, 8)

    (tmp_path / "straight").mkdir()
    result, log = torchrun(tmp_path / "straight", tiny_shapes, restarts=0)
    assert result.returncode == 0, log[-4000:]
    straight = next((tmp_path / "straight" / "outputs" / "ssdlite_shapes").iterdir())
    assert not (straight / ".torchelastic_run_id").exists()  # no restarts allowed: nothing to find later
    expected = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(v, expected[k]) for k, v in state["model"].items())


def test_restart_finds_a_fixed_run_dir_and_not_another_jobs_folder(tmp_path):
    """A fixed hydra.run.dir is found by its mark too; a restart of another torchrun job (another run id)
    does not take it."""
    from detframe.cli.train import ELASTIC_MARK, _previous_attempt_dir

    fixed = tmp_path / "runs" / "mine"
    (tmp_path / "runs" / "other").mkdir(parents=True)
    (tmp_path / "runs" / "other" / ELASTIC_MARK).write_text("job-b\n")
    fixed.mkdir()
    (fixed / ELASTIC_MARK).write_text("job-a\n")
    assert _previous_attempt_dir(fixed, "job-a") == fixed
    fresh = tmp_path / "runs" / "2026-01-01_00-00-00"  # the timestamp a restarted attempt composes
    assert _previous_attempt_dir(fresh, "job-b") == tmp_path / "runs" / "other"
    assert _previous_attempt_dir(fixed, "job-c") is None
