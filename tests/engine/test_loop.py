"""The optimizer step: accumulation, clipping, mixed precision, non-finite losses, fine-tuning."""
import logging
import math

import pytest
import torch

from detframe.engine import NonFiniteLossError, load_checkpoint
from detframe.engine.state import load_weights
from detframe.models import build_detector

from ..conftest import compose
from .helpers import make_runner, weights

SMALL = ["pipeline.size=96", "hooks.checkpoint=null"]


def test_accumulation_steps_once_per_group(tmp_path, tiny_shapes):
    # 8 images, batch 2 -> 4 batches an epoch; accumulate 3 -> groups of 3 and 1: 2 iterations per epoch
    runner, log = make_runner(tmp_path, tiny_shapes, *SMALL, "train.accumulate=3", "train.max_epochs=1")
    runner.train()
    assert runner.iters_per_epoch == 2 and runner.iter == 2 and log.steps == [2, 3]  # after batches 3 and 4
    assert runner.total_batch_size == 6 and len(log.losses) == 2


def test_clipping_bounds_the_update(tmp_path, tiny_shapes):
    lr, clip = 0.5, 1e-3
    runner, _ = make_runner(tmp_path, tiny_shapes, *SMALL, f"train.clip_grad_norm={clip}",
                            "train.max_iters=1", f"optimizer.lr={lr}", "optimizer.momentum=0",
                            "optimizer.weight_decay=0", "scheduler.warmup_iters=0")
    before = weights(runner.model)
    runner.train()
    after = weights(runner.model)
    update = math.sqrt(sum(((after[k] - before[k]).double() ** 2).sum().item() for k in before
                           if before[k].dtype.is_floating_point and "running" not in k))
    assert runner.grad_norm > 100 * clip  # the raw gradient was far larger; what was applied is clipped
    assert update == pytest.approx(lr * clip, rel=1e-3)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_step_and_checkpoint(tmp_path, tiny_shapes, amp):
    # nonfinite=skip: on this CPU (torch 2.15, oneDNN bf16) the bf16 backward of this very step sporadically
    # gives a NaN gradient (2 of 4 runs of tests/engine, never when run alone; same inputs, same finite
    # losses). This test is about autocast and the checkpoint, not about that kernel.
    runner, log = make_runner(tmp_path, tiny_shapes, "pipeline.size=96", f"runtime.amp={amp}",
                              "train.max_iters=1", "runtime.channels_last=true",
                              "hooks.checkpoint.save_best=null", "train.val_interval=0",
                              "train.nonfinite=skip")
    seen = []
    runner.model.head.register_forward_hook(lambda m, i, out: seen.append(out.cls_logits.dtype))
    runner.train()
    assert seen == [torch.bfloat16 if amp == "bf16" else torch.float16]
    assert all(math.isfinite(v) for v in log.losses[0].values())
    state = load_checkpoint(runner.ckpt_dir / "last.pt")
    assert (state["scaler"] is not None) == (amp == "fp16")


def test_non_finite_loss_stops_naming_the_iteration_and_terms(tmp_path, tiny_shapes):
    runner, _ = make_runner(tmp_path, tiny_shapes, *SMALL, "train.max_iters=3")
    poison_loss(runner, at_call=2)
    with pytest.raises(NonFiniteLossError,
                       match=r"epoch 1 iteration 2 \(batch 2 of the epoch\): non-finite loss or "
                             r"gradient: loss_cls=nan, loss_box=[\d.]+, loss=nan"):
        runner.train()


def test_non_finite_loss_skip_policy_drops_the_step(tmp_path, tiny_shapes, caplog):
    runner, log = make_runner(tmp_path, tiny_shapes, *SMALL, "train.max_iters=3", "train.nonfinite=skip")
    log.keep_params = True
    poison_loss(runner, at_call=2)
    with caplog.at_level(logging.WARNING, logger="detframe"):
        runner.train()
    assert runner.iter == 3 and runner.skipped == 1 and "step skipped (1 so far)" in caplog.text
    params = [dict(p) for p in log.params]  # parameters (not BatchNorm statistics) after each iteration
    assert all(torch.equal(params[0][k], params[1][k]) for k in params[0])  # iteration 2 changed nothing
    assert not all(torch.equal(params[1][k], params[2][k]) for k in params[0])


def poison_loss(runner, at_call):
    loss, calls = runner.model.loss, []

    def poisoned(batch):
        calls.append(1)
        out = loss(batch)
        if len(calls) == at_call:
            out["loss_cls"] = out["loss_cls"] * float("nan")
        return out

    runner.train_module = poisoned


def test_load_from_skips_mismatched_shapes_and_prefers_ema(tmp_path, tiny_shapes, caplog):
    source, _ = make_runner(tmp_path, tiny_shapes, *SMALL, "train.max_iters=1", "hooks.ema={type: EMAHook}",
                            "hooks.checkpoint={type: CheckpointHook, save_best: null}", name="source")
    source.train()
    # a model for two classes instead of four: the class predictors do not fit
    cfg = compose(["data.class_names=[cat,dog]"])
    target = build_detector(cfg.model)
    with caplog.at_level(logging.INFO, logger="detframe"):
        match = load_weights(target, source.ckpt_dir / "last.pt", cfg.model, tmp_path / "load_from.txt")
    assert len(match.reshaped) == 12 and not match.missing and not match.unexpected
    assert "(12 of another shape, 0 missing)" in caplog.text and "load_from.txt" in caplog.text
    assert "shape       head.cls_convs.0.1.weight" in (tmp_path / "load_from.txt").read_text()
    assert "head.cls_convs" not in caplog.text  # the list per tensor goes to the file, not the terminal
    ema = source.ema.module.state_dict()
    key = "backbone.stages.0.0.0.weight"
    assert torch.equal(target.state_dict()[key], ema[key])
    assert not torch.equal(ema[key], source.model.state_dict()[key])


def test_tensorboard_gets_every_term_lr_grad_norm_times_metrics_and_images(tmp_path, tiny_shapes):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runner, _ = make_runner(tmp_path, tiny_shapes, "pipeline.size=96", "train.max_iters=2",
                            "train.val_interval=1", "hooks.checkpoint=null", "hooks.logger.images=2",
                            "hooks.logger.image_score_threshold=0.0")
    runner.train()
    events = EventAccumulator(str(runner.work_dir / "tb"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_cls", "train/loss_box", "train/loss", "train/lr", "train/grad_norm", "time/data",
            "time/iter", "train/skipped_steps", "val/coco/AP", "val/coco/AP50"} <= scalars
    assert [s.step for s in events.Scalars("train/loss")] == [1, 2]
    images = events.Images("val_images/0")
    assert len(images) == 1 and images[0].width > 0
    assert set(events.Tags()["images"]) == {"val_images/0", "val_images/1"}
