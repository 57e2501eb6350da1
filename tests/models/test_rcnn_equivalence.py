"""Our Faster R-CNN R50-FPN is torchvision's `fasterrcnn_resnet50_fpn`: with torchvision's (random) weights
converted, it gives the same proposals and the same detections on the same image, in eval mode."""
import pytest
import torch
from torchvision.models import detection

from detframe.models import build_detector
from detframe.models.convert import COCO80_IDS, EQUIVALENTS, convert_state_dict, load_torchvision

from ..conftest import compose
from .test_torchvision_equivalence import assert_same_detections, batch_of

ARCH = "fasterrcnn_resnet50_fpn"
SIZE = 128  # torchvision's transform resizes to min_size: 128 keeps the image as it is


def realistic_random(model: torch.nn.Module) -> None:
    """BatchNorm statistics measured on random inputs and objectness / class layers whose logits vary
    at unit scale, so that proposals and detections are not decided by ties (as the one-stage test)."""
    g = torch.Generator().manual_seed(1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.weight.data.copy_(torch.rand(bn.weight.shape, generator=g) * 0.5 + 0.75)
        bn.bias.data.copy_(torch.randn(bn.bias.shape, generator=g) * 0.1)
    for layer in (model.rpn.head.cls_logits, model.roi_heads.box_predictor.cls_score):
        torch.nn.init.normal_(layer.weight, std=0.3 * layer.weight[0].numel() ** -0.5, generator=g)
        torch.nn.init.normal_(layer.bias, std=1.0, generator=g)
    model.train()
    with torch.no_grad():
        model.backbone(torch.randn(2, 3, 160, 160, generator=g))
    model.eval()


@pytest.fixture(scope="module")
def pair():
    """(torchvision's proposals, ours, torchvision's detections, ours) on one random image."""
    torch.manual_seed(0)
    theirs = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5,
                                               min_size=SIZE, max_size=SIZE)
    realistic_random(theirs)
    name, overrides = EQUIVALENTS[ARCH]
    ours = build_detector(compose([f"model={name}", *overrides]).model).eval()  # data=shapes: 4 classes
    load_torchvision(ours, theirs.state_dict(), ARCH)
    images = torch.randint(0, 256, (1, 3, SIZE, SIZE), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    captured = {}
    hook = theirs.rpn.register_forward_hook(lambda module, args, out: captured.update(proposals=out[0]))
    with torch.no_grad():
        their_dets = theirs([im.float() / 255 for im in images])
        batch = batch_of(images)
        our_proposals, our_dets = ours.proposals(batch), ours.predict(batch)
    hook.remove()
    return captured["proposals"], our_proposals, their_dets, our_dets


def test_same_proposals(pair):
    """The same boxes (per-level top-k, clipping, small boxes, per-level NMS, top 1000), one to one;
    their order may differ only among equal scores."""
    theirs, ours, _, _ = pair
    for t, o in zip(theirs, ours):
        assert len(o) == len(t) > 100
        distance = (o[:, None] - t[None]).abs().amax(-1)  # [ours, theirs]
        assert distance.min(1).values.max() < 1e-2 and distance.min(0).values.max() < 1e-2
        matched = distance.argmin(1)
        assert len(set(matched.tolist())) == len(o)


def test_same_detections(pair):
    _, _, theirs, ours = pair
    for t, o in zip(theirs, ours):
        assert_same_detections(t, o, label_offset=1)  # torchvision's label 0 is the background


def test_coco80_selection_keeps_the_class_logits_and_deltas():
    theirs = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    state = convert_state_dict(theirs.state_dict(), ARCH, COCO80_IDS)
    logits = state["roi_head.bbox_head.cls_score.weight"]
    deltas = state["roi_head.bbox_head.bbox_pred.weight"]
    assert logits.shape[0] == 81 and deltas.shape[0] == 4 * 80
    original = theirs.state_dict()
    # our class 11 is COCO category 13 (stop sign: 12 is unused); our logit 0 is the background
    torch.testing.assert_close(logits[12], original["roi_heads.box_predictor.cls_score.weight"][13])
    torch.testing.assert_close(deltas.view(80, 4, -1)[11],
                               original["roi_heads.box_predictor.bbox_pred.weight"].view(91, 4, -1)[13])


def test_convert_tool_writes_a_faster_rcnn_checkpoint(tmp_path):
    """tools/convert.py with torchvision's 91-slot state dict: a checkpoint whose config builds
    faster_rcnn_r50_fpn on COCO's 80 classes and whose tensors fit it exactly."""
    from detframe.config import load_run_config
    from detframe.engine import load_checkpoint

    from ..badinput.helpers import run_main

    torch.manual_seed(0)
    path = tmp_path / "frcnn_tv.pth"
    torch.save(detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), path)
    out = tmp_path / "frcnn_coco.pt"
    result = run_main("convert", [f"arch={ARCH}", f"weights={path}", f"out={out}"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    state = load_checkpoint(out, "checkpoint")
    cfg = load_run_config(out, state)
    assert cfg.experiment_name == "faster_rcnn_r50_fpn_1x_coco" and cfg.model.roi_head.num_classes == 80
    build_detector(cfg.model).load_state_dict(state["model"])  # strict
