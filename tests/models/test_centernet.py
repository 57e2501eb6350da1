"""CenterNet: Gaussian radii and heatmap targets on tiny maps, the 3x3 peak decoding, the neck's shape and
bilinear start, and a step on an image without objects (overfitting: test_overfit.py; export parity:
tests/export/test_export.py)."""
import math

import pytest
import torch
import torch.nn.functional as F

from detframe.models import build_detector
from detframe.models.heads.centernet_head import CenterNetOutputs, draw_heatmap, gaussian_radius
from detframe.models.necks.ct_resnet import CTResNetNeck
from detframe.structures import Instances

from ..conftest import compose
from .test_detectors import empty, make_batch


def head(**overrides):
    cfg = compose(["model=centernet_r18", *(f"model.head.{k}={v}" for k, v in overrides.items())])
    return build_detector(cfg.model).head


def test_gaussian_radius_is_the_smallest_of_cornernets_three_cases():
    # h = w = 10, m = 0.7. Case 1: (20 + sqrt(400 - 4 x 100 x 0.3 / 1.7)) / 2 = 19.0751;
    # case 2: (40 + sqrt(1600 - 16 x 30)) / 2 = 36.7332; case 3: (-28 + sqrt(784 + 4 x 2.8 x 30)) / 2.
    r = gaussian_radius(torch.tensor([10.0, 4.0]), torch.tensor([10.0, 4.0]), 0.7)
    assert r[0].item() == pytest.approx((-28 + math.sqrt(1120)) / 2, abs=1e-5)  # 2.73320
    assert r[1].item() == pytest.approx((-11.2 + math.sqrt(179.2)) / 2, abs=1e-5)  # 1.09329: radius 1
    assert gaussian_radius(torch.tensor([0.0]), torch.tensor([0.0])).item() == 0.0


def test_heatmap_is_a_gaussian_of_sigma_diameter_over_six_with_the_max_where_objects_overlap():
    centres = torch.tensor([[2, 2], [3, 2], [0, 0]])
    heatmap = draw_heatmap(centres, torch.tensor([1, 1, 0]), torch.tensor([0, 0, 1]), 2, (4, 5))
    # radius 1: sigma 0.5, exp(-d^2 / 0.5): 1 at the centre, e^-2 beside it, e^-4 on the diagonal, 0 beyond
    e2, e4 = math.exp(-2), math.exp(-4)
    expected = torch.tensor([[0, 0, 0, 0, 0],
                             [0, e4, e2, e2, e4],
                             [0, e2, 1, 1, e2],
                             [0, e4, e2, e2, e4]])
    torch.testing.assert_close(heatmap[0], expected.float())
    assert heatmap[1, 0, 0] == 1 and heatmap[1].sum() == 1  # radius 0: the centre alone


def test_targets_peak_size_and_offset_at_the_integer_centre_and_ignored_boxes_left_out():
    h = head()
    boxes = torch.tensor([[9.0, 10.0, 27.0, 26.0], [40.0, 40.0, 60.0, 60.0]])
    gt = Instances(boxes, torch.tensor([2, 1]), torch.tensor([False, True]))
    heatmap, box_target, mask = h.targets([gt], (16, 16), (4.0, 4.0))
    # map box (2.25, 2.5, 6.75, 6.5): centre (4.5, 4.5) -> cell (4, 4), size 4.5 x 4, offset 0.5
    assert mask.nonzero().tolist() == [[0, 4, 4]]
    torch.testing.assert_close(box_target[0, :, 4, 4], torch.tensor([4.5, 4.0, 0.5, 0.5]))
    assert heatmap[0, 2, 4, 4] == 1 and heatmap.eq(1).sum() == 1
    assert heatmap[0, 1].sum() == 0  # the ignored object draws nothing


