"""The dense heads give the same numbers as before the shared post-processing (models/postprocess.py),
the shared matching (SSD through `match_batch`) and the shared positive count (`num_positives`): every
head's predict() and loss() are compared with the frozen pre-refactor code in frozen_heads.py, bit for
bit (torch.equal: boxes, scores, labels and their order; each loss term and its gradient).

Heads are built from the repo's model configs at small input sizes and fed (a) the randomly initialised
network's outputs on random images, and synthetic outputs that push each rule to its edge: (b) many
candidates (top-k truncates, NMS suppresses, max_detections cuts), (c) few candidates (nothing cut),
(d) quantised logits and deltas (many tied scores and identical boxes, where NMS and top-k order could
drift), (e) every score below its threshold (no detection), (f) bfloat16 outputs (autocast
evaluation). Losses run on images with objects (one ignored), without any, and on a batch with no
object at all.
"""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from detframe.models import build_detector
from detframe.models.heads import YOLOOutputs
from detframe.structures import Batch, Instances

from ..conftest import compose
from . import frozen_heads

# name: (config overrides, padded input size)
MODELS = {
    "ssdlite": (["model=ssdlite_mobilenetv3_small"], 128),
    "ssd300": (["model=ssd300_vgg16"], 300),
    "retinanet": (["model=retinanet_r18_fpn"], 128),
    "yolov3": (["model=yolov3_d53_small"], 128),
}
VARIANTS = ["network", "many", "sparse", "ties", "empty", "bfloat16"]
NUM_CLASSES = 4  # data=shapes, the default


def make_batch(size: int, targets: list[Instances], generator: torch.Generator) -> Batch:
    """Two images padded to `size`: the second smaller than the padding, letterboxed (scale and offset)."""
    images = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=generator)
    return Batch(
        images, targets, image_sizes=[(size, size), (size - 24, size - 40)],
        orig_sizes=[(2 * size, size), (size // 2, size + size // 2)], image_ids=[0, 1],
        scales=[(1.0, 0.5), (1.25, 0.75)], offsets=[(0.0, 0.0), (6.0, 10.0)],
    )


def make_targets(size: int, kind: str, generator: torch.Generator) -> list[Instances]:
    """"mixed": 4 objects (the last ignored) on image 0, none on image 1; "dense": 6 overlapping
    objects on each; "none": no object anywhere."""
    def objects(n: int, ignored: int = 0) -> Instances:
        xy = torch.rand(n, 2, generator=generator) * size * 0.6
        wh = torch.rand(n, 2, generator=generator) * size * 0.35 + 6
        labels = torch.randint(0, 4, (n,), generator=generator)
        return Instances(torch.cat([xy, xy + wh], 1), labels, torch.arange(n) >= n - ignored)

    none = Instances(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool))
    if kind == "mixed":
        return [objects(4, ignored=1), none]
    return [objects(6), objects(6)] if kind == "dense" else [none, none]


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    """(name, detector, input size, eval-mode network outputs on random images)."""
    overrides, size = MODELS[request.param]
    torch.manual_seed(0)
    detector = build_detector(compose(overrides).model).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        outputs = detector(make_batch(size, [], g).images)
    return request.param, detector, size, outputs


def synthetic(outputs, variant: str, generator: torch.Generator):
    """Outputs of the same shapes as `outputs` whose values exercise `variant` (SSD's outputs have a
    background column first, told by `outputs.cls_logits` having one column more than RetinaNet's 4)."""
    if variant == "network":
        return outputs

    def like(t: torch.Tensor, scale: float) -> torch.Tensor:
        x = torch.randn(t.shape, generator=generator) * scale
        return torch.round(x * 2) / 2 if variant == "ties" else x

    if isinstance(outputs, YOLOOutputs):
        raw = like(outputs.raw, 2.5)
        raw[..., :4] = like(outputs.raw[..., :4], 0.5)
        if variant == "empty":
            raw[..., 4] = -12.0  # objectness 6e-6 < obj_threshold
        if variant == "sparse":
            raw[..., 4] -= 10.0
        out = replace(outputs, raw=raw)
    else:
        logits = like(outputs.cls_logits, 2.5)
        softmax = logits.shape[-1] == NUM_CLASSES + 1  # SSD: a background column first
        if variant == "empty":
            logits.fill_(-12.0)
            if softmax:
                logits[..., 0] = 12.0  # all the mass on background
        if variant == "sparse":
            if softmax:
                logits[..., 0] += 14.0
            else:
                logits -= 10.0
        out = replace(outputs, cls_logits=logits, box_regression=like(outputs.box_regression, 0.5))
    if variant == "bfloat16":
        out = replace(out, **{k: getattr(out, k).bfloat16() for k in ("raw", "cls_logits", "box_regression")
                              if hasattr(out, k)})
    return out


def assert_same_detections(got, expected) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        for field in ("boxes", "scores", "labels"):
            a, b = getattr(g, field), getattr(e, field)
            assert a.dtype == b.dtype and torch.equal(a, b), f"{field}: {a} != {b}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_predict_is_bit_identical(model, variant):
    name, detector, size, outputs = model
    g = torch.Generator().manual_seed(2)
    outputs = synthetic(outputs, variant, g)
    batch = make_batch(size, [], g)
    head = detector.head
    expected = frozen_heads.PREDICT[type(head).__name__](head, outputs, batch)
    got = head.predict(outputs, batch)
    assert_same_detections(got, expected)
    counts = [len(d) for d in expected]
    if variant == "empty":
        assert counts == [0, 0]
    if variant in ("many", "sparse", "ties"):
        assert min(counts) > 0  # the case is not vacuous
    if variant == "sparse":
        assert max(counts) < head.max_detections
    if variant == "many":
        assert max(counts) == head.max_detections or name == "yolov3"


def leaves(outputs):
    """Fresh leaf copies of the outputs' tensors, so each loss gets its own gradient."""
    fields = ("raw",) if isinstance(outputs, YOLOOutputs) else ("cls_logits", "box_regression")
    return replace(outputs, **{f: getattr(outputs, f).detach().clone().requires_grad_() for f in fields})


def grads(outputs) -> list[torch.Tensor]:
    fields = ("raw",) if isinstance(outputs, YOLOOutputs) else ("cls_logits", "box_regression")
    return [getattr(outputs, f).grad for f in fields]


@pytest.mark.parametrize("targets_kind", ["mixed", "dense", "none"])
@pytest.mark.parametrize("variant", ["network", "many"])
def test_loss_is_bit_identical(model, variant, targets_kind):
    _, detector, size, _ = model
    g = torch.Generator().manual_seed(3)
    targets = make_targets(size, targets_kind, g)
    batch = make_batch(size, targets, g)
    if variant == "network":
        detector.train()
        try:
            with torch.no_grad():
                outputs = detector(batch.images)
        finally:
            detector.eval()
    else:
        outputs = synthetic(model[3], variant, g)
    head, image_size = detector.head, batch.images.shape[-2:]
    old, new = leaves(outputs), leaves(outputs)
    expected = frozen_heads.LOSS[type(head).__name__](head, old, targets, image_size)
    got = head.loss(new, targets, image_size)
    assert list(got) == list(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), f"{key}: {got[key]} != {expected[key]}"
    sum(expected.values()).backward()
    sum(got.values()).backward()
    for a, b in zip(grads(new), grads(old)):
        assert torch.equal(a, b)
    if targets_kind == "none":
        box_terms = [k for k in got if k in ("loss_box", "loss_xy", "loss_wh")]
        assert all(got[k].item() == 0.0 for k in box_terms)
