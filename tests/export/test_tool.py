"""tools/export.py end to end: a checkpoint in, a self-describing .onnx out, which `Detector` and
tools/predict.py run with the same detections as the checkpoint; and files that are not what the tool
or the runtime expect, refused in one line naming them."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from omegaconf import OmegaConf

from ..badinput.helpers import assert_fails, run_main
from ..conftest import FAST, compose
from .test_export import assert_same, spread_scores

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tiny_shapes, tmp_path_factory):
    """A checkpoint of SSDLite (scores spread, see test_export.py), its ONNX export by the tool, and an
    export without NMS at a fixed batch of 2."""
    from detframe.engine import save_checkpoint
    from detframe.models import build_detector

    folder = tmp_path_factory.mktemp("export_tool")
    cfg = compose([f"data.root={tiny_shapes}", *FAST, "pipeline.size=96", "model.head.max_detections=20"])
    model = spread_scores(build_detector(cfg.model), seed=3)
    state = {"model": model.state_dict(), "config": OmegaConf.to_yaml(cfg, resolve=True)}
    checkpoint = save_checkpoint(state, folder / "best.pt")
    out = {"checkpoint": checkpoint, "model": model}
    out.update(onnx=folder / "model.onnx", raw=folder / "raw.onnx")
    for args in ([f"out={out['onnx']}"], [f"out={out['raw']}", "nms=false", "dynamic=none", "batch=2"]):
        result = run_main("export", [f"checkpoint={checkpoint}", *args], folder)
        assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_the_onnx_file_describes_itself(files, tiny_shapes):
    from detframe.export import load_onnx_model
    from detframe.export.onnx import read_metadata

    metadata = read_metadata(files["onnx"])
    assert json.loads(metadata["class_names"]) == ["circle", "square", "triangle", "star"][:len(
        json.loads(metadata["class_names"]))]
    model, config = load_onnx_model(files["onnx"])
    saved = compose([f"data.root={tiny_shapes}", *FAST, "pipeline.size=96"])
    assert list(config.data.class_names) == list(saved.data.class_names) == model.class_names
    assert config.model.head.type == "SSDLiteHead" and model.input_size == (96, 96) and model.has_nms


def test_detector_from_onnx_equals_from_checkpoint(files, tiny_shapes):
    from detframe import Detector

    images = sorted((tiny_shapes / "JPEGImages").iterdir())[:3]
    from_pt = Detector.from_checkpoint(files["checkpoint"], device="cpu")(images)
    from_onnx = Detector.from_checkpoint(files["onnx"], device="cpu", batch_size=3)
    assert from_onnx.class_names == [str(n) for n in from_onnx.config.data.class_names]
    for pt, onnx in zip(from_pt, from_onnx(images)):
        assert len(pt.scores) > 0
        assert_same([_detections(pt)], [_detections(onnx)])
    # Without NMS in the graph, at a fixed batch of 2 (3 images: the last chunk padded): the runtime's
    # NMS over every prior (no per-class top-k) keeps the same best detection.
    from_raw = Detector.from_checkpoint(files["raw"], device="cpu", batch_size=3)(images)
    for pt, raw in zip(from_pt, from_raw):
        assert_same([_detections(pt, 1)], [_detections(raw, 1)])


def test_detector_and_predict_from_torchscript(files, tiny_shapes, tmp_path):
    from detframe import Detector

    script = tmp_path / "model.torchscript"
    result = run_main("export", [f"checkpoint={files['checkpoint']}", "format=torchscript", f"out={script}"],
                      tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    images = sorted((tiny_shapes / "JPEGImages").iterdir())[:3]
    from_pt = Detector.from_checkpoint(files["checkpoint"], device="cpu")(images)
    for pt, ts in zip(from_pt, Detector.from_checkpoint(script, device="cpu")(images)):
        assert len(pt.scores) > 0
        assert_same([_detections(pt)], [_detections(ts)])
    args = [f"checkpoint={script}", f"source={images[0]}", f"out={tmp_path / 'out'}", "save_images=false"]
    assert run_main("predict", args, tmp_path).returncode == 0
    assert (tmp_path / "out" / "predictions.json").is_file()


def test_a_dynamic_export_runs_at_another_size(files, tiny_shapes, tmp_path):
    """dynamic=all through the tool: `Detector` at size=128 from the .onnx (traced at 96) gives the
    checkpoint's detections at 128; the dynamic=batch file refuses that size in one line."""
    from detframe import Detector
    from detframe.errors import UserError
    from detframe.export.onnx import read_metadata

    path = tmp_path / "any_size.onnx"
    result = run_main("export", [f"checkpoint={files['checkpoint']}", f"out={path}", "dynamic=all"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_metadata(path)["dynamic"] == "all"
    images = sorted((tiny_shapes / "JPEGImages").iterdir())[:2]
    from_pt = Detector.from_checkpoint(files["checkpoint"], device="cpu", size=128)(images)
    from_onnx = Detector.from_checkpoint(path, device="cpu", size=128)(images)
    for pt, onnx in zip(from_pt, from_onnx):
        assert len(pt.scores) > 0
        assert_same([_detections(pt)], [_detections(onnx)])
    with pytest.raises(UserError, match="exported for 96x96 inputs, given 128x128"):
        Detector.from_checkpoint(files["onnx"], device="cpu", size=128)(images)


def test_raw_outputs_are_the_decoded_priors(files, tiny_shapes):
    import onnxruntime as ort

    from .test_export import synthetic_batch

    images = synthetic_batch(2, seed=3).images
    boxes, scores = ort.InferenceSession(str(files["raw"])).run(None, {"images": images.numpy()})
    ref_boxes, ref_scores = files["model"].decode(images)
    torch.testing.assert_close(torch.from_numpy(boxes), ref_boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.from_numpy(scores), ref_scores, atol=1e-4, rtol=0)


def _detections(prediction, keep: int | None = None):
    """A `Prediction`'s first `keep` (default all) detections as `Detections`."""
    from detframe.structures import Detections

    return Detections(torch.as_tensor(prediction.boxes[:keep]), torch.as_tensor(prediction.scores[:keep]),
                      torch.as_tensor(prediction.labels[:keep]))



def test_predict_tool_runs_the_onnx_file(files, tiny_shapes, tmp_path):
    source = tmp_path / "photos"
    source.mkdir()
    for image in sorted((tiny_shapes / "JPEGImages").iterdir())[:2]:
        shutil.copy(image, source)
    args = [f"checkpoint={files['onnx']}", f"source={source}", f"out={tmp_path / 'out'}", "device=cpu",
            "save_images=false"]
    result = run_main("predict", args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out" / "predictions.json").is_file()


@pytest.mark.parametrize("what", ["image", "text", "missing"])
def test_a_file_that_is_no_export(files, tmp_path, what):
    from detframe import Detector
    from detframe.errors import UserError

    path = tmp_path / "model.onnx"
    if what == "image":
        shutil.copy(files["checkpoint"], path)  # a PyTorch checkpoint renamed .onnx
    elif what == "text":
        path.write_text("not a model\n")
    with pytest.raises(UserError) as error:
        Detector.from_checkpoint(path, device="cpu")
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_export_refuses_a_file_that_is_no_checkpoint(files, tiny_shapes, tmp_path):
    image = next((tiny_shapes / "JPEGImages").iterdir())
    assert_fails(run_main("export", [f"checkpoint={image}"], tmp_path), f"checkpoint={image}",
                 "not a PyTorch checkpoint (it looks like a JPEG image)")
    assert_fails(run_main("export", [f"checkpoint={files['onnx']}"], tmp_path), f"checkpoint={files['onnx']}")
