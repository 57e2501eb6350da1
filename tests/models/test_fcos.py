"""FCOS's parts on hand-made inputs: points, the distance coder, the assigner's three rules, the
centre-ness target, and a training step on images without objects."""
import math

import torch

from detframe.models import build_detector
from detframe.models.assigners import IGNORED, NEGATIVE, FCOSAssigner
from detframe.models.coders import DistancePointCoder
from detframe.models.heads.fcos_head import centerness_target
from detframe.models.priors import PointGenerator
from detframe.structures import Instances

from ..conftest import compose
from .test_detectors import empty, make_batch


def test_points_and_strides_level_by_level():
    gen = PointGenerator(strides=[8, 16], offset=0.5)
    points = gen([(2, 3), (1, 2)], (16, 24))
    # level 0 (stride 8), rows y = 4, 12, columns x = 4, 12, 20; level 1 (stride 16): y = 8, x = 8, 24
    expected = [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12], [8, 8], [24, 8]]
    assert points.tolist() == expected
    assert gen.strides_of([(2, 3), (1, 2)]).tolist() == [8] * 6 + [16] * 2
    assert PointGenerator(strides=[8], offset=0.0)([(1, 2)], (8, 16)).tolist() == [[0, 0], [8, 0]]


def test_distance_coder_known_values_and_round_trip():
    coder = DistancePointCoder(normalize_by_stride=True)
    points, strides = torch.tensor([[20.0, 30.0]]), torch.tensor([8.0])
    box = torch.tensor([[4.0, 10.0, 60.0, 34.0]])
    # l = 20 - 4 = 16, t = 30 - 10 = 20, r = 60 - 20 = 40, b = 34 - 30 = 4; in strides of 8
    torch.testing.assert_close(coder.encode(points, strides, box), torch.tensor([[2.0, 2.5, 5.0, 0.5]]))
    torch.testing.assert_close(coder.decode(points, strides, coder.encode(points, strides, box)), box)
    raw = DistancePointCoder(normalize_by_stride=False)
    torch.testing.assert_close(raw.encode(points, strides, box), torch.tensor([[16.0, 20.0, 40.0, 4.0]]))


def assign(center_sampling=True, ignore=None):
    # Points at stride 8: p0 (20, 20), p1 (40, 40), p2 (100, 100); at stride 16: p3 (20, 20),
    # p4 (100, 100), p5 (120, 120). Ranges: stride 8 regresses m in (0, 64], stride 16 m > 64.
    points = torch.tensor([[20.0, 20], [40, 40], [100, 100], [20, 20], [100, 100], [120, 120]])
    strides = torch.tensor([8.0, 8, 8, 16, 16, 16])
    # A: 40 x 40 around (20, 20); B: 140 x 140 around (130, 130); C: 20 x 20 around (20, 20), inside A
    gt = torch.tensor([[0.0, 0, 40, 40], [60, 60, 200, 200], [10, 10, 30, 30]])
    assigner = FCOSAssigner(regress_ranges=[[0, 64], [64, math.inf]], center_sampling=center_sampling,
                            center_radius=1.5)
    return assigner(points, strides, gt, ignore).gt_index.tolist()


def test_assigner_rules():
    # p0: inside A (m = 20) and C (m = 10), both in (0, 64]: the smaller, C (area 400 < 1600).
    # p1: on A's corner, distance 0 to two sides: not strictly inside anything.
    # p2: inside B but 30 px from its centre > 1.5 x 8 (and m = 100 is not a stride-8 size).
    # p3: inside A and C, but m = 20 is not in stride 16's (64, inf).
    # p4: inside B, m = 100 fits stride 16, but 30 px from the centre > 1.5 x 16 = 24.
    # p5: inside B, 10 px from the centre < 24, m = 80 in (64, inf): B.
    assert assign() == [2, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE, 1]
    # Without centre sampling, any point inside the box qualifies: p4 becomes B's.
    assert assign(center_sampling=False) == [2, NEGATIVE, NEGATIVE, NEGATIVE, 1, 1]


def test_assigner_ignored_objects_and_empty_images():
    assert assign(ignore=torch.tensor([False, True, False])) == [2, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE,
                                                                 IGNORED]
    assigner = FCOSAssigner()
    points, strides = torch.zeros(5, 2), torch.tensor([8.0, 16, 32, 64, 128])
    assert assigner(points, strides, torch.zeros(0, 4)).gt_index.tolist() == [NEGATIVE] * 5


def test_centerness_target():
    # (l, t, r, b) = (1, 2, 3, 2): sqrt(1/3 x 2/2) = sqrt(1/3); the centre (2, 2, 2, 2) gives 1
    got = centerness_target(torch.tensor([[1.0, 2.0, 3.0, 2.0], [2.0, 2.0, 2.0, 2.0]]))
    torch.testing.assert_close(got, torch.tensor([math.sqrt(1 / 3), 1.0]))


def small_fcos():
    return build_detector(compose(["model=fcos_r18_fpn", "model.neck.out_channels=64",
                                   "model.head.feat_channels=64", "model.head.stacked_convs=1"]).model)


def test_step_on_images_without_boxes_is_finite_with_zero_box_losses():
    torch.manual_seed(0)
    model = small_fcos()
    losses = model.loss(make_batch(128, [empty(), empty()]))
    assert set(losses) == {"loss_cls", "loss_box", "loss_centerness"}
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"].item() > 0
    assert losses["loss_box"].item() == 0.0 and losses["loss_centerness"].item() == 0.0
    sum(losses.values()).backward()


def test_step_with_an_object_trains_every_branch():
    torch.manual_seed(0)
    model = small_fcos()
    gt = Instances(torch.tensor([[20.0, 30.0, 70.0, 90.0]]), torch.tensor([1]), torch.tensor([False]))
    losses = model.loss(make_batch(128, [gt, empty()]))
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    head = model.head
    for layer in (head.cls_logits, head.bbox_reg, head.centerness):
        assert layer.weight.grad.abs().sum() > 0
    assert head.scales.grad is not None


def test_predict_maps_boxes_to_original_size():
    torch.manual_seed(0)
    model = small_fcos().eval()
    torch.nn.init.constant_(model.head.cls_logits.bias, 2.0)  # confident everywhere: many detections
    dets = model.predict(make_batch(128, [empty(), empty()]))
    assert len(dets) == 2
    for d in dets:
        assert 0 < len(d.scores) == len(d.labels) <= 100
        # original is 256 high x 128 wide; scale (0.5, 1.0) -> x in [0, 256], y in [0, 128]
        assert d.boxes[:, 0::2].max() <= 256 and d.boxes[:, 1::2].max() <= 128
        assert (d.labels >= 0).all() and (d.labels < 4).all()
