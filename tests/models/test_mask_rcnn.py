"""Mask R-CNN's mask branch: targets and paste-back with known answers, a step on images without objects,
and a narrow Mask R-CNN learning four synthetic images with masks by heart (box and mask mAP@0.5)."""
import time

import pytest
import torch

from detframe.data import build_dataset
from detframe.data.collate import Collate
from detframe.evaluation.coco_map import CocoEvaluator
from detframe.models import build_detector
from detframe.models.roi_heads import mask_targets, paste_masks
from detframe.structures import Batch, Instances

from ..conftest import compose
from .test_overfit import precise_batchnorm

NARROW = ["model=mask_rcnn_r18_fpn", "model.neck.out_channels=64", "model.roi_head.fc_channels=256",
          "model.roi_head.mask_head.conv_channels=32"]
# Fewer RoIs for the overfit's CPU budget: 128 sampled per image (at most 32 positives with masks), 300
# proposals.
FEWER = ["model.roi_head.sampler.num=128", "model.rpn_head.pre_nms_top_n.train=300",
         "model.rpn_head.post_nms_top_n.train=300"]
STEPS = 50  # 30 reach box 0.91 / mask 0.91 (measured): a margin against thread-count differences


def square_instance(size: int, lo: int, hi: int) -> Instances:
    """One object whose mask is the square [lo, hi) x [lo, hi) of a size x size image."""
    masks = torch.zeros(1, size, size, dtype=torch.uint8)
    masks[0, lo:hi, lo:hi] = 1
    box = torch.tensor([[lo, lo, hi, hi]], dtype=torch.float32)
    return Instances(box, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.bool), masks)


def test_mask_target_of_a_square_cropped_and_resized():
    gt = square_instance(56, 16, 40)
    rois = torch.tensor([[0.0, 0.0, 56.0, 56.0],  # the whole image: halved, the square at [8, 20)
                         [28.0, 0.0, 56.0, 28.0],  # top-right quarter: at full scale, square [16, 40) - 28
                         [16.0, 16.0, 40.0, 40.0]])  # the object's own box, 24 -> 28: soft only at the edges
    targets = mask_targets([gt], [rois], [torch.zeros(3, dtype=torch.long)], 28)
    whole = torch.zeros(28, 28)
    whole[8:20, 8:20] = 1
    quarter = torch.zeros(28, 28)
    quarter[16:28, 0:12] = 1
    torch.testing.assert_close(targets[0], whole)
    torch.testing.assert_close(targets[1], quarter)
    torch.testing.assert_close(targets[2][1:-1, 1:-1], torch.ones(26, 26))
    assert (targets[2] > 0.85).all()  # 0.93 at the edges, 0.93 ** 2 at the corners


def test_mask_of_ones_pastes_to_exactly_the_box_pixels():
    boxes = torch.tensor([[10.0, 5.0, 38.0, 20.0], [0.0, 0.0, 3.0, 50.0], [30.0, 40.0, 64.0, 48.0]])
    pasted = paste_masks(torch.ones(3, 28, 28), boxes, (48, 64)) >= 0.5
    for box, mask in zip(boxes.long().tolist(), pasted):
        x0, y0, x1, y1 = box
        expected = torch.zeros(48, 64, dtype=torch.bool)
        expected[y0:y1, x0:x1] = True
        assert torch.equal(mask, expected)


def test_pasted_mask_follows_the_mask_inside_the_box():
    """The left half of a 28x28 mask pasted into a 56-pixel-wide box covers its left 28 pixels."""
    mask = torch.zeros(1, 28, 28)
    mask[:, :, :14] = 1
    pasted = paste_masks(mask, torch.tensor([[4.0, 0.0, 60.0, 28.0]]), (28, 64))[0] >= 0.5
    assert pasted[:, 4:32].all() and not pasted[:, 32:].any() and not pasted[:, :4].any()


def test_step_on_images_without_objects_is_finite_and_keeps_the_mask_graph():
    torch.manual_seed(0)
    model = build_detector(compose(NARROW).model).train()
    assert model.requires_masks
    empty = Instances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool),
                      torch.zeros(0, 96, 96, dtype=torch.uint8))
    images = torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)
    batch = Batch(images, [empty, empty], [(96, 96), (96, 96)], [(96, 96), (96, 96)], [0, 1],
                  [(1.0, 1.0)] * 2, [(0.0, 0.0)] * 2)
    losses = model.loss(batch)
    assert "loss_mask" in losses and losses["loss_mask"].item() == 0.0
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.roi_head.mask_head.logits.weight.grad is not None


@pytest.mark.slow
def test_mask_rcnn_overfits_four_images_boxes_and_masks(tiny_shapes):
    cfg = compose([*NARROW, *FEWER, f"data.root={tiny_shapes}", "data.with_masks=true", "pipeline.size=160"])
    dataset = build_dataset(cfg.data, "train", cfg.pipeline.val)  # no augmentation: the same 4 images
    dataset.records = dataset.records[:4]
    batch = Collate(1)([dataset[i] for i in range(4)])
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    start = time.perf_counter()
    for _ in range(STEPS):
        losses = model.loss(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    precise_batchnorm(model, batch.images)
    model.eval()
    detections = model.predict(batch)
    assert all(d.masks is not None and d.masks.shape[1:] == tuple(size)
               for d, size in zip(detections, batch.orig_sizes))
    evaluator = CocoEvaluator(dataset)
    evaluator.process(batch.image_ids, detections)
    metrics = evaluator.compute()
    last = {k: round(v.item(), 4) for k, v in losses.items()}
    text = (f"box {metrics['coco/AP50']:.3f} mask {metrics['coco/segm_AP50']:.3f} after {STEPS} steps "
            f"({time.perf_counter() - start:.0f} s), losses {last}")
    assert metrics["coco/AP50"] >= 0.9 and metrics["coco/segm_AP50"] >= 0.8, text

