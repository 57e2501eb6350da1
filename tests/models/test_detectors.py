from dataclasses import replace

import torch

from detframe.models import build_detector
from detframe.structures import Batch, Instances

from ..conftest import compose


def make_batch(size: int, targets: list[Instances]) -> Batch:
    n = len(targets)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    return Batch(images, targets, [(size, size)] * n, [(size * 2, size)] * n, list(range(n)),
                 [(0.5, 1.0)] * n, [(0.0, 0.0)] * n)


def empty() -> Instances:
    return Instances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool))


def test_ssd300_outputs_8732_priors_per_image():
    model = build_detector(compose(["model=ssd300_vgg16"]).model)
    out = model(torch.zeros(1, 3, 300, 300, dtype=torch.uint8))
    assert out.cls_logits.shape == (1, 8732, 5) and out.box_regression.shape == (1, 8732, 4)
    assert out.feature_shapes == [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]


def test_step_on_image_without_boxes_is_finite_with_zero_box_loss():
    torch.manual_seed(0)
    model = build_detector(compose(["model.backbone.arch=small"]).model)
    losses = model.loss(make_batch(128, [empty(), empty()]))  # BatchNorm needs 2 images at the 1x1 levels
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_box"].item() == 0.0
    sum(losses.values()).backward()


def test_loss_decreases_when_overfitting_one_image():
    torch.manual_seed(0)
    model = build_detector(compose(["model.backbone.arch=small"]).model)
    gt = Instances(torch.tensor([[20.0, 30.0, 70.0, 90.0]]), torch.tensor([2]), torch.tensor([False]))
    batch = make_batch(128, [gt, gt])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # 0.05 oscillated on one CPU
    first = None
    for _ in range(15):
        total = sum(model.loss(batch).values())
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.5 * first


def test_predict_maps_boxes_to_original_size():
    torch.manual_seed(0)
    model = build_detector(compose(["model.backbone.arch=small"]).model).eval()
    dets = model.predict(make_batch(128, [empty(), empty()]))
    assert len(dets) == 2
    for d in dets:
        assert d.boxes.shape[1] == 4 and len(d.scores) == len(d.labels) <= 300
        # original is 256 high x 128 wide; scale (0.5, 1.0) -> x in [0, 256], y in [0, 128]
        assert d.boxes[:, 0::2].max() <= 256 and d.boxes[:, 1::2].max() <= 128
        assert (d.labels >= 0).all() and (d.labels < 4).all()


def test_retinanet_narrow_group_norm_head_trains():
    """The raccoon variant: FPN and subnets at 128 channels, 2 convs each with GroupNorm(32)."""
    torch.manual_seed(0)
    cfg = compose(["model=retinanet_r18_fpn", "model.neck.out_channels=128", "model.head.feat_channels=128",
                   "model.head.stacked_convs=2", "model.head.norm=GN"])
    model = build_detector(cfg.model)
    norms = [m for m in model.head.cls_convs.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 2 and all(n.num_groups == 32 and n.num_channels == 128 for n in norms)
    assert all(m.bias is None for m in model.head.cls_convs.modules() if isinstance(m, torch.nn.Conv2d))
    gt = Instances(torch.tensor([[20.0, 30.0, 70.0, 90.0]]), torch.tensor([1]), torch.tensor([False]))
    losses = model.loss(make_batch(128, [gt, gt]))
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box"].item() > 0
    sum(losses.values()).backward()
    assert model.head.cls_convs[0][1].weight.grad.abs().sum() > 0


def test_channels_last_gives_the_same_losses_and_gradients():
    """runtime.channels_last (on by default) changes the memory layout, not the numbers."""
    torch.manual_seed(0)
    nchw = build_detector(compose(["model.backbone.arch=small"]).model)
    nhwc = build_detector(compose(["model.backbone.arch=small"]).model)
    nhwc.load_state_dict(nchw.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    gt = Instances(torch.tensor([[20.0, 30.0, 70.0, 90.0]]), torch.tensor([2]), torch.tensor([False]))
    batch = make_batch(128, [gt, gt])
    nhwc_batch = replace(batch, images=batch.images.contiguous(memory_format=torch.channels_last))
    a, b = nchw.loss(batch), nhwc.loss(nhwc_batch)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    sum(a.values()).backward()
    sum(b.values()).backward()
    for (name, p), q in zip(nchw.named_parameters(), nhwc.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5, msg=name)
