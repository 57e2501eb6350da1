"""tools/predict.py and the Python API (`from detframe import Detector`): the same detections as
tools/eval.py on the val images, every kind of source, the arguments that change what is kept."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ..badinput.helpers import assert_fails, run_main
from ..conftest import FAST, compose

# Two SGD steps leave SSDLite's class scores between 0.0025 and 0.0028 (the background prior is 0.99): a
# trained threshold among them lets a test lower and raise it.
SMALL = ["pipeline.size=96", "model.head.score_threshold=0.0026"]


@pytest.fixture(scope="module")
def checkpoint(tiny_shapes, tmp_path_factory) -> Path:
    """SSDLite trained two SGD steps on the tiny set (weights that are not the initial ones), saved as the
    runner saves a checkpoint, in a run folder: <run>/checkpoints/last.pt with the config inside."""
    from detframe.data import build_dataset
    from detframe.data.collate import Collate
    from detframe.engine import save_checkpoint
    from detframe.models import build_detector

    cfg = compose([f"data.root={tiny_shapes}", *FAST, *SMALL])
    torch.manual_seed(0)
    model = build_detector(cfg.model)
    dataset = build_dataset(cfg.data, "train", cfg.pipeline.val)
    batch = Collate(cfg.data.size_divisor)([dataset[i] for i in range(4)])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        sum(model.loss(batch).values()).backward()
        optimizer.step()
    state = {"model": model.state_dict(), "config": OmegaConf.to_yaml(cfg, resolve=True)}
    return save_checkpoint(state, tmp_path_factory.mktemp("run") / "checkpoints" / "last.pt")


@pytest.fixture(scope="module")
def detector(checkpoint):
    from detframe import Detector

    return Detector.from_checkpoint(checkpoint, device="cpu", batch_size=4)


def val_files(tiny_shapes: Path) -> list[Path]:
    gt = json.loads((tiny_shapes / "annotations" / "instances_val.json").read_text())
    return [tiny_shapes / "JPEGImages" / im["file_name"] for im in gt["images"]]


@pytest.mark.slow  # through the command-line tool
def test_predictions_equal_evaluation(tiny_shapes, checkpoint, tmp_path):
    """predictions.json on the val images (a .txt list of them) = eval's detections.json, entry for entry."""
    result = run_main("eval", [f"checkpoint={checkpoint}", "plots=false", "save_results=true",
                               f"out={tmp_path / 'eval'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    files = val_files(tiny_shapes)
    (tmp_path / "val.txt").write_text("".join(f"{f}\n" for f in files))
    result = run_main("predict", [f"checkpoint={checkpoint}", f"source={tmp_path / 'val.txt'}",
                                  "batch_size=4", f"out={tmp_path / 'pred'}", "save_images=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"predicted {len(files)} images" in result.stdout

    gt = json.loads((tiny_shapes / "annotations" / "instances_val.json").read_text())
    image_id = {im["file_name"]: im["id"] for im in gt["images"]}
    category_id = {c["name"]: c["id"] for c in gt["categories"]}
    evaluated = json.loads((tmp_path / "eval" / "detections.json").read_text())
    predicted = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(predicted) == len(evaluated) > 0
    for e, p in zip(evaluated, predicted):
        assert e["image_id"] == image_id[Path(p["file_name"]).name]
        assert e["category_id"] == category_id[p["category_name"]]
        assert np.allclose(e["bbox"], p["bbox"], atol=1e-4) and abs(e["score"] - p["score"]) < 1e-6
        x, y, w, h = p["bbox"]
        assert np.allclose(p["bbox_xyxy"], [x, y, x + w, y + h], atol=1e-4)


def same_detections(a, b) -> None:
    """Equal detections up to the order of near-ties: the scores agree, and the boxes and labels of the
    detections clear of the lowest kept score agree as sets (batching changes scores by ~1e-9, which can
    swap two tied detections at the cut of max_detections)."""
    assert len(a) == len(b)
    assert np.allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-6)
    cut = max(a.scores.min(initial=0), b.scores.min(initial=0)) + 1e-6

    def rows(p):
        keep = p.scores > cut
        return sorted(map(tuple, np.c_[p.labels[keep], np.round(p.boxes[keep], 3)].tolist()))

    assert np.allclose(rows(a), rows(b), atol=2e-3)


def test_api_path_array_pil_list_and_batch_size(detector, tiny_shapes):
    from PIL import Image

    path = val_files(tiny_shapes)[0]
    from_path = detector(path)
    array = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    from_array, from_pil = detector([array, Image.open(path)])
    assert len(from_path) > 0 and from_path.source == str(path) and from_path.image_size == array.shape[:2]
    # The same pixels in any form: identical inside one batch; across batch sizes equal up to the last bits
    # (oneDNN picks its convolution kernel by batch size on some CPUs).
    assert np.array_equal(from_array.boxes, from_pil.boxes)
    assert np.array_equal(from_array.scores, from_pil.scores)
    same_detections(from_array, from_path)
    h, w = array.shape[:2]
    assert (from_path.boxes[:, 2] <= w).all() and (from_path.boxes[:, 3] <= h).all()  # original pixels
    assert from_path.class_names == [detector.class_names[i] for i in from_path.labels]

    files = val_files(tiny_shapes)
    for one, four in zip(detector(files, batch_size=1), detector(files, batch_size=4)):
        same_detections(one, four)

    drawn = from_path.draw()
    assert drawn.shape == array.shape and drawn.dtype == np.uint8 and not np.array_equal(drawn, array)
    entry = json.loads(json.dumps(from_path.to_json()))
    assert entry["height"] == h and len(entry["detections"]) == len(from_path)
    assert set(entry["detections"][0]) == {"label", "class_name", "score", "bbox", "bbox_xyxy"}


def test_api_refuses_what_is_no_image(detector, tmp_path):
    from detframe.errors import UserError

    with pytest.raises(UserError, match="uint8 RGB"):
        detector(np.zeros((8, 8), np.float32))
    with pytest.raises(UserError, match="cannot predict on a int"):
        detector(3)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="cannot decode image file .*broken.jpg"):
        detector(tmp_path / "broken.jpg")
    assert detector([]) == []


def test_import_detframe_stays_light():
    """`detframe.Detector` is imported on first use: `import detframe` loads neither torch nor the API."""
    from detframe import Detector
    from detframe.models.detectors.base import Detector as Model

    code = "import sys, detframe; assert not {'torch', 'detframe.inference'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    assert Detector.__module__ == "detframe.inference.predictor" and Detector is not Model


def test_threshold_max_detections_classes_and_size(checkpoint, tiny_shapes):
    """A score threshold below the trained one lowers the model's own (more detections), above it
    filters; max_detections caps; classes keeps the named ones; size changes the input, not the pixels."""
    from detframe import Detector

    path = val_files(tiny_shapes)[0]
    trained = OmegaConf.create(torch.load(checkpoint, weights_only=True)["config"]).model.head.score_threshold
    base = Detector.from_checkpoint(checkpoint, "cpu", max_detections=1000)(path)
    lower = Detector.from_checkpoint(checkpoint, "cpu", max_detections=1000,
                                     score_threshold=trained / 10)(path)
    assert len(lower) > len(base) and lower.scores.min() <= trained
    higher = Detector.from_checkpoint(checkpoint, "cpu", score_threshold=float(np.median(base.scores)))(path)
    assert 0 < len(higher) < len(base)
    only = Detector.from_checkpoint(checkpoint, "cpu", classes=["circle", 3], max_detections=3)(path)
    assert set(only.class_names) <= {"circle", "star"} and len(only) == 3
    small = Detector.from_checkpoint(checkpoint, "cpu", size=64)
    assert small.config.pipeline.val[0].size == 64
    h, w = cv2.imread(str(path)).shape[:2]
    boxes = small(path).boxes
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()


def test_onnx_without_onnx_installed(tmp_path, monkeypatch):
    # onnx and onnxruntime are an extra (`detframe[export]`): without them an .onnx model is one line
    # saying how to install them
    from detframe import Detector
    from detframe.errors import UserError

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07")
    with pytest.raises(UserError, match=r"onnx(runtime)? is not installed.*pip install 'detframe\[export\]'"):
        Detector.from_checkpoint(model)


@pytest.mark.slow  # through the command-line tool
def test_video_gives_an_mp4_and_frames_in_the_json(checkpoint, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 64))
    for i in range(5):
        frame = np.full((64, 96, 3), 40, np.uint8)
        cv2.rectangle(frame, (10 + 5 * i, 10), (50 + 5 * i, 50), (0, 200, 255), -1)
        writer.write(frame)
    writer.release()
    result = run_main("predict", [f"checkpoint={checkpoint}", f"source={video}", f"out={tmp_path / 'out'}",
                                  "max_detections=4"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "predicted 5 frames" in result.stdout
    drawn = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert drawn.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and drawn.get(cv2.CAP_PROP_FRAME_WIDTH) == 96
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted({e["frame"] for e in entries}) == [0, 1, 2, 3, 4] and len(entries) == 20


@pytest.mark.slow  # through the command-line tool
def test_folder_with_a_broken_file_warns_and_goes_on(checkpoint, tiny_shapes, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    files = val_files(tiny_shapes)
    for f in files[:2]:
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "sub" / files[2].name).write_bytes(files[2].read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.md").write_text("not an image\n")
    out = tmp_path / "out"
    result = run_main("predict", [f"checkpoint={checkpoint}", f"source={folder}", "recursive=true",
                                  f"out={out}", "save_txt=true", "save_per_image_json=true"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "broken.jpg" in result.stderr and "notes.md" in result.stderr  # the tool's warnings
    assert "predicted 3 images (skipped: 1 unreadable, 1 not images by their suffix)" in result.stdout
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {
        "predictions.json", *(f"{kind}/{name}" for kind, suffix in (("images", ".jpg"), ("labels", ".txt"),
                                                                    ("json", ".json"))
                              for name in (Path(files[0].name).with_suffix(suffix).as_posix(),
                                           Path(files[1].name).with_suffix(suffix).as_posix(),
                                           f"sub/{Path(files[2].name).stem}{suffix}"))}
    line = (out / "labels" / Path(files[0].name).with_suffix(".txt")).read_text().splitlines()[0].split()
    assert len(line) == 6 and all(0 <= float(v) <= 1 for v in line[1:])


@pytest.mark.slow  # through the command-line tool
@pytest.mark.parametrize("source,says", [
    ("empty", "the folder holds no image file"),
    ("missing", "no such file or folder"),
    ("*.png", "the pattern matches no image file"),
    ("empty.txt", "the list names no existing image file"),
])
def test_empty_or_missing_source_is_an_error(checkpoint, tmp_path, source, says):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty.txt").write_text("# nothing\n")
    result = run_main("predict", [f"checkpoint={checkpoint}", f"source={tmp_path / source}"], tmp_path)
    assert_fails(result, f"source={tmp_path / source}", says)


@pytest.mark.slow  # through the command-line tool
def test_unknown_class_lists_the_names(checkpoint, tiny_shapes, tmp_path):
    result = run_main("predict", [f"checkpoint={checkpoint}", f"source={val_files(tiny_shapes)[0]}",
                                  "classes=[circle,dog]"], tmp_path)
    assert_fails(result, "classes: unknown class 'dog'", "circle, square, triangle, star")


def test_a_tag_at_the_right_edge_stays_inside_the_image():
    from detframe.vis import draw_detections
    from detframe.vis.draw import class_colours

    image = np.zeros((100, 200, 3), np.uint8)
    drawn = draw_detections(image, np.array([[180.0, 40.0, 199.0, 90.0]]), np.array([0]), ["raccoon 0.99"])
    colour = np.array(class_colours(1)[0], np.uint8)
    tag = np.where((drawn[:40] == colour).all(-1))  # the tag's fill, above the box
    assert tag[1].size > 0 and tag[1].max() <= 199
    assert tag[1].min() < 170  # moved left of the box (x 180) to fit its text, not cut at the edge
