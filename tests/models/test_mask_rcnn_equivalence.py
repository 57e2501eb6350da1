"""Our Mask R-CNN R50-FPN is torchvision's `maskrcnn_resnet50_fpn`: with torchvision's (random) weights
converted, it gives the same proposals, detections and per-detection 28x28 mask logits on the same image,
in eval mode. The paste into the image differs by its pixel convention (torchvision truncates the box to
integers and treats its right and bottom edges as inclusive, so its masks reach about one pixel further;
ours cover the pixels whose centres fall in the box, see `paste_masks`): on smooth masks in boxes of
20-100 pixels the two agree to IoU >= 0.9. (The random network's masks are noise at 28x28 and its
boxes a few pixels wide, where that pixel decides everything, so they are compared before the paste.)"""
import pytest
import torch
from torchvision.models import detection
from torchvision.models.detection.roi_heads import paste_masks_in_image

from detframe.models import build_detector
from detframe.models.convert import COCO80_IDS, EQUIVALENTS, convert_state_dict, load_torchvision
from detframe.models.roi_heads import paste_masks

from ..conftest import compose
from .test_rcnn_equivalence import SIZE, realistic_random
from .test_torchvision_equivalence import assert_same_detections, batch_of

ARCH = "maskrcnn_resnet50_fpn"


@pytest.fixture(scope="module")
def pair():
    """torchvision's and our (proposals, detections, mask logits of the detections) on one random image."""
    torch.manual_seed(0)
    theirs = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5,
                                             min_size=SIZE, max_size=SIZE)
    realistic_random(theirs)
    name, overrides = EQUIVALENTS[ARCH]
    ours = build_detector(compose([f"model={name}", *overrides]).model).eval()  # data=shapes: 4 classes
    load_torchvision(ours, theirs.state_dict(), ARCH)
    images = torch.randint(0, 256, (1, 3, SIZE, SIZE), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    captured: dict[str, list] = {"theirs": [], "ours": []}
    hooks = [
        theirs.rpn.register_forward_hook(lambda module, args, out: captured.update(proposals=out[0])),
        theirs.roi_heads.mask_predictor.register_forward_hook(
            lambda module, args, out: captured["theirs"].append(out[:, 1:])),  # slot 0: the background
        ours.roi_head.mask_head.register_forward_hook(lambda module, args, out: captured["ours"].append(out)),
    ]
    with torch.no_grad():
        their_dets = theirs([im.float() / 255 for im in images])
        batch = batch_of(images)
        our_proposals, our_dets = ours.proposals(batch), ours.predict(batch)
    for hook in hooks:
        hook.remove()
    return (captured["proposals"], our_proposals, their_dets, our_dets, captured["theirs"][0],
            captured["ours"][0])


def test_same_proposals(pair):
    theirs, ours = pair[0][0], pair[1][0]
    assert len(ours) == len(theirs) > 100
    distance = (ours[:, None] - theirs[None]).abs().amax(-1)
    assert distance.min(1).values.max() < 1e-2 and distance.min(0).values.max() < 1e-2


def test_same_detections_and_mask_logits(pair):
    _, _, their_dets, our_dets, their_logits, our_logits = pair
    assert_same_detections(their_dets[0], our_dets[0], label_offset=1)
    # same order of detections (no tied scores here): the masks of the same RoIs, all classes, equal up
    # to float rounding (boxes equal to 1e-4 sample RoIAlign at very slightly different points)
    torch.testing.assert_close(our_dets[0].scores, their_dets[0]["scores"], atol=1e-4, rtol=0)
    assert our_logits.shape == their_logits.shape == (len(our_dets[0]), 4, 28, 28)
    difference = (our_logits - their_logits).abs()
    scale = their_logits.abs()  # logits of tens: relative differences of 1e-4
    assert difference.max() <= 1e-3 * scale.max() and difference.mean() <= 2e-4 * scale.mean()
    masks = our_dets[0].masks
    assert masks.dtype == torch.bool and masks.shape == (len(our_dets[0]), SIZE, SIZE)


def test_paste_agrees_with_torchvision_up_to_its_pixel_convention():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(28.0) + 0.5, torch.arange(28.0) + 0.5, indexing="ij")
    radius, centre = torch.rand(8, 1, 1, generator=g) * 6 + 6, torch.rand(8, 1, 1, generator=g) * 8 + 10
    discs = torch.sigmoid((radius - ((yy - 14) ** 2 + (xx - centre) ** 2).sqrt()) * 2)  # smooth blobs
    corner = torch.rand(8, 2, generator=g) * 100
    boxes = torch.cat([corner, corner + torch.rand(8, 2, generator=g) * 80 + 20], 1)
    theirs = paste_masks_in_image(discs[:, None], boxes, (200, 220))[:, 0] >= 0.5
    ours = paste_masks(discs, boxes, (200, 220)) >= 0.5
    iou = (theirs & ours).sum((1, 2)) / (theirs | ours).sum((1, 2))
    assert (iou >= 0.9).all(), iou


def test_coco80_selection_keeps_the_class_masks():
    theirs = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    state = convert_state_dict(theirs.state_dict(), ARCH, COCO80_IDS)
    logits = state["roi_head.mask_head.logits.weight"]
    assert logits.shape[0] == 80
    # our class 11 is COCO category 13 (stop sign: 12 is unused)
    original = theirs.state_dict()["roi_heads.mask_predictor.mask_fcn_logits.weight"]
    torch.testing.assert_close(logits[11], original[13])
