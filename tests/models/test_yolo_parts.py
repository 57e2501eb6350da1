"""YOLOv3's parts against the paper's definitions: priors, the coder, the assigner, Darknet weights files,
and the other backbones' options (ResNet freezing, RetinaNet's prior-probability bias)."""
import math

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detframe.models.assigners.max_iou import IGNORED, NEGATIVE
from detframe.models.assigners.yolo import YOLOAssigner
from detframe.models.backbones.darknet import Darknet, read_darknet_weights
from detframe.models.backbones.resnet import ResNet
from detframe.models.coders.yolo import YOLOCoder
from detframe.models.priors.yolo import YOLOPriorGenerator

GEN = YOLOPriorGenerator(strides=[8, 16], base_sizes=[[[10, 13], [16, 30]], [[60, 40], [100, 120]]])
SHAPES = [(4, 4), (2, 2)]  # a 32x32 input


def test_priors_sit_at_cell_centres_with_their_shapes():
    priors, strides = GEN(SHAPES, (32, 32)), GEN.strides_of(SHAPES)
    assert priors.shape == (4 * 4 * 2 + 2 * 2 * 2, 4) and strides.tolist() == [8.0] * 32 + [16.0] * 8
    # level 0, row 1, column 2, anchor 1: centre (2.5 * 8, 1.5 * 8), size 16x30
    torch.testing.assert_close(priors[(1 * 4 + 2) * 2 + 1],
                               torch.tensor([20 - 8, 12 - 15, 20 + 8, 12 + 15.0]))