def outputs_with_peaks(heat: torch.Tensor) -> CenterNetOutputs:
    """Outputs whose heatmap probabilities are `heat` [1, C, h, w]; every box 2 x 3 map pixels, offset
    (0.25, 0.5)."""
    b, _, hh, ww = heat.shape
    wh = torch.tensor([2.0, 3.0]).view(1, 2, 1, 1).expand(b, 2, hh, ww)
    offset = torch.tensor([0.25, 0.5]).view(1, 2, 1, 1).expand(b, 2, hh, ww)
    return CenterNetOutputs(torch.logit(heat), wh, offset)


def test_decode_keeps_3x3_peaks_and_the_topk_and_scales_boxes_by_the_stride():
    heat = torch.full((1, 2, 4, 6), 0.05)
    heat[0, 0, 1, 2] = 0.9  # a peak ...
    heat[0, 0, 1, 3] = 0.8  # ... and its neighbour, not a peak
    heat[0, 1, 1, 3] = 0.7  # another class at the same place: a peak of its own channel
    heat[0, 0, 3, 5] = 0.6
    h = head(topk_candidates=2)
    boxes, scores = h.decode(outputs_with_peaks(heat), (16, 24), candidates=False)
    assert boxes.shape == (1, 24, 4) and scores.shape == (1, 24, 2)
    peaks = {(p, c): round(scores[0, p, c].item(), 4) for _, p, c in (scores > 0.06).nonzero().tolist()}
    assert peaks == {(1 * 6 + 2, 0): 0.9, (1 * 6 + 3, 1): 0.7, (3 * 6 + 5, 0): 0.6}
    # stride 4: centre ((2 + 0.25) x 4, (1 + 0.5) x 4) = (9, 6), size 8 x 12
    torch.testing.assert_close(boxes[0, 1 * 6 + 2], torch.tensor([5.0, 0.0, 13.0, 12.0]))
    _, top = h.decode(outputs_with_peaks(heat), (16, 24), candidates=True)
    assert sorted(top[top > 0].tolist()) == pytest.approx([0.7, 0.9])


def test_predict_is_the_decoded_peaks_best_first_in_original_pixels():
    h = head(topk_candidates=2)
    heat = torch.full((1, 2, 4, 6), 0.05)
    heat[0, 0, 1, 2], heat[0, 1, 3, 3] = 0.6, 0.9
    batch = make_batch(16, [empty()])  # 16 px input whose original is 32 high: y scale 0.5 (make_batch)
    batch.images = torch.zeros((1, 3, 16, 24), dtype=torch.uint8)
    batch.image_sizes, batch.orig_sizes, batch.scales = [(16, 24)], [(32, 24)], [(1.0, 0.5)]
    (det,) = h.predict(outputs_with_peaks(heat), batch)
    assert det.labels.tolist() == [1, 0] and det.scores.tolist() == pytest.approx([0.9, 0.6])
    # class 0's box (5, 0, 13, 12) in input pixels, y / 0.5 in the original
    torch.testing.assert_close(det.boxes[1], torch.tensor([5.0, 0.0, 13.0, 24.0]))


def test_neck_upsamples_c5_to_stride_4_starting_as_bilinear_interpolation():
    neck = CTResNetNeck([128, 512], channels=[8, 8, 4])
    assert neck(list(torch.zeros(1, 512, 5, 5).split([512], 1)))[0].shape == (1, 4, 40, 40)
    deconv = neck.stages[0][3]
    x = torch.rand(1, 8, 4, 4)
    interior = deconv(x)[..., 1:-1, 1:-1]  # bilinear x2 (align_corners=False) away from the border
    torch.testing.assert_close(interior, F.interpolate(x, scale_factor=2, mode="bilinear")[..., 1:-1, 1:-1])


def test_step_on_images_without_objects_gives_finite_losses():
    torch.manual_seed(0)
    model = build_detector(compose(["model=centernet_r18"]).model)
    gt = Instances(torch.tensor([[8.0, 8.0, 40.0, 50.0]]), torch.tensor([0]), torch.tensor([False]))
    losses = model.loss(make_batch(64, [empty(), empty()]))
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_wh"].item() == 0.0
    losses = model.loss(make_batch(64, [empty(), gt]))
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_wh"].item() > 0
    sum(losses.values()).backward()
