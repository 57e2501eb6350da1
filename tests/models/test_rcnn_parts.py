"""The R-CNN parts on hand-made inputs with known answers: the sampler, the RPN's proposal filtering, the
FPN level mapping, the RoI head's targets and the cascade's stage targets."""
import math

import pytest
import torch
from torchvision.ops import roi_pool

from detframe.errors import ConfigError
from detframe.models.assigners import IGNORED, NEGATIVE, MaxIoUAssigner
from detframe.models.coders import DeltaXYWHCoder
from detframe.models.heads import RPNHead
from detframe.models.heads.base import DenseOutputs
from detframe.models.losses import BCEWithLogitsLoss, SmoothL1Loss
from detframe.models.roi_heads import CascadeRoIHead, MultiScaleRoIAlign, RoIPool, fpn_levels, sample_rois
from detframe.models.samplers import RandomSampler
from detframe.structures import Instances


def labels_of(pos: int, neg: int, ignored: int = 0) -> torch.Tensor:
    return torch.tensor([0] * pos + [NEGATIVE] * neg + [IGNORED] * ignored)


@pytest.mark.parametrize("pos,neg,expected", [(10, 100, (8, 24)), (3, 100, (3, 29)), (2, 5, (2, 5))])
def test_sampler_counts_and_fractions(pos, neg, expected):
    gt_index = labels_of(pos, neg, ignored=7)
    p, n = RandomSampler(32, 0.25)(gt_index)
    assert (len(p), len(n)) == expected
    assert (gt_index[p] >= 0).all() and (gt_index[n] == NEGATIVE).all()  # ignored ones never drawn
    assert len(set(p.tolist()) | set(n.tolist())) == len(p) + len(n)


def test_sampler_is_reproducible_under_a_seed():
    gt_index = labels_of(50, 500)
    draws = []
    for _ in range(2):
        torch.manual_seed(3)
        draws.append(RandomSampler(64, 0.5)(gt_index))
    assert all(torch.equal(a, b) for a, b in zip(*draws))
    assert not torch.equal(RandomSampler(64, 0.5)(gt_index)[1], draws[0][1])  # the stream moved on


class FixedAnchors:
    """Level 0: three anchors in a 1x3 grid; level 1: two in a 1x2 grid (one anchor per location)."""

    num_anchors = [1, 1]
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30],  # A, B (IoU 0.91 with A), C
                          [0, 0, 10, 10], [40, 40, 50, 50]], dtype=torch.float32)  # D (= A), E

    def __call__(self, feature_shapes, image_size, device=None):
        return self.boxes


def rpn(pre: int = 2, post: int = 10) -> RPNHead:
    return RPNHead([8, 8], FixedAnchors(), MaxIoUAssigner(0.7, 0.3), RandomSampler(256, 0.5),
                   DeltaXYWHCoder((1, 1, 1, 1)), BCEWithLogitsLoss(), SmoothL1Loss(1 / 9),
                   pre_nms_top_n={"train": pre, "test": pre}, post_nms_top_n={"train": post, "test": post})


def proposals(head: RPNHead, deltas: torch.Tensor) -> torch.Tensor:
    logits = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]).view(1, 5, 1)
    outputs = DenseOutputs(logits, deltas.view(1, 5, 4), [(1, 3), (1, 2)])
    return head.eval().proposals(outputs, [(64, 64)], (64, 64))[0]


def test_rpn_keeps_top_k_per_level_then_nms_within_each_level():
    # level 0 keeps its best two (A, B; C is cut), NMS removes B (A's level), keeps D (same box, level 1)
    got = proposals(rpn(pre=2), torch.zeros(5, 4))
    torch.testing.assert_close(got, FixedAnchors.boxes[[0, 3, 4]])
    torch.testing.assert_close(proposals(rpn(pre=2, post=2), torch.zeros(5, 4)), FixedAnchors.boxes[[0, 3]])


def test_rpn_drops_non_finite_and_small_proposals():
    deltas = torch.zeros(5, 4)
    deltas[0, 0] = float("nan")  # A, the best score, has a NaN box
    deltas[1, 2] = -30.0  # B becomes 10 * e^-30 pixels wide
    got = proposals(rpn(pre=2), deltas)
    torch.testing.assert_close(got, FixedAnchors.boxes[[2, 3, 4]])  # C moves up into level 0's top 2


def test_rpn_counts_need_train_and_test():
    with pytest.raises(ConfigError, match=r"RPNHead.pre_nms_top_n: expected \{train"):
        rpn(pre=0)


