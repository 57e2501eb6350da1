"""The task-aligned assigner on hand-made inputs with known answers, batched against per image, and the
TALHead's losses on edge cases (no objects, plain distances, each classification loss)."""
import pytest
import torch

from detframe.models import build_detector
from detframe.models.assigners import IGNORED, NEGATIVE, TaskAlignedAssigner
from detframe.models.assigners.task_aligned import pairwise_iou
from detframe.structures import Instances

from ..conftest import compose

# Four points on a row at x = 5, 15, 25, 35 (y = 5), stride 10.
POINTS = torch.tensor([[5.0, 5.0], [15.0, 5.0], [25.0, 5.0], [35.0, 5.0]])
STRIDES = torch.full((4,), 10.0)


def assign(assigner, scores, pred_boxes, gt_boxes, gt_labels, valid=None, ignore=None):
    """One image: adds the batch dimension to every input."""
    m = len(gt_boxes)
    valid = torch.ones(m, dtype=torch.bool) if valid is None else valid
    ignore = torch.zeros(m, dtype=torch.bool) if ignore is None else ignore
    return assigner(scores[None], pred_boxes[None], POINTS, STRIDES, gt_boxes[None], gt_labels[None],
                    valid[None], ignore[None])


def test_pairwise_iou_matches_torchvision():
    from torchvision.ops import box_iou
    a, b = torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]]), torch.tensor([[0.0, 0, 10, 10], [0, 0, 5, 5]])
    assert torch.allclose(pairwise_iou(a[None], b[None])[0], box_iou(a, b))


def test_topk_by_alignment_and_soft_targets():
    # The object spans all four points; predicted boxes have IoU 1, 0.5, 0.25, 0 with it (x1 shrinks).
    gt = torch.tensor([[0.0, 0.0, 40.0, 10.0]])
    preds = torch.tensor([[0.0, 0, 40, 10], [0, 0, 20, 10], [0, 0, 10, 10], [50, 0, 60, 10]])
    scores = torch.tensor([[0.2], [0.9], [0.9], [0.9]])
    result = assign(TaskAlignedAssigner(topk=2, alpha=1.0, beta=1.0), scores, preds, gt, torch.tensor([0]))
    # t = s * u: 0.2, 0.45, 0.225, 0 -> the top two are points 1 and 2.
    assert result.labels[0].tolist() == [NEGATIVE, 0, 0, NEGATIVE]
    # Normalised so the best point's target is the best IoU among the positives (0.5): 0.5 and 0.25.
    assert torch.allclose(result.scores[0], torch.tensor([0.0, 0.5, 0.25, 0.0]))
    assert torch.equal(result.boxes[0, 1], gt[0]) and not result.boxes[0, 0].any()


def test_beta_weighs_the_iou():
    # Same inputs, beta 6: IoU dominates, point 0 (IoU 1, score 0.2) now wins over point 2.
    gt = torch.tensor([[0.0, 0.0, 40.0, 10.0]])
    preds = torch.tensor([[0.0, 0, 40, 10], [0, 0, 20, 10], [0, 0, 10, 10], [50, 0, 60, 10]])
    scores = torch.tensor([[0.2], [0.9], [0.9], [0.9]])
    result = assign(TaskAlignedAssigner(topk=2, alpha=1.0, beta=6.0), scores, preds, gt, torch.tensor([0]))
    assert result.labels[0].tolist() == [0, 0, NEGATIVE, NEGATIVE]
    assert result.scores[0, 0] == pytest.approx(1.0)
    assert result.scores[0, 1] == pytest.approx(0.9 * 0.5 ** 6 / 0.2)


def test_points_outside_the_box_and_padding_claim_nothing():
    gt = torch.tensor([[10.0, 0.0, 30.0, 10.0], [0.0, 0.0, 40.0, 10.0]])  # the second is padding
    preds = gt[0].expand(4, 4).clone()
    scores = torch.full((4, 2), 0.5)
    result = assign(TaskAlignedAssigner(topk=4), scores, preds, gt, torch.tensor([1, 0]),
                    valid=torch.tensor([True, False]))
    assert result.labels[0].tolist() == [NEGATIVE, 1, 1, NEGATIVE]