def test_coder_inverts_the_papers_parameterisation():
    """bx = sigmoid(tx) + cx, bw = pw exp(tw) (in pixels: times the stride for the centre)."""
    coder = YOLOCoder()
    priors, strides = GEN(SHAPES, (32, 32)), GEN.strides_of(SHAPES)
    raw = torch.randn(len(priors), 4, generator=torch.Generator().manual_seed(0))
    boxes = coder.decode(priors, raw, strides)
    cell_x = torch.floor((priors[:, 0] + priors[:, 2]) / 2 / strides)
    expected_cx = (torch.sigmoid(raw[:, 0]) + cell_x) * strides
    torch.testing.assert_close((boxes[:, 0] + boxes[:, 2]) / 2, expected_cx)
    torch.testing.assert_close(boxes[:, 2] - boxes[:, 0], (priors[:, 2] - priors[:, 0]) * raw[:, 2].exp())
    target = coder.encode(priors, boxes, strides)
    torch.testing.assert_close(target[:, :2], torch.sigmoid(raw[:, :2]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(target[:, 2:], raw[:, 2:], atol=1e-5, rtol=1e-5)


def test_assigner_picks_the_best_shape_in_the_centre_cell():
    priors, strides = GEN(SHAPES, (32, 32)), GEN.strides_of(SHAPES)
    # centre (13, 21): level-0 cell (row 2, col 1); 15x28 fits anchor 16x30 best;
    # 90x110 fits level 1's 100x120
    gt = torch.tensor([[13 - 7.5, 21 - 14, 13 + 7.5, 21 + 14], [13 - 45, 21 - 55, 13 + 45, 21 + 55.0]])
    result = YOLOAssigner(ignore_iou=0.5)(priors, strides, gt)
    positive = torch.where(result.gt_index >= 0)[0].tolist()
    assert positive == [(2 * 4 + 1) * 2 + 1, 32 + (1 * 2 + 0) * 2 + 1]
    assert result.gt_index[positive].tolist() == [0, 1]
    # A prior that overlaps an object by > 0.5 without being its one prior is ignored, not negative.
    iou = box_iou(gt, priors).max(0).values
    others = torch.ones(len(priors), dtype=torch.bool)
    others[positive] = False
    assert (result.gt_index[others & (iou > 0.5)] == IGNORED).all()
    assert (result.gt_index[others & (iou <= 0.5)] == NEGATIVE).all()


def test_ignored_objects_make_their_prior_ignored():
    priors, strides = GEN(SHAPES, (32, 32)), GEN.strides_of(SHAPES)
    gt = torch.tensor([[5.0, 7.0, 20.0, 35.0]])
    result = YOLOAssigner()(priors, strides, gt, torch.tensor([True]))
    assert not (result.gt_index >= 0).any() and (result.gt_index == IGNORED).any()


def write_darknet_file(path, values: np.ndarray, major: int = 0, minor: int = 2) -> None:
    with open(path, "wb") as f:
        np.array([major, minor, 0], dtype=np.int32).tofile(f)
        np.array([32013312], dtype=np.int64 if major * 10 + minor >= 2 else np.int32).tofile(f)
        values.astype(np.float32).tofile(f)


@pytest.mark.parametrize("minor", [1, 2])  # the images-seen counter is int32 before format 0.2, int64 after
def test_darknet_weights_are_read_in_darknets_order(tmp_path, minor):
    """Per conv layer: BN bias, scale, mean, variance, then the kernel (darknet's parser.c)."""
    net = Darknet(stage_blocks=[1, 1, 1, 1, 1], widen_factor=0.125, out_strides=[4])
    convs = net.convs_in_darknet_order()
    total = sum(c.bn.bias.numel() * 4 + c.conv.weight.numel() for c in convs)
    values = np.arange(total, dtype=np.float32)
    write_darknet_file(tmp_path / "w.weights", values, minor=minor)
    read_darknet_weights(convs, tmp_path / "w.weights", "test")
    second = convs[1]
    start = sum(c.bn.bias.numel() * 4 + c.conv.weight.numel() for c in convs[:1])
    n = second.bn.bias.numel()
    assert second.bn.bias[0].item() == start and second.bn.weight[0].item() == start + n
    assert second.bn.running_var[-1].item() == start + 4 * n - 1
    assert second.conv.weight.flatten()[0].item() == start + 4 * n
    assert convs[-1].conv.weight.flatten()[-1].item() == total - 1


def test_short_darknet_file_is_a_clear_error(tmp_path):
    from detframe.errors import ConfigError

    net = Darknet(stage_blocks=[1, 1, 1, 1, 1], widen_factor=0.125, out_strides=[4])
    first = net.convs_in_darknet_order()[0]
    write_darknet_file(tmp_path / "w.weights",
                       np.zeros(first.bn.bias.numel() * 4 + first.conv.weight.numel() + 10))
    with pytest.raises(ConfigError, match=r"ends at conv layer 2 of \d+"):
        read_darknet_weights(net.convs_in_darknet_order(), tmp_path / "w.weights",
                             "model.backbone.pretrained")


def test_resnet_frozen_stages_and_frozen_bn():
    from torchvision.ops import FrozenBatchNorm2d

    net = ResNet(depth=18, out_strides=[8, 16, 32], frozen_stages=1, frozen_bn=True).train()
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("conv1", "bn1", "layer1")) for n in frozen)
    assert all(p.requires_grad for n, p in net.named_parameters()
               if n.startswith(("layer2", "layer3", "layer4")))
    assert any(isinstance(m, FrozenBatchNorm2d) for m in net.modules())
    outs = net(torch.zeros(1, 3, 64, 64))
    assert ([o.shape[1:] for o in (outs.values() if isinstance(outs, dict) else outs)]
            == [(128, 8, 8), (256, 4, 4), (512, 2, 2)])


def test_resnet_loads_a_local_torchvision_file(tmp_path):
    from torchvision.models import resnet18

    reference = resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    net = ResNet(depth=18, out_strides=[8, 16, 32], pretrained=str(tmp_path / "resnet18.pth"))
    torch.testing.assert_close(net.state_dict()["layer3.0.conv1.weight"],
                               reference.state_dict()["layer3.0.conv1.weight"])


def test_retina_head_starts_at_the_prior_probability():
    from detframe.models import build_detector
    from tests.conftest import compose

    model = build_detector(compose(["model=retinanet_r18_fpn", "model.head.prior_prob=0.01"]).model)
    assert torch.allclose(model.head.cls_logits.bias, torch.tensor(-math.log(99.0)))