def test_fpn_level_mapping_follows_the_formula_and_clamps():
    sizes = torch.tensor([224.0, 112.0, 448.0, 56.0, 28.0, 1000.0, 223.0])
    rois = torch.stack([torch.zeros(7), torch.zeros(7), sizes, sizes], dim=1)
    # floor(4 + log2(s / 224)): P4, P3, P5, P2, P1 -> P2, P6 -> P5, just under 224 -> P3; as offsets from P2
    assert fpn_levels(rois, 2, 5).tolist() == [2, 1, 3, 0, 0, 3, 1]


def test_roi_pool_pools_each_roi_from_its_mapped_level():
    g = torch.Generator().manual_seed(0)
    features = [torch.randn(1, 2, 160 // s, 160 // s, generator=g) for s in (4, 8, 16, 32)]
    rois = [torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 150.0, 150.0]])]  # P2, and P3 (112 <= 150 < 224)
    for extractor, op in ((RoIPool(output_size=3), roi_pool), (MultiScaleRoIAlign(output_size=3), None)):
        out = extractor(features, rois)
        assert out.shape == (2, 2, 3, 3)
        if op is not None:
            indexed = torch.cat([torch.zeros(2, 1), rois[0]], dim=1)
            torch.testing.assert_close(out[0], op(features[0], indexed[:1], 3, 1 / 4)[0])
            torch.testing.assert_close(out[1], op(features[1], indexed[1:], 3, 1 / 8)[0])


def test_roi_targets_add_the_objects_and_label_background():
    gt = Instances(torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 30.0, 50.0, 50.0]]), torch.tensor([2, 0]),
                   torch.zeros(2, dtype=torch.bool))
    proposals = [torch.tensor([[1.0, 1.0, 11.0, 11.0], [60.0, 60.0, 70.0, 70.0]])]
    samples = sample_rois(proposals, [gt], MaxIoUAssigner(0.5, 0.5, match_low_quality=False),
                          RandomSampler(512, 0.25))
    rois = samples.rois[0]
    # positives first: the proposal overlapping object 0 (IoU 0.68) and both added objects
    by_roi = {tuple(r.tolist()): (int(label), b.tolist(), bool(g))
              for r, label, b, g in zip(rois, samples.labels, samples.gt_boxes, samples.is_gt)}
    assert by_roi[(1.0, 1.0, 11.0, 11.0)] == (3, [0.0, 0.0, 10.0, 10.0], False)  # class 2 -> softmax index 3
    assert by_roi[(0.0, 0.0, 10.0, 10.0)] == (3, [0.0, 0.0, 10.0, 10.0], True)
    assert by_roi[(30.0, 30.0, 50.0, 50.0)] == (1, [30.0, 30.0, 50.0, 50.0], True)
    assert by_roi[(60.0, 60.0, 70.0, 70.0)] == (0, [0.0, 0.0, 0.0, 0.0], False)  # background
    # regression target of the first with stds (0.1, 0.1, 0.2, 0.2): centre 1 px off a 10 px box
    target = DeltaXYWHCoder((0.1, 0.1, 0.2, 0.2)).encode(rois[:1] * 0 + torch.tensor([1.0, 1, 11, 11]),
                                                         torch.tensor([[0.0, 0, 10, 10]]))
    torch.testing.assert_close(target, torch.tensor([[-1.0, -1.0, 0.0, 0.0]]))


def test_roi_targets_of_an_image_without_objects_are_all_background():
    empty = Instances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool))
    samples = sample_rois([torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 3)], [empty], MaxIoUAssigner(0.5, 0.5),
                          RandomSampler(512, 0.25))
    assert samples.labels.tolist() == [0, 0, 0] and not samples.is_gt.any()


def test_cascade_stage_targets_rise_with_the_stage_iou():
    head = CascadeRoIHead(3, [4], MultiScaleRoIAlign(output_size=2), RandomSampler(512, 1.0),
                          None, None, fc_channels=8)
    assert [a.pos_iou for a in head.assigners] == [0.5, 0.6, 0.7]
    assert [c.stds for c in head.coders] == [(0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1),
                                             (0.033, 0.033, 0.067, 0.067)]
    gt = Instances(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), torch.tensor([1]),
                   torch.zeros(1, dtype=torch.bool))
    # IoU with the object: 0.55, 0.65, 0.75 (boxes cut from the right)
    proposals = [torch.tensor([[0.0, 0.0, 100.0 * iou, 100.0] for iou in (0.55, 0.65, 0.75)])]
    positives = [sample_rois(proposals, [gt], assigner, head.sampler).labels.gt(0).sum().item() - 1
                 for assigner in head.assigners]  # minus the added object itself
    assert positives == [3, 2, 1]
    assert math.isclose(sum(head.stage_weights), 1.75)
