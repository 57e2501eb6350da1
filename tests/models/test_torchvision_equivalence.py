"""Our SSD300-VGG16, SSDLite320-MobileNetV3, RetinaNet-R50-FPN and FCOS-R50-FPN are torchvision's
networks: with torchvision's (random) weights converted, they give the same raw outputs, the same losses
and the same detections on the same inputs."""
import pytest
import torch
from torchvision.models import detection

from detframe.models import build_detector
from detframe.models.convert import COCO80_IDS, EQUIVALENTS, convert_state_dict, load_torchvision
from detframe.structures import Batch, Instances

from ..conftest import compose

# torchvision builder, input size, builder arguments (RetinaNet's transform would resize to 800 px).
CASES = {
    "ssd300_vgg16": (300, {}),
    "ssdlite320_mobilenet_v3_large": (320, {}),
    "retinanet_resnet50_fpn": (128, {"min_size": 128, "max_size": 128}),
    "fcos_resnet50_fpn": (128, {"min_size": 128, "max_size": 128}),
}


def realistic_random(model: torch.nn.Module) -> None:
    """Random weights that do not make every score equal: BatchNorm statistics measured on random
    inputs (untouched statistics collapse the deep layers to constants), and class layers whose logits
    vary from place to place at unit scale, so detections are not decided by ties."""
    g = torch.Generator().manual_seed(1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batch
        bn.weight.data.copy_(torch.rand(bn.weight.shape, generator=g) * 0.5 + 0.75)
        bn.bias.data.copy_(torch.randn(bn.bias.shape, generator=g) * 0.1)
    for name, m in model.head.named_modules():
        if (isinstance(m, torch.nn.Conv2d) and m.groups == 1
                and ("cls_logits" in name or "classification_head.module_list" in name)):
            torch.nn.init.normal_(m.weight, std=(m.in_channels * m.kernel_size[0] * m.kernel_size[1]) ** -0.5,
                                  generator=g)
            torch.nn.init.normal_(m.bias, std=1.0, generator=g)
    if norms:
        model.train()
        with torch.no_grad():
            model.head(list(model.backbone(torch.randn(2, 3, 160, 160, generator=g)).values()))
    model.eval()


def spread_fcos_boxes(model: torch.nn.Module) -> None:
    """FCOS's box layer at unit scale with a positive bias: at its own initialisation (std 0.01, bias 0)
    most distances are cut to 0 by the ReLU, and the detections would be points."""
    g = torch.Generator().manual_seed(3)
    layer = model.head.regression_head.bbox_reg
    torch.nn.init.normal_(layer.weight, std=(layer.in_channels * 9) ** -0.5, generator=g)
    torch.nn.init.constant_(layer.bias, 1.0)


def batch_of(images: torch.Tensor, targets: list[Instances] | None = None) -> Batch:
    n, size = len(images), images.shape[-1]
    return Batch(images, targets or [], [(size, size)] * n, [(size, size)] * n, list(range(n)),
                 [(1.0, 1.0)] * n, [(0.0, 0.0)] * n)


@pytest.fixture(scope="module", params=list(CASES))
def pair(request):
    """Both models on one image, in eval mode: (arch, torchvision model, ours, torchvision's head
    outputs, our head outputs, torchvision's detections, ours)."""
    arch = request.param
    size, kwargs = CASES[arch]
    torch.manual_seed(0)
    num_classes = 5 if arch.startswith("ssd") else 4  # torchvision's SSD counts the background
    theirs = getattr(detection, arch)(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)
    realistic_random(theirs)
    if arch.startswith("fcos"):
        spread_fcos_boxes(theirs)
    name, overrides = EQUIVALENTS[arch]
    ours = build_detector(compose([f"model={name}", *overrides]).model).eval()  # data=shapes: 4 classes
    load_torchvision(ours, theirs.state_dict(), arch)
    images = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    captured = {}
    hook = theirs.head.register_forward_hook(lambda module, args, out: captured.update(out))
    with torch.no_grad():
        their_dets = theirs([im.float() / 255 for im in images])
        our_outputs = ours(images)
        our_dets = ours.head.predict(our_outputs, batch_of(images))
    hook.remove()
    return arch, theirs, ours, captured, our_outputs, their_dets, our_dets


def test_same_raw_outputs(pair):
    _, _, _, theirs, ours, _, _ = pair
    torch.testing.assert_close(ours.cls_logits, theirs["cls_logits"], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(ours.box_regression, theirs["bbox_regression"], rtol=1e-4, atol=1e-3)
    if "bbox_ctrness" in theirs:
        torch.testing.assert_close(ours.centerness, theirs["bbox_ctrness"].squeeze(-1), rtol=1e-4, atol=1e-3)


def assert_same_detections(theirs: dict, ours, label_offset: int) -> None:
    """Same boxes, scores and labels, in any order among equal scores."""
    assert len(ours) == len(theirs["scores"]) > 0
    label_ok = (ours.labels[:, None] + label_offset) == theirs["labels"][None]
    score_ok = (ours.scores[:, None] - theirs["scores"][None]).abs() < 1e-4
    box_ok = (ours.boxes[:, None] - theirs["boxes"][None]).abs().amax(-1) < 1e-2
    compatible = label_ok & score_ok & box_ok
    used = torch.zeros(len(ours), dtype=torch.bool)
    for i in range(len(ours)):
        free = torch.where(compatible[i] & ~used)[0]
        assert len(free), (f"our detection {i} {ours.boxes[i].tolist()} {ours.scores[i]:.5f} "
                           "has no match in torchvision's")
        used[free[0]] = True


def test_same_detections(pair):
    arch, _, _, _, _, theirs, ours = pair
    for t, o in zip(theirs, ours):
        assert_same_detections(t, o, label_offset=1 if arch.startswith("ssd") else 0)


def test_same_losses(pair):
    """Same matching, encoding and loss normalisation with three objects per image (torchvision's
    RetinaNet normalises per image, ours per batch as the paper: equal for one image; SSDLite's
    BatchNorm needs two images at its 1x1 levels in training; both FCOS normalise by the positives of
    the batch)."""
    arch, theirs, ours, _, _, _, _ = pair
    size = CASES[arch][0]
    n = 2 if arch.startswith("ssdlite") else 1
    g = torch.Generator().manual_seed(4)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    xy = torch.rand(n, 3, 2, generator=g) * size * 0.6
    boxes = torch.cat([xy, xy + torch.rand(n, 3, 2, generator=g) * size * 0.35 + 10], -1)
    labels = torch.randint(0, 4, (n, 3), generator=g)
    offset = 1 if arch.startswith("ssd") else 0
    theirs.train()
    ours.train()
    try:
        with torch.no_grad():  # the values only: no graph to build
            expected = theirs([im.float() / 255 for im in images],
                              [{"boxes": b, "labels": label + offset} for b, label in zip(boxes, labels)])
            got = ours.loss(batch_of(images, [Instances(b, label, torch.zeros(3, dtype=torch.bool))
                                              for b, label in zip(boxes, labels)]))
    finally:
        theirs.eval()
        ours.eval()
    torch.testing.assert_close(got["loss_cls"], expected["classification"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got["loss_box"], expected["bbox_regression"], rtol=1e-4, atol=1e-4)
    if "bbox_ctrness" in expected:
        torch.testing.assert_close(got["loss_centerness"], expected["bbox_ctrness"], rtol=1e-4, atol=1e-4)


def test_coco80_selection_keeps_the_named_class_slots():
    theirs = detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    state = convert_state_dict(theirs.state_dict(), "retinanet_resnet50_fpn", COCO80_IDS)
    weight, bias = state["head.cls_logits.weight"], state["head.cls_logits.bias"]
    assert weight.shape[0] == bias.shape[0] == 9 * 80
    original = theirs.state_dict()["head.classification_head.cls_logits.weight"].view(9, 91, -1)
    # anchor 2, our label 11 is COCO category 13 (stop sign: 12 is unused)
    torch.testing.assert_close(weight.view(9, 80, -1)[2, 11], original[2, 13])


def test_mismatch_is_reported_with_names():
    from detframe.errors import ConfigError

    theirs = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
    ours = build_detector(compose(["model=ssdlite_mobilenetv3", "model.backbone.arch=small"]).model)
    with pytest.raises(ConfigError, match=r"does not fit this model: \d+ unexpected"):
        load_torchvision(ours, theirs.state_dict(), "ssdlite320_mobilenet_v3_large")
