"""The bad-input catalogue, checkpoints and results files: what `resume=`, `load_from=`, `tools/eval.py
checkpoint=` and `tools/eval.py results=` do with a file that is not what they expect.

Every case runs the real tool (its main, in this process) and asserts the exit status, that the message
names the file (and the entry or tensor where there is one), and that no traceback is printed. The
checkpoints are state dicts of freshly built models saved with `save_checkpoint`, as the runner saves
them: no training needed.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ..conftest import FAST, compose
from .helpers import TINY_TRAIN, assert_fails, assert_warns, run_main

pytestmark = pytest.mark.slow

NOT_MODEL = [a for a in FAST if not a.startswith("model.")]
# RetinaNet on ResNet-18 with narrow layers: another architecture than the default SSDLite, small to save.
RETINA = [*NOT_MODEL, "model=retinanet_r18_fpn", "model.neck.out_channels=64", "model.head.feat_channels=64"]


@pytest.fixture(scope="module")
def files(tiny_shapes, tmp_path_factory) -> dict[str, Path]:
    """Checkpoints of three models, files that are not checkpoints, and a good results entry's ids."""
    from detframe.engine import save_checkpoint
    from detframe.models import build_detector

    folder = tmp_path_factory.mktemp("bad_checkpoints")
    out: dict[str, Path] = {}

    def save(name: str, overrides: list[str], weights_of: list[str] | None = None, **extra) -> None:
        cfg = compose([f"data.root={tiny_shapes}", *overrides])
        model = build_detector(compose([f"data.root={tiny_shapes}", *(weights_of or overrides)]).model)
        state = {"model": model.state_dict(), "config": OmegaConf.to_yaml(cfg, resolve=True), **extra}
        out[name] = save_checkpoint(state, folder / f"{name}.pt")

    save("ssdlite", FAST)
    save("retina", RETINA)
    save("ssdlite_config_retina_weights", FAST, weights_of=RETINA)  # assembled by hand
    save("retina_training", RETINA, optimizer={}, scheduler={}, epoch=1, iter=2)
    save("ssdlite_large", [*NOT_MODEL, "model=ssdlite_mobilenetv3"])  # a sibling: 46% of the weights fit

    out["yaml"] = folder / "config.yaml"
    out["yaml"].write_text(OmegaConf.to_yaml(compose(FAST)))
    out["jpeg"] = shutil.copy(next((tiny_shapes / "JPEGImages").iterdir()), folder / "photo.jpg")
    out["empty"] = folder / "empty.pt"
    out["empty"].write_bytes(b"")
    data = out["ssdlite"].read_bytes()
    out["truncated"] = folder / "truncated.pt"
    out["truncated"].write_bytes(data[: len(data) // 3])
    out["folder"] = folder / "a_run"
    (out["folder"] / "checkpoints").mkdir(parents=True)
    out["tensor"] = folder / "tensor.pt"
    torch.save(torch.zeros(3), out["tensor"])
    out["code"] = folder / "runs_code.pt"
    torch.save({"model": Evil()}, out["code"])

    gt = json.loads((tiny_shapes / "annotations" / "instances_val.json").read_text())
    out["good_entry"] = {"image_id": gt["images"][0]["id"], "category_id": gt["categories"][0]["id"],
                         "bbox": [10.0, 10.0, 20.0, 20.0], "score": 0.5}
    out["dir"] = folder
    return out


class Evil:
    """Pickles as a call to print: what a malicious checkpoint does, harmlessly."""

    def __reduce__(self):
        return (print, ("this checkpoint ran code",))


def train(tiny_shapes, tmp_path, *extra: str):
    return run_main("train", [f"data.root={tiny_shapes}", *TINY_TRAIN, *extra], cwd=tmp_path)


def evaluate(tiny_shapes, tmp_path, *extra: str):
    args = [f"data.root={tiny_shapes}", "data.num_workers=0", "plots=false", *extra]
    return run_main("eval", args, cwd=tmp_path)


# --- files that are not checkpoints, through each of the three arguments ---------------------------------

@pytest.mark.parametrize("tool, key, name, message", [
    ("train", "resume", "yaml", "not a PyTorch checkpoint (it looks like a text file: YAML or plain text)"),
    ("train", "load_from", "jpeg", "not a PyTorch checkpoint (it looks like a JPEG image)"),
    ("eval", "checkpoint", "empty", "an empty file (0 bytes), not a PyTorch checkpoint"),
    ("eval", "checkpoint", "truncated", "a damaged or truncated PyTorch checkpoint"),
    ("train", "load_from", "folder", "a folder, not a checkpoint file"),
    ("eval", "checkpoint", "tensor", "holds a Tensor, not a checkpoint"),
    ("train", "resume", "code", "refused: it holds pickled Python objects"),
])
def test_not_a_checkpoint(files, tiny_shapes, tmp_path, tool, key, name, message):
    arg = f"{key}={files[name]}"
    result = (train if tool == "train" else evaluate)(tiny_shapes, tmp_path, arg)
    out = assert_fails(result, arg, message)
    assert "weights_only=False" not in out and "this checkpoint ran code" not in out


# --- checkpoints of another model ---------------------------------------------------------------------

@pytest.mark.parametrize("name, extra, culprits", [
    # the weights do not fit the model of the config saved with them
    ("ssdlite_config_retina_weights", [], [
        "293 of the model's 295 tensors missing (backbone.stages.0.0.0.weight",
        "unexpected (backbone.conv1.weight", "another run's config.yaml"]),
    # the command line swapped the model of a good checkpoint
    ("ssdlite", ["model=retinanet_r18_fpn"], ["The command line changed the model (model=retinanet_r18_fpn)",
                                              "MobileNetV3-small + SSDExtraLayers + SSDLiteHead, 4 classes",
                                              "ResNet-18 + FPN + RetinaHead, 4 classes"]),
])
def test_eval_checkpoint_of_another_model(files, tiny_shapes, tmp_path, name, extra, culprits):
    arg = f"checkpoint={files[name]}"
    result = evaluate(tiny_shapes, tmp_path, arg, *extra)
    out = assert_fails(result, f"{arg}: the weights do not fit the model", *culprits)
    assert "size mismatch for" not in out and len(out) < 4000  # not load_state_dict's 22 KB


def test_eval_checkpoint_with_another_class_count(files, tiny_shapes, tmp_path):
    # ... or its class count: a head of 3 classes for 4 class names is refused with the config, before the
    # weights are loaded (config/validate.py)
    result = evaluate(tiny_shapes, tmp_path, f"checkpoint={files['ssdlite']}", "model.head.num_classes=3")
    assert_fails(result, "model.head.num_classes=3: expected 4, the number of data.class_names")


def test_resume_from_another_models_training_checkpoint(files, tiny_shapes, tmp_path):
    arg = f"resume={files['retina_training']}"
    assert_fails(train(tiny_shapes, tmp_path, arg), f"{arg}: the weights do not fit the model",
                 "The checkpoint is of ResNet-18 + FPN + RetinaHead, 4 classes, this run builds "
                 "MobileNetV3-small", "use load_from=")


def test_resume_from_weights_only(files, tiny_shapes, tmp_path):
    arg = f"resume={files['ssdlite']}"
    assert_fails(train(tiny_shapes, tmp_path, arg), f"{arg}: not a training checkpoint", "use load_from=")


def test_load_from_another_architecture_stops(files, tiny_shapes, tmp_path):
    arg = f"load_from={files['retina']}"
    out = assert_fails(train(tiny_shapes, tmp_path, arg), f"{arg}: none of the model's 195 parameters is in",
                       "The checkpoint is of ResNet-18 + FPN + RetinaHead, 4 classes, this run builds "
                       "MobileNetV3-small + SSDExtraLayers + SSDLiteHead, 4 classes")
    assert "tensors loaded" not in out and "epoch 1/" not in out  # no training from scratch


def test_load_from_a_sibling_model_warns_and_keeps_the_list_in_the_run_folder(files, tiny_shapes, tmp_path):
    arg = f"load_from={files['ssdlite_large']}"
    out = assert_warns(train(tiny_shapes, tmp_path, arg), f"{arg}: loaded 89 of the model's 195 parameters",
                       "only 46% of the parameters come from the checkpoint", "MobileNetV3-large")
    report = next((tmp_path / "outputs").rglob("load_from.txt"))
    assert "the list per tensor: " in out and "load_from.txt" in out
    table = report.read_text()
    assert "keeps its initialisation" not in out and "keeps its initialisation" in table  # file, not terminal
    assert table.count("\n") > 300


# --- results files for tools/eval.py results= ---------------------------------------------------------

def _results(files, change):
    good = files["good_entry"]
    return [good, {**good, "score": 0.25}, {**good, **change}]


@pytest.mark.parametrize("content, culprits", [
    ("[{", ["not valid JSON"]),
    ({"detections": []}, ["expected a JSON list", "got dict"]),
    ([], ["an empty list, no detection to evaluate"]),
    ("entries:[3]", ["entry 2 3: expected an object"]),
    ({"change": {"score": None}, "drop": "bbox"}, ["entry 2", "missing bbox"]),
    ({"change": {"score": "0.9"}}, ["entry 2", "score must be a number, got '0.9'"]),
    ({"change": {"bbox": [1.0, float("nan"), 3.0, 4.0]}}, ["entry 2", "found NaN or infinity"]),
    ({"change": {"bbox": [30.0, 30.0, 10.0, -5.0]}}, ["entry 2", "negative width or height"]),
    ({"change": {"image_id": 99999}}, ["entry 2", "image_id 99999 is not an image of the evaluated set"]),
    ({"change": {"category_id": 77}}, ["entry 2", "category_id 77 is not a category of the dataset; its "
                                                  "categories: 1 (circle)"]),
    ("checkpoint", ["not a JSON text file", "checkpoint=PATH"]),
])
def test_bad_results_file(files, tiny_shapes, tmp_path, content, culprits):
    path = tmp_path / "detections.json"
    if content == "checkpoint":
        path.write_bytes(files["ssdlite"].read_bytes())
    elif content == "entries:[3]":
        path.write_text(json.dumps([files["good_entry"], files["good_entry"], 3]))
    elif isinstance(content, dict) and "change" in content:
        entries = _results(files, content["change"])
        entries[2].pop(content.get("drop", "-"), None)
        path.write_text(json.dumps(entries))
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    result = evaluate(tiny_shapes, tmp_path, f"results={path}")
    assert_fails(result, path, *culprits)


@pytest.mark.parametrize("change, culprits", [
    ({"score": 7.5}, ["1 of 3 scores are outside [0, 1] (first: entry 2"]),
    ({"score": 0.5}, ["1 entry repeats an earlier one exactly (first: entry 2", "repeats entry 0"]),
])
def test_results_coco_accepts_are_evaluated_with_a_warning(files, tiny_shapes, tmp_path, change, culprits):
    path = tmp_path / "detections.json"
    path.write_text(json.dumps(_results(files, change)))
    out = assert_warns(evaluate(tiny_shapes, tmp_path, f"results={path}"), path, *culprits)
    assert "coco/AP" in out


def test_a_results_file_given_as_checkpoint(files, tiny_shapes, tmp_path):
    path = tmp_path / "detections.json"
    path.write_text(json.dumps([files["good_entry"]]))
    assert_fails(evaluate(tiny_shapes, tmp_path, f"checkpoint={path}"), f"checkpoint={path}",
                 "not a PyTorch checkpoint (it looks like a text file: JSON)", "evaluated with results=PATH")