def test_a_point_claimed_twice_goes_to_the_higher_iou():
    gt = torch.tensor([[0.0, 0.0, 20.0, 10.0], [10.0, 0.0, 40.0, 10.0]])
    preds = torch.tensor([[0.0, 0, 10, 10], [10, 0, 40, 10], [10, 0, 40, 10], [10, 0, 40, 10]])
    scores = torch.full((4, 2), 0.5)
    result = assign(TaskAlignedAssigner(topk=4, alpha=1.0, beta=1.0), scores, preds, gt, torch.tensor([0, 1]))
    # Point 1 (x = 15) is inside both; its predicted box is object 1 exactly.
    assert result.labels[0].tolist() == [0, 1, 1, 1]
    assert torch.equal(result.boxes[0, 1], gt[1])


def test_ignored_objects_make_their_points_ignored():
    gt = torch.tensor([[0.0, 0.0, 20.0, 10.0], [20.0, 0.0, 40.0, 10.0]])
    preds = torch.tensor([[0.0, 0, 20, 10], [0, 0, 20, 10], [20, 0, 40, 10], [20, 0, 40, 10]])
    result = assign(TaskAlignedAssigner(topk=4), torch.full((4, 1), 0.5), preds, gt, torch.tensor([0, 0]),
                    ignore=torch.tensor([False, True]))
    assert result.labels[0].tolist() == [0, 0, IGNORED, IGNORED]
    assert result.scores[0, 2:].tolist() == [0.0, 0.0]


def test_static_variant_takes_the_most_central_points():
    # alpha = beta = 0: t is 1 inside the box whatever the predictions; ties go to the centre (x = 20).
    gt = torch.tensor([[0.0, 0.0, 40.0, 10.0]])
    preds = torch.tensor([[0.0, 0, 40, 10]] * 4)
    result = assign(TaskAlignedAssigner(topk=2, alpha=0.0, beta=0.0), torch.rand(4, 1), preds, gt,
                    torch.tensor([0]))
    assert result.labels[0].tolist() == [NEGATIVE, 0, 0, NEGATIVE]


def test_center_radius_limits_the_candidates():
    gt = torch.tensor([[0.0, 0.0, 40.0, 10.0]])
    preds = gt.expand(4, 4).clone()
    result = assign(TaskAlignedAssigner(topk=4, center_radius=1.0), torch.full((4, 1), 0.5), preds, gt,
                    torch.tensor([0]))
    assert result.labels[0].tolist() == [NEGATIVE, 0, 0, NEGATIVE]  # |x - 20| < 10


def test_batched_equals_per_image():
    torch.manual_seed(0)
    assigner = TaskAlignedAssigner(topk=3, alpha=0.5, beta=6.0)
    points = torch.stack(torch.meshgrid(torch.arange(8.0) * 8 + 4, torch.arange(8.0) * 8 + 4,
                                        indexing="xy"), -1).reshape(-1, 2)
    strides = torch.full((64,), 8.0)
    batch, num_gt = 3, 4
    corners = torch.rand(batch, num_gt, 2) * 40
    gt_boxes = torch.cat((corners, corners + 8 + torch.rand(batch, num_gt, 2) * 20), -1)
    gt_labels = torch.randint(0, 3, (batch, num_gt))
    valid = torch.tensor([[True] * 4, [True, True, False, False], [False] * 4])
    ignore = torch.zeros(batch, num_gt, dtype=torch.bool)
    ignore[0, 3] = True
    scores = torch.rand(batch, 64, 3)
    centres = points.expand(batch, -1, -1)
    sizes = torch.rand(batch, 64, 4) * 20
    pred_boxes = torch.cat((centres - sizes[..., :2], centres + sizes[..., 2:]), -1)
    batched = assigner(scores, pred_boxes, points, strides, gt_boxes, gt_labels, valid, ignore)
    assert (batched.labels[0] >= 0).any() and (batched.labels[0] == IGNORED).any()
    assert (batched.labels[2] == NEGATIVE).all()
    for i in range(batch):
        n = int(valid[i].sum())
        single = assigner(scores[i:i + 1], pred_boxes[i:i + 1], points, strides, gt_boxes[i:i + 1, :n],
                          gt_labels[i:i + 1, :n], valid[i:i + 1, :n], ignore[i:i + 1, :n])
        assert torch.equal(single.labels[0], batched.labels[i])
        assert torch.allclose(single.scores[0], batched.scores[i])
        assert torch.equal(single.boxes[0], batched.boxes[i])


