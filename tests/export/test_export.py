"""Exported graphs against the PyTorch model: the detections of an ONNX file (onnxruntime) and of a
TorchScript file equal `predict`'s, for each dense family, at batch 1 and at batch 4 through a dynamic
batch axis, on synthetic images and on real raccoon photos.

The models have seeded random weights, re-initialised (He normal, biases around -1) so that their
scores spread over (0, 1) with no ties: the default initialisation gives near-uniform scores, where
the order of equal scores, not the export, would decide the comparison. Their box outputs are then
scaled down to the size of a trained head's (deltas of order 1, which the coders' normalisation
aims at): He-initialised ones reach tens, and multiply the float32 difference between onnxruntime's
and PyTorch's convolutions (about 1e-5 relative) into boxes off by more than 1e-3 px once mapped to
the raccoon photos' original size (up to 7.5x the 96 px input). Inputs are small (96 px)."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from ..conftest import RACCOON, compose, needs_raccoon

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

SIZE = 96
# Fewer candidates and detections than the recipes (NMS over thousands of spread scores is slow on CPU).
FEWER = ["model.head.topk_candidates=200", "model.head.max_detections=50"]
FAMILIES = {
    "ssdlite": ["config=ssdlite_shapes", "model.backbone.arch=small"],
    "retinanet": ["config=retinanet_r18_fpn_raccoon", "model.neck.out_channels=64",
                  "model.head.feat_channels=64"],
    "yolov3": ["config=yolov3_d53_small_raccoon"],
    "fcos": ["config=fcos_r18_fpn_raccoon", "model.neck.out_channels=64", "model.head.feat_channels=64"],
    "centernet": ["config=centernet_r18_raccoon"],  # no NMS: 3x3 heatmap peaks (nms_iou None)
    "tal": ["config=tal_cspnext_nano_raccoon"],
    # YOLOX takes raw 0..255 pixels, which BatchNorm's initial statistics (eval mode) do not scale: 1/255
    # keeps the random network's activations, and so its scores, spread.
    "yolox": ["config=yolox_tiny_raccoon", "model=yolox_nano", "model.pixel_std=[255.0,255.0,255.0]"],
}


def spread_scores(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every conv so that activations keep their scale through the random network."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
                if m.bias is not None:
                    m.bias.normal_(-1.0, 0.5, generator=generator)
        for conv, channels in box_outputs(model):
            conv.weight[channels] *= 0.1
            conv.bias[channels] *= 0.1
    return model.eval()


def box_outputs(model: nn.Module) -> list[tuple[nn.Conv2d, slice | Tensor]]:
    """The last convs of the head and which of their output channels are box regression."""
    head = model.head
    if hasattr(head, "wh_head"):  # CenterNet; its heatmap too: saturated at 1, its 3x3 peaks would tie
        return [(head.wh_head[-1], slice(None)), (head.offset_head[-1], slice(None)),
                (head.heatmap_head[-1], slice(None))]
    if hasattr(head, "bbox_reg"):  # RetinaNet, FCOS
        return [(head.bbox_reg, slice(None))]
    if hasattr(head, "reg_preds"):  # the task-aligned head, YOLOX: one 1x1 conv per level
        return [(conv, slice(None)) for conv in head.reg_preds]
    if hasattr(head, "reg_convs"):  # SSD, SSDLite
        return [([m for m in conv.modules() if isinstance(m, nn.Conv2d)][-1], slice(None))
                for conv in head.reg_convs]
    per_anchor = 5 + head.num_classes  # YOLOv3: tx, ty, tw, th, objectness, classes per anchor
    return [(conv, torch.arange(conv.out_channels) % per_anchor < 4) for conv in head.preds]


def build(family: str):
    from detframe.models import build_detector

    cfg = compose([*FAMILIES[family], *FEWER, "data.root=unused", f"pipeline.size={SIZE}"])
    return cfg, spread_scores(build_detector(cfg.model), seed=len(family))


@pytest.fixture(scope="module", params=list(FAMILIES))
def exported(request, tmp_path_factory):
    """(family, model, ONNX runtime model): exported at batch 1 with a dynamic batch axis."""
    from detframe.export import ExportGraph, export_onnx, load_onnx_model
    from detframe.export.runtime import export_metadata

    cfg, model = build(request.param)
    path = tmp_path_factory.mktemp("export") / f"{request.param}.onnx"
    metadata = export_metadata("{}", list(cfg.data.class_names), True, (SIZE, SIZE), model.nms_settings(),
                               None)
    export_onnx(ExportGraph(model), path, blank(1), metadata=metadata)
    return request.param, model, load_onnx_model(path)[0]


def synthetic_batch(n: int, seed: int):
    """`n` random images at the export size, mapped from originals of various sizes with a shift (as
    Resize and Letterbox do)."""
    from detframe.structures import Batch

    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8, generator=generator)
    origs = [(120 + 37 * i, 200 - 23 * i) for i in range(n)]
    return Batch(images, [], [(SIZE, SIZE)] * n, origs, list(range(n)),
                 [(SIZE / w, SIZE / h) for h, w in origs], [(2.0 * i, 3.0 * i) for i in range(n)])


def raccoon_batch(n: int):
    """The first `n` raccoon val photos through the val pipeline (Resize to the export size)."""
    from detframe.data import build_dataset
    from detframe.data.collate import Collate

    cfg = compose(["data=raccoon", f"data.root={RACCOON}", f"pipeline.size={SIZE}", "data.check=off"])
    dataset = build_dataset(cfg.data, "val", cfg.pipeline.val)
    return Collate()([dataset[i] for i in range(n)])


def assert_same(reference, exported_detections) -> None:
    """Same detections per image: each of `reference` has a partner of the same label with its box
    within 1e-3 px and its score within 1e-4 (one partner each), and both lists are best first.
    Matched as sets because two scores closer than the float error may come out in either order."""
    assert len(reference) == len(exported_detections)
    total = 0
    for ref, exp in zip(reference, exported_detections):
        assert len(ref) == len(exp), (len(ref), len(exp))
        total += len(ref)
        assert bool((exp.scores[1:] <= exp.scores[:-1]).all())
        close = ((ref.labels[:, None] == exp.labels[None])
                 & ((ref.scores[:, None] - exp.scores[None]).abs() <= 1e-4)
                 & ((ref.boxes[:, None] - exp.boxes[None]).abs().amax(-1) <= 1e-3))
        free = torch.ones(len(exp), dtype=torch.bool)
        for i in range(len(ref)):
            partners = torch.where(close[i] & free)[0]
            assert len(partners), f"detection {i} {ref.boxes[i].tolist()} {ref.scores[i]:.6f} unmatched"
            free[partners[0]] = False
    assert total > 0  # something was compared


def test_onnx_equals_predict_on_synthetic_images(exported):
    family, model, onnx_model = exported
    batch = synthetic_batch(4, seed=1)
    reference = model.predict(batch)
    assert_same(reference, onnx_model.predict(batch))  # batch 4 through the dynamic axis
    assert_same(reference[:1], onnx_model.predict(first(batch)))  # batch 1


@needs_raccoon
def test_onnx_equals_predict_on_raccoon_photos(exported):
    family, model, onnx_model = exported
    batch = raccoon_batch(4)
    reference = model.predict(batch)
    assert_same(reference, onnx_model.predict(batch))
    assert_same(reference[:1], onnx_model.predict(first(batch)))


def first(batch):
    """The batch of its first image alone."""
    from dataclasses import replace

    return replace(batch, images=batch.images[:1], targets=batch.targets[:1],
                   image_sizes=batch.image_sizes[:1], orig_sizes=batch.orig_sizes[:1],
                   image_ids=batch.image_ids[:1], scales=batch.scales[:1], offsets=batch.offsets[:1])


def blank(n: int) -> Tensor:
    """The example input an export traces: `n` black images at the export size."""
    return torch.zeros((n, 3, SIZE, SIZE), dtype=torch.uint8)


def test_a_raw_export_of_a_head_without_nms_equals_predict(tmp_path):
    """nms=false for CenterNet: the runtime keeps every peak above the threshold (no NMS: `nms_iou` is
    None in the file's settings), the best `max_detections`, as `predict` does."""
    from detframe.export import ExportGraph, export_onnx, load_onnx_model
    from detframe.export.runtime import export_metadata

    cfg, model = build("centernet")
    assert model.nms_settings()["nms_iou"] is None
    metadata = export_metadata("{}", list(cfg.data.class_names), False, (SIZE, SIZE), model.nms_settings(),
                               None)
    path = export_onnx(ExportGraph(model, nms=False), tmp_path / "raw.onnx", blank(1), metadata=metadata)
    batch = synthetic_batch(2, seed=3)
    assert_same(model.predict(batch), load_onnx_model(path)[0].predict(batch))


def test_torchscript_equals_predict(tmp_path):
    from detframe.export import ExportGraph, export_torchscript, load_torchscript_model
    from detframe.export.runtime import export_metadata

    cfg, model = build("ssdlite")
    metadata = export_metadata("a: 1", list(cfg.data.class_names), True, (SIZE, SIZE), model.nms_settings(),
                               None)
    path = export_torchscript(ExportGraph(model, onnx=False), tmp_path / "m.torchscript", blank(1),
                              metadata=metadata)
    scripted, config = load_torchscript_model(path)
    assert config.a == 1 and scripted.class_names == list(cfg.data.class_names)
    batch = synthetic_batch(4, seed=7)
    assert_same(model.predict(batch), scripted.predict(batch))


def test_a_float16_graph_runs(tmp_path):
    """`half=true` (the tool asks for CUDA) traced here on the CPU: float16 weights, uint8 input, float32
    outputs, the best detection near the float32 model's. No GPU here: the CUDA path is unmeasured."""
    import onnxruntime as ort

    from detframe.export import ExportGraph, export_onnx

    _, model = build("yolov3")
    images = synthetic_batch(2, seed=5).images
    reference = ExportGraph(model)(images)
    path = export_onnx(ExportGraph(model.half()), tmp_path / "half.onnx", blank(1))
    boxes, scores, labels, count = ort.InferenceSession(str(path)).run(None, {"images": images.numpy()})
    assert boxes.dtype == scores.dtype == "float32" and (count > 0).all()
    torch.testing.assert_close(torch.from_numpy(scores[:, 0]), reference[1][:, 0], atol=1e-2, rtol=0)
