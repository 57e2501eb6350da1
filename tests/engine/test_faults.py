"""Faults: SIGTERM/SIGINT stop cleanly with a checkpoint; after kill -9, resume=auto continues."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from detframe.engine.signals import GracefulStop

from ..conftest import FAST, REPO


def test_signals_set_a_flag_and_a_second_ctrl_c_stops_at_once():
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == "SIGTERM" and stop.exit_code == 143
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def start(tmp_path, data_root, *extra, own_group=False):
    """tools/train.py in the background, run folders under tmp_path/outputs as for a user; with `own_group`
    in a process group of its own (its loader workers included), as a batch job runs."""
    args = [f"data.root={data_root}", *FAST, "data.batch_size=2", "pipeline.size=96", "train.max_epochs=2",
            "hooks.checkpoint.iter_interval=1", "hooks.checkpoint.save_best=null", "train.val_interval=100",
            *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "tools" / "train.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=own_group)


def wait_for_iterations(proc, count, timeout=120):
    """Read the log until `count` iteration lines went by; returns the text read."""
    text, seen, deadline = "", 0, time.monotonic() + timeout
    while seen < count:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"training ended or stalled before {count} iterations:\n{text[-3000:]}")
        text += line
        seen += bool(re.search(r"epoch \d+/\d+ iter \d+/\d+", line))
    return text


def finish(proc, timeout=180):
    out, _ = proc.communicate(timeout=timeout)
    return out


@pytest.mark.slow
def test_sigterm_then_kill_9_then_resume_auto(tmp_path, tiny_shapes):
    # 1. SIGTERM: the current step finishes, a checkpoint is saved, the exit says how to resume.
    first = start(tmp_path, tiny_shapes)
    log = wait_for_iterations(first, 2)
    first.send_signal(signal.SIGTERM)
    log += finish(first)
    assert first.returncode == 143, log[-3000:]
    assert "SIGTERM received" in log and "stopped by SIGTERM" in log and "resume=auto" in log
    assert "Traceback" not in log
    run_dirs = list((tmp_path / "outputs" / "ssdlite_shapes").iterdir())
    assert len(run_dirs) == 1
    stopped_at = torch.load(run_dirs[0] / "checkpoints" / "last.pt", weights_only=True)["iter"]
    assert 2 <= stopped_at < 8

    # 2. resume=auto finds that run folder; this time the process is killed without warning.
    second = start(tmp_path, tiny_shapes, "resume=auto")
    log = wait_for_iterations(second, 2)
    second.kill()  # SIGKILL: no handler runs
    second.wait()
    assert f"continuing the run in {run_dirs[0]}" in log and f"{stopped_at} iterations done" in log
    killed_at = torch.load(run_dirs[0] / "checkpoints" / "last.pt", weights_only=True)["iter"]
    assert killed_at >= stopped_at + 2

    # 3. resume=auto again: continues from the last checkpoint written before the kill, to the end.
    third = start(tmp_path, tiny_shapes, "resume=auto")
    log = finish(third)
    assert third.returncode == 0, log[-3000:]
    assert f"{killed_at} iterations done" in log and "coco/AP50" in log
    state = torch.load(run_dirs[0] / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step"], state["iter"]) == (2, 0, 8)
    assert len(list((tmp_path / "outputs" / "ssdlite_shapes").iterdir())) == 1  # one run folder throughout
    assert not list((run_dirs[0] / "checkpoints").glob(".*.tmp"))  # no temporary file left by the kill


@pytest.mark.slow
def test_sigterm_to_the_whole_job_with_loader_workers_still_saves(tmp_path, tiny_shapes):
    # SLURM and Kubernetes signal every process of the job: the loader workers get SIGTERM too. A worker
    # killed by it used to make PyTorch raise in the main process while it wrote the checkpoint.
    proc = start(tmp_path, tiny_shapes, "data.num_workers=1", own_group=True)
    log = wait_for_iterations(proc, 2)
    os.killpg(proc.pid, signal.SIGTERM)
    log += finish(proc)
    assert proc.returncode == 143, log[-3000:]
    assert "stopped by SIGTERM" in log and "checkpoint saved" in log and "Traceback" not in log, log[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "ssdlite_shapes").iterdir()
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["iter"] >= 2