def instances(boxes, labels):
    labels = torch.tensor(labels, dtype=torch.long)
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return Instances(boxes, labels, torch.zeros(len(labels), dtype=torch.bool))


@pytest.mark.parametrize("overrides", [
    [],
    ["model.head.reg_max=0"],
    ["model.head.loss_cls={type: VarifocalLoss}"],
    ["model.head.loss_cls={type: BCEWithLogitsLoss}"],
    ["model.head.share_convs=true", "model.neck.out_channels=[32,32,32]"],
    ["model.head.depthwise=true"],
    ["model.backbone.out_indices=[3,4]", "model.head.prior_generator.strides=[16,32]"],  # raccoon recipe
])
def test_tal_head_losses_finite_with_and_without_objects(overrides):
    cfg = compose(["model=tal_cspnext_nano", "model.backbone.widen_factor=0.125",
                   "model.head.feat_channels=16", *overrides])
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    outputs = model(torch.rand(2, 3, 64, 64) * 255)
    losses = model.head.loss(outputs, [instances([[4, 4, 40, 50]], [0]), instances([], [])], (64, 64))
    assert set(losses) == ({"loss_cls", "loss_box"} | ({"loss_dfl"} if model.head.reg_max else set()))
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    empty = model.head.loss(model(torch.rand(1, 3, 64, 64) * 255), [instances([], [])], (64, 64))
    assert all(torch.isfinite(v) for v in empty.values())
    assert empty["loss_box"] == 0 and empty["loss_cls"] > 0


def test_depthwise_branches_are_separable_convs_with_the_same_outputs():
    from detframe.models.layers.csp import ConvBNAct, DepthwiseConvBNAct

    plain, separable = (build_detector(compose(["model=tal_cspnext_nano", f"model.head.depthwise={d}"]).model)
                        for d in ("false", "true"))
    assert all(isinstance(m, ConvBNAct) for m in plain.head.cls_branches[0])
    convs = list(separable.head.cls_branches[0]) + list(separable.head.reg_branches[2])
    assert all(isinstance(m, DepthwiseConvBNAct) for m in convs)
    assert convs[0].depthwise.conv.groups == 64 and convs[0].pointwise.conv.kernel_size == (1, 1)
    # 3x3 per channel + 1x1 across instead of a full 3x3: at 64 channels a seventh of the weights (and MACs).
    branch_weights = [sum(p.numel() for n, p in m.head.named_parameters() if "branches" in n and "conv" in n)
                      for m in (plain, separable)]
    assert branch_weights[1] / branch_weights[0] < 1 / 6.5
    images = torch.rand(1, 3, 64, 64) * 255
    shapes = [(o.cls_logits.shape, o.box_regression.shape) for o in (separable(images), plain(images))]
    assert shapes[0] == shapes[1]


@pytest.mark.parametrize("overrides,match", [
    (["model.head.loss_dfl=null"], "need a loss_dfl"),
    (["model.head.share_convs=true"], "equal channels"),
])
def test_tal_head_refuses_inconsistent_settings(overrides, match):
    from detframe.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        build_detector(compose(["model=tal_cspnext_nano", *overrides]).model)


def test_strides_that_disagree_with_the_backbone_are_refused():
    """C4-C5 (out_indices [3, 4]) with the three-level model's first strides: refused at the first loss,
    not trained on boxes decoded at half their scale."""
    from detframe.errors import ConfigError

    cfg = compose(["model=tal_cspnext_nano", "model.backbone.widen_factor=0.125",
                   "model.head.feat_channels=16", "model.backbone.out_indices=[3,4]",
                   "model.head.prior_generator.strides=[8,16]"])
    model = build_detector(cfg.model)
    outputs = model(torch.rand(1, 3, 64, 64) * 255)
    with pytest.raises(ConfigError, match=r"PointGenerator: strides\[0\] is 8, but level 0's map is 4x4"):
        model.head.loss(outputs, [instances([[4, 4, 40, 50]], [0])], (64, 64))
