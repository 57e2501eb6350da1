"""Exact resume: N iterations straight == k iterations, stop, resume, N - k (deterministic mode)."""
import pytest
import torch

from detframe.engine import TrainingInterrupted, load_checkpoint

from .helpers import make_runner, weights

# 8 training images, batch 2: 4 iterations per epoch; 6 iterations in all, stopped after 3 (mid-epoch).
EXACT = ["runtime.deterministic=true", "train.max_iters=6", "hooks.ema={type: EMAHook, tau: 3}",
         "pipeline.size=96"]


def test_interrupted_and_resumed_run_equals_the_straight_run(tmp_path, tiny_shapes):
    straight, straight_log = make_runner(tmp_path, tiny_shapes, *EXACT, name="straight")
    straight.train()
    assert straight.iter == 6 and len(straight_log.losses) == 6 and straight.max_epochs == 2

    first, first_log = make_runner(tmp_path, tiny_shapes, *EXACT, name="split", stop_at=3)
    with pytest.raises(TrainingInterrupted, match=r"stopped by test at epoch 1, iteration 3 \(batch 3 of 4"):
        first.train()
    state = load_checkpoint(first.ckpt_dir / "last.pt")
    assert (state["epoch"], state["step"], state["iter"]) == (0, 3, 3)
    assert state["ema"]["updates"] == 3 and state["rng"][0]["torch"].dtype == torch.uint8

    # Resume with loader workers: per-sample seeds make augmentation independent of who loads what.
    second, second_log = make_runner(tmp_path, tiny_shapes, *EXACT, "data.num_workers=2",
                                     f"resume={first.ckpt_dir / 'last.pt'}", name="split")
    assert (second.epoch, second.start_step, second.iter) == (0, 3, 3)
    second.train()

    resumed = first_log.losses + second_log.losses
    assert len(resumed) == 6
    for i, (a, b) in enumerate(zip(straight_log.losses, resumed)):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-7), f"iteration {i + 1}: {a} vs {b}"
    assert straight_log.lrs == pytest.approx(first_log.lrs + second_log.lrs)
    for which in ("model", "ema"):
        a = weights(straight.model if which == "model" else straight.ema.module)
        b = weights(second.model if which == "model" else second.ema.module)
        worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        assert worst < 1e-6, f"{which} weights differ by {worst}"
    assert straight.ema.updates == second.ema.updates == 6
    # the raw and the averaged weights really are different things
    assert any(not torch.equal(v, straight.ema.module.state_dict()[k])
               for k, v in straight.model.state_dict().items() if v.dtype.is_floating_point)
