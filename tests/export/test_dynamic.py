"""`dynamic=all`: an ONNX file traced at one input size runs at others, with `predict`'s detections at
that size. Each family of test_export.py is exported once at 96 px and run at 128x160 and 64x96
(multiples of the coarsest stride, as the val pipelines make them), batch 2, through
`detframe.export.runtime`; a file exported with dynamic=batch still refuses another size."""
from __future__ import annotations

import json

import pytest
import torch

from detframe.models.postprocess import keep_topk

from .test_export import FAMILIES, SIZE, assert_same, blank, build

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

OTHER_SIZES = [(128, 160), (64, 96)]


def export(family: str, path, dynamic: str):
    """(model, runtime model of its ONNX file traced at SIZE x SIZE, batch 1, with `dynamic`)."""
    from detframe.export import ExportGraph, export_onnx, load_onnx_model
    from detframe.export.runtime import export_metadata

    cfg, model = build(family)
    metadata = export_metadata("{}", list(cfg.data.class_names), True, (SIZE, SIZE), model.nms_settings(),
                               None, dynamic)
    export_onnx(ExportGraph(model), path, blank(1), dynamic=dynamic, metadata=metadata)
    return model, load_onnx_model(path)[0]


def batch_at(size: tuple[int, int], n: int, seed: int):
    """`n` random images of `size`, from originals of other sizes with a shift (as Resize, Letterbox)."""
    from detframe.structures import Batch

    h, w = size
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=generator)
    origs = [(120 + 37 * i, 200 - 23 * i) for i in range(n)]
    return Batch(images, [], [size] * n, origs, list(range(n)),
                 [(w / ow, h / oh) for oh, ow in origs], [(2.0 * i, 3.0 * i) for i in range(n)])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_dynamic_file_equals_predict_at_other_sizes(family, tmp_path):
    model, onnx_model = export(family, tmp_path / f"{family}.onnx", "all")
    for seed, size in enumerate(OTHER_SIZES):
        batch = batch_at(size, 2, seed)
        assert_same(model.predict(batch), onnx_model.predict(batch))


def test_raw_outputs_follow_the_input_size(tmp_path):
    """nms=false with dynamic=all: every prior's box and scores at another size (more priors than
    traced) are the model's `decode` at that size."""
    import onnxruntime as ort

    from detframe.export import ExportGraph, export_onnx

    _, model = build("yolov3")
    path = export_onnx(ExportGraph(model, nms=False), tmp_path / "raw.onnx", blank(1), dynamic="all")
    images = batch_at((128, 160), 2, seed=4).images
    boxes, scores = ort.InferenceSession(str(path)).run(None, {"images": images.numpy()})
    ref_boxes, ref_scores = model.decode(images)
    torch.testing.assert_close(torch.from_numpy(boxes), ref_boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.from_numpy(scores), ref_scores, atol=1e-4, rtol=0)


def test_a_fixed_file_says_so_and_refuses_another_size(tmp_path):
    from detframe.errors import UserError
    from detframe.export.onnx import read_metadata

    _, fixed = export("yolov3", tmp_path / "fixed.onnx", "batch")
    assert read_metadata(tmp_path / "fixed.onnx")["dynamic"] == "batch"
    with pytest.raises(UserError, match="exported for 96x96 inputs, given 128x160.*dynamic=all"):
        fixed.predict(batch_at((128, 160), 1, seed=0))
    assert json.loads(read_metadata(tmp_path / "fixed.onnx")["input_size"]) == [SIZE, SIZE]


class KeepTop5(torch.nn.Module):
    def forward(self, scores):
        return keep_topk(scores, 5, dim=1)


@pytest.mark.filterwarnings("ignore")  # the tracer's and the exporter's notices
@pytest.mark.parametrize("traced,run", [(3, 8), (8, 3)])
def test_top_k_follows_the_number_of_priors(traced, run, tmp_path):
    """min(k, priors) is taken in the graph: traced with fewer priors than k and run with more (or the
    reverse), the graph keeps the k best, as `predict` would at that size."""
    import onnxruntime as ort

    path = tmp_path / "top.onnx"
    torch.onnx.export(KeepTop5(), (torch.rand(2, traced),), str(path), dynamo=False, input_names=["s"],
                      dynamic_axes={"s": {1: "priors"}})
    scores = torch.rand(2, run, generator=torch.Generator().manual_seed(run))
    kept = ort.InferenceSession(str(path)).run(None, {"s": scores.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(kept), KeepTop5()(scores))
