"""YOLOX's head, coder and IoU loss, and the L1 term that PipelineSwitchHook switches on for the last epochs
(also after a resume)."""
import pytest
import torch

from detframe.data.samplers import TrainBatchSampler
from detframe.engine import PipelineSwitchHook
from detframe.errors import ConfigError
from detframe.models import build_detector
from detframe.models.coders import YOLOXCoder
from detframe.models.heads.yolox_head import pad_targets
from detframe.models.losses import IoULoss
from detframe.structures import Instances

from ..conftest import compose


def instances(boxes, labels):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    ignore = torch.zeros(len(labels), dtype=torch.bool)
    return Instances(boxes, torch.tensor(labels, dtype=torch.long), ignore)


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return build_detector(compose(["model=yolox_nano"]).model)


def test_an_image_without_objects_gives_finite_losses_and_no_box_loss(nano):
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    targets = [instances([], []), instances([[4, 8, 40, 60]], [2])]
    nano.head.use_l1 = True
    try:
        losses = nano.head.loss(nano(images), targets, images.shape[-2:])
        assert set(losses) == {"loss_cls", "loss_box", "loss_obj", "loss_l1"}
        assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box"] > 0
        losses = nano.head.loss(nano(images[:1]), targets[:1], images.shape[-2:])
    finally:
        nano.head.use_l1 = False
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_box"] == losses["loss_cls"] == losses["loss_l1"] == 0 and losses["loss_obj"] > 0
    sum(losses.values()).backward()


def test_l1_is_zero_until_switched_on(nano):
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    targets = [instances([[4, 8, 40, 60]], [0])]
    assert nano.head.loss(nano(images), targets, images.shape[-2:])["loss_l1"] == 0
    nano.head.use_l1 = True
    try:
        assert nano.head.loss(nano(images), targets, images.shape[-2:])["loss_l1"] > 0
    finally:
        nano.head.use_l1 = False


def test_biases_start_at_the_prior_probability(nano):
    for conv in (*nano.head.cls_preds, *nano.head.obj_preds):
        torch.testing.assert_close(torch.sigmoid(conv.bias), torch.full_like(conv.bias, 0.01))


def test_coder_round_trip_and_yolox_parametrisation():
    coder = YOLOXCoder()
    points, strides = torch.tensor([[16.0, 8.0]]), torch.tensor([8.0])
    boxes = torch.tensor([[10.0, 4.0, 30.0, 36.0]])
    deltas = coder.encode(points, strides, boxes)
    # centre (20, 20) = point + (0.5, 1.5) strides; size 20 x 32 = exp(log 2.5, log 4) strides
    torch.testing.assert_close(deltas, torch.tensor([[0.5, 1.5, 2.5, 4.0]]).log().where(
        torch.tensor([[False, False, True, True]]), torch.tensor([[0.5, 1.5, 0.0, 0.0]])))
    torch.testing.assert_close(coder.decode(points, strides, deltas), boxes)


def test_iou_loss_is_one_minus_iou_squared():
    loss = IoULoss(reduction="none")
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0]])
    torch.testing.assert_close(loss(a, b), torch.tensor([0.0, 0.75, 1.0]))


def test_pad_targets_marks_the_padding_rows():
    boxes, labels, valid, ignore = pad_targets([instances([[0, 0, 1, 1]] * 2, [1, 2]), instances([], [])],
                                               torch.device("cpu"))
    assert boxes.shape == (2, 2, 4) and labels.tolist() == [[1, 2], [0, 0]]
    assert valid.tolist() == [[True, True], [False, False]] and not ignore.any()
    boxes, _, valid, _ = pad_targets([instances([], [])], torch.device("cpu"))
    assert boxes.shape == (1, 1, 4) and not valid.any()  # a row to gather from


class Loader:
    """What PipelineSwitchHook needs of a train loader: a batch sampler to hand the skipped names."""

    def __init__(self):
        self.batch_sampler = TrainBatchSampler(4, 2, torch.Generator())


class FakeRunner:
    def __init__(self, model, max_epochs, epoch=0):
        self.model, self.train_loader, self.max_epochs, self.epoch = model, Loader(), max_epochs, epoch


def test_pipeline_switch_turns_l1_on_at_the_switch_epoch_and_after_a_resume(nano):
    hook = PipelineSwitchHook(num_last_epochs=2, disable=[], enable=["use_l1"])
    runner = FakeRunner(nano, max_epochs=5)
    hook.before_train(runner)
    seen = []
    for runner.epoch in range(5):
        hook.before_epoch(runner)
        seen.append(nano.head.use_l1)
    assert seen == [False, False, False, True, True]
    # A resumed run: fresh model (built with use_l1 off) and hook, starting at epoch 4 of 5.
    torch.manual_seed(0)
    resumed = build_detector(compose(["model=yolox_nano"]).model)
    hook = PipelineSwitchHook(num_last_epochs=2, disable=[], enable=["use_l1"])
    runner = FakeRunner(resumed, max_epochs=5, epoch=4)
    hook.before_train(runner)
    hook.before_epoch(runner)
    assert resumed.head.use_l1
    nano.head.use_l1 = False


def test_pipeline_switch_refuses_a_flag_no_module_has(nano):
    with pytest.raises(ConfigError, match="no module of the model has an attribute 'use_l2'"):
        PipelineSwitchHook(disable=[], enable=["use_l2"]).before_train(FakeRunner(nano, 5))
