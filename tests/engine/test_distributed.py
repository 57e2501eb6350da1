"""torchrun with 2 CPU processes (gloo) gives the weights of 1 process with the same total batch."""
import os
import subprocess
import sys

import pytest
import torch

from ..conftest import FAST, REPO
from .helpers import make_runner

# Deterministic mode: the same samples, in the same order, with the same augmentation, whatever the
# number of processes. Norm layers frozen: BatchNorm in train mode normalises by per-process batch
# statistics, which no split of the batch can reproduce (SyncBN does, on GPUs only). Every negative
# prior in the loss: hard-negative mining ranks thousands of nearly tied losses at initialisation, and
# the last-bit differences between a batch of 4 and two of 2 would pick other negatives. No warmup and
# a high LR so that the weights move far more than the tolerance.
SAME = ["runtime.deterministic=true", "train.max_iters=3", "train.freeze_norm=[*]", "pipeline.size=96",
        "model.head.loss_cls.neg_pos_ratio=100000", "train.val_interval=2", "data.val_batch_size=1",
        "scheduler.warmup_iters=0", "optimizer.lr=0.05", "hooks.checkpoint.save_best=null"]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_total_batch(tmp_path, tiny_shapes):
    one, _ = make_runner(tmp_path, tiny_shapes, *SAME, "data.batch_size=4", name="one")
    initial = {k: v.clone() for k, v in one.model.state_dict().items()}
    one.train()

    run_dir = tmp_path / "two"
    args = [f"data.root={tiny_shapes}", *FAST, *SAME, "data.batch_size=2", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc-per-node", "2", str(REPO / "tools" / "train.py"), *args],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "cpu x2" in log and "batch 2 x 2 processes x 1 accumulated = 4" in log
    assert log.count("evaluation after epoch") == 1  # rank 1 logs warnings only
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert len(state["rng"]) == 2 and state["meta"]["world_size"] == 2

    moved = max((one.model.state_dict()[k].float() - initial[k].float()).abs().max().item() for k in initial)
    differ = max((one.model.state_dict()[k].float().cpu() - v.float()).abs().max().item()
                 for k, v in state["model"].items())
    assert moved > 1e-3 and differ < 1e-5 * max(1.0, moved), (moved, differ)
    # Each rank evaluated half of the val set; gathered, the metrics are those of one process evaluating
    # the same weights (an untrained model's scores are nearly tied, so the weights must be identical).
    one.model.load_state_dict(state["model"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the torchrun processes: the same kernels, the same last bits
    try:
        assert one.evaluate() == pytest.approx(state["metrics"], abs=1e-9)
    finally:
        torch.set_num_threads(threads)
