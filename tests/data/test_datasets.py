import json
import logging

import cv2
import numpy as np
import pytest

from detframe.data import (
    CocoDetection,
    ConcatDataset,
    RepeatDataset,
    VOCDetection,
    YOLODetection,
    build_dataset,
)
from detframe.data.synthetic import SHAPES_CLASSES
from detframe.errors import DatasetError

from ..conftest import RACCOON, compose, needs_raccoon


def write_voc(root, name, objects, size=(100, 80), image=True, xml_extra="", filename="other.jpg", path=None):
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    objs = "".join(
        f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b, d in objects
    )
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height></size>" if size else ""
    path = f"/Users/x/{name}.jpg" if path is None else path
    (root / "Annotations" / f"{name}.xml").write_text(
        f"<annotation><filename>{filename}</filename><path>{path}</path>{size_xml}{xml_extra}{objs}</annotation>")
    if image:
        cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), np.zeros((80, 100, 3), np.uint8))


def test_voc_one_based_inclusive_convention_and_quirks_counted(tmp_path, caplog):
    write_voc(tmp_path, "a", [("cat", (1, 1, 10, 20), False), ("dog", ("5.5", 6, 100, 80), True),
                              ("cat", (50, 50, 50, 60), False), ("cat", (30, 30, 20, 40), False),
                              ("cat", (120, 90, 130, 95), False)])
    write_voc(tmp_path, "b", [("dog", (90, 70, 130, 95), False)], size=None,  # no <size>
              filename="b.jpg", path="")
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\nb\n")
    with caplog.at_level(logging.INFO):
        ds = VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"])
    a, b = ds.records
    # xmin=1..xmax=10 covers 10 pixels: [0, 10); the zero-width box (50..50 -> [49, 50)) is a 1-pixel box
    np.testing.assert_allclose(a.boxes, [[0, 0, 10, 20], [4.5, 5, 100, 80], [49, 49, 50, 60]])
    assert a.labels.tolist() == [0, 1, 0] and a.ignore.tolist() == [False, True, False]
    assert (b.width, b.height) == (100, 80)
    np.testing.assert_allclose(b.boxes, [[89, 69, 100, 80]])  # clipped to the image
    assert dict(ds.quirks.counts) == {
        "<filename> differs from the file name (ignored)": 1, "foreign <path> (ignored)": 1,
        "boxes with float coordinates": 1, "degenerate boxes (no area) dropped": 1,
        "boxes outside the image dropped": 1, "<size> missing (read from the image)": 1,
        "boxes clipped to the image": 1,
    }
    reports = [r.getMessage() for r in caplog.records if "fixed on reading" in r.getMessage()]
    assert len(reports) == 1 and "1 degenerate boxes (no area) dropped" in reports[0]  # reported once
    sample = ds[0]
    assert sample.image.shape == (80, 100, 3) and sample.orig_size == (80, 100)
    assert VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"],
                        difficult="drop").records[0].labels.tolist() == [0, 0]
    positive = VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"],
                            difficult="positive").records[0]
    assert positive.ignore.tolist() == [False, False, False]


def test_voc_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match=r"VOC dataset root not found: .*nowhere.*Annotations"):
        VOCDetection(str(tmp_path / "nowhere"), "train", class_names=["cat"])
    write_voc(tmp_path, "a", [("caat", (1, 1, 10, 20), False)])
    write_voc(tmp_path, "b", [("cat", (1, 1, 10, 20), False), ("dgo", (1, 1, 10, 20), False)])
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\nb\n")
    with pytest.raises(DatasetError, match=r"a.xml: object class 'caat' is not in the config's class_names. "
                                           r"Did you mean 'cat'.*"
                                           r"and 1 more problems in 2 files"):
        VOCDetection(str(tmp_path), "train", class_names=["cat"])
    collected = VOCDetection(str(tmp_path), "train", class_names=["cat"], on_error="collect")
    assert [(p.kind, p.detail) for p in collected.problems] == [("unknown_class", "caat"),
                                                                 ("unknown_class", "dgo")]
    with pytest.raises(DatasetError, match=r"split list not found.*Did you mean 'train'"):
        VOCDetection(str(tmp_path), "trian", class_names=["caat"])
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><object>")
    with pytest.raises(DatasetError, match=r"cannot parse annotation file .*a.xml"):
        VOCDetection(str(tmp_path), "train", class_names=["cat", "dgo"])


def test_skip_policy_drops_and_names_each_file(tmp_path, caplog):
    write_voc(tmp_path, "a", [("caat", (1, 1, 10, 20), False)])
    write_voc(tmp_path, "b", [("cat", (1, 1, 10, 20), False)])
    (tmp_path / "Annotations" / "c.xml").write_text("<annotation><object>")
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\nb\nc\n")
    with caplog.at_level(logging.WARNING):
        ds = VOCDetection(str(tmp_path), "train", class_names=["cat"], on_error="skip")
    assert [r.path.stem for r in ds.records] == ["b"]
    text = caplog.text
    assert "a.jpg: " in text and "'caat'" in text
    # c's record was never made (its XML does not parse): it still counts among the images skipped
    assert "c.jpg: cannot parse" in text and "skipped 2 of 3 images for bad input, kept 1" in text


def test_unreadable_image_names_the_file(tmp_path):
    write_voc(tmp_path, "a", [("cat", (1, 1, 10, 20), False)])
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\n")
    (tmp_path / "JPEGImages" / "a.jpg").write_bytes(b"not a jpeg")
    ds = VOCDetection(str(tmp_path), "train", class_names=["cat"])
    with pytest.raises(DatasetError, match=r"cannot decode image file .*a.jpg"):
        ds[0]


def test_shapes_layouts_agree(tiny_shapes):
    voc = VOCDetection(str(tiny_shapes), "val", class_names=SHAPES_CLASSES)
    coco = CocoDetection(str(tiny_shapes / "annotations/instances_val.json"), str(tiny_shapes / "JPEGImages"))
    assert coco.class_names == list(SHAPES_CLASSES) and len(voc) == len(coco) == 4
    for v, c in zip(voc.records, coco.records):
        assert v.path == c.path and (v.height, v.width) == (c.height, c.width)
        np.testing.assert_allclose(v.boxes, c.boxes)
        assert v.labels.tolist() == c.labels.tolist()


def write_yolo(root, split, records, class_offset=0):
    """The records of a reader written out in the YOLO txt layout (normalised cx cy w h)."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for rec in records:
        (root / "images" / split / rec.path.name).write_bytes(rec.path.read_bytes())
        b = rec.boxes.astype(np.float64)
        cx, cy = (b[:, 0] + b[:, 2]) / 2 / rec.width, (b[:, 1] + b[:, 3]) / 2 / rec.height
        w, h = (b[:, 2] - b[:, 0]) / rec.width, (b[:, 3] - b[:, 1]) / rec.height
        lines = [f"{c + class_offset} {x:.6f} {y:.6f} {ww:.6f} {hh:.6f}"
                 for c, x, y, ww, hh in zip(rec.labels, cx, cy, w, h)]
        (root / "labels" / split / f"{rec.path.stem}.txt").write_text("\n".join(lines) + "\n")


def test_yolo_reader_matches_the_voc_reader(tmp_path, tiny_shapes):
    voc = VOCDetection(str(tiny_shapes), "val", class_names=SHAPES_CLASSES)
    write_yolo(tmp_path, "val", voc.records)
    yolo = YOLODetection(str(tmp_path), "images/val", class_names=SHAPES_CLASSES)
    assert len(yolo) == len(voc)
    for v, y in zip(voc.records, yolo.records):
        assert (v.height, v.width) == (y.height, y.width) and v.labels.tolist() == y.labels.tolist()
        np.testing.assert_allclose(y.boxes, v.boxes, atol=2e-3)
    # a polygon line gives its bounding box; an empty label file is an image without objects
    label = tmp_path / "labels" / "val" / f"{voc.records[0].path.stem}.txt"
    label.write_text("1 0.1 0.2 0.3 0.2 0.2 0.5\n")
    (tmp_path / "labels" / "val" / f"{voc.records[1].path.stem}.txt").write_text("")
    yolo = YOLODetection(str(tmp_path), "images/val", class_names=SHAPES_CLASSES)
    w, h = yolo.records[0].width, yolo.records[0].height
    np.testing.assert_allclose(yolo.records[0].boxes, [[0.1 * w, 0.2 * h, 0.3 * w, 0.5 * h]], rtol=1e-5)
    assert len(yolo.records[1].boxes) == 0
    assert yolo.quirks.counts["polygon labels (their bounding box used)"] == 1
    label.write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError,
                       match=r"class id 7 is not an index of the config's class_names \(4 names"):
        YOLODetection(str(tmp_path), "images/val", class_names=SHAPES_CLASSES)
    label.write_text("1 0.5 0.5\n")
    with pytest.raises(DatasetError, match=r"line 1: expected 'class cx cy w h'"):
        YOLODetection(str(tmp_path), "images/val", class_names=SHAPES_CLASSES)


def test_coco_noncontiguous_ids_crowd_and_empty_images(tmp_path, tiny_shapes):
    data = json.loads((tiny_shapes / "annotations/instances_train.json").read_text())
    remap = {1: 3, 2: 7, 3: 12, 4: 40}
    for c in data["categories"]:
        c["id"] = remap[c["id"]]
    for a in data["annotations"]:
        a["category_id"] = remap[a["category_id"]]
    data["annotations"][0]["iscrowd"] = 1
    first_image = data["annotations"][0]["image_id"]
    emptied = data["images"][-1]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != emptied]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    ds = CocoDetection(str(path), str(tiny_shapes / "JPEGImages"))
    assert ds.category_ids == [3, 7, 12, 40] and len(ds) == 8
    rec = next(r for r in ds.records if r.image_id == first_image)
    assert rec.ignore[0] and not rec.ignore[1:].any()
    gt = ds.to_coco()
    assert {a["category_id"] for a in gt["annotations"]} <= {3, 7, 12, 40} and len(gt["images"]) == 8
    with_boxes = {a["image_id"] for a in data["annotations"] if not a.get("iscrowd")}
    assert len(with_boxes) < 8
    assert len(CocoDetection(str(path), str(tiny_shapes / "JPEGImages"),
                             filter_empty=True)) == len(with_boxes)
    with pytest.raises(DatasetError, match=r"categories \['star'\] have annotations "
                                           r"but are not in the config's class_names"):
        CocoDetection(str(path), str(tiny_shapes / "JPEGImages"),
                      class_names=["circle", "square", "triangle"])
    skipped = CocoDetection(str(path), str(tiny_shapes / "JPEGImages"),
                            class_names=["circle", "square", "triangle"], on_error="skip")
    assert all(3 not in r.labels for r in skipped.records) and 0 < len(skipped) < 8
    with pytest.raises(DatasetError, match="COCO annotation file not found"):
        CocoDetection(str(tmp_path / "none.json"), str(tmp_path))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"cannot read COCO annotation file .*bad.json"):
        CocoDetection(str(tmp_path / "bad.json"), str(tmp_path))


def test_voc0712_concatenation_and_repetition_from_config(tmp_path, tiny_shapes):
    for year in ("VOC2007", "VOC2012"):
        (tmp_path / year).symlink_to(tiny_shapes, target_is_directory=True)
    cfg = compose(["data=voc0712", f"data.root={tmp_path}", "data.class_names=[circle,square,triangle,star]",
                   "data.train.datasets.0.split=train", "data.train.datasets.1.split=val",
                   "data.val.split=val"])
    train = build_dataset(cfg.data, "train", None)
    assert isinstance(train, ConcatDataset) and len(train) == 12
    assert sorted(r.image_id for r in train.records) == list(range(12))  # both lists start at 0: renumbered
    assert len(train.to_coco()["images"]) == 12
    cfg = compose(["data=shapes_voc", f"data.root={tiny_shapes}"])
    cfg.data.train = {"type": "RepeatDataset", "times": 3,
                      "dataset": {"type": "VOCDetection", "root": "${data.root}", "split": "val"}}
    repeated = build_dataset(cfg.data, "train", cfg.pipeline.train)
    assert isinstance(repeated, RepeatDataset) and len(repeated) == 12
    assert repeated.load_sample(5).image_id == repeated.load_sample(1).image_id
    assert len(repeated.to_coco()["images"]) == 4


@needs_raccoon
def test_raccoon_reads_with_its_own_class_list():
    train = VOCDetection(str(RACCOON), "train", class_names=["raccoon"])
    val = VOCDetection(str(RACCOON), "val", class_names=["raccoon"])
    assert len(train) == 160 and len(val) == 40
    assert train.quirks.counts["foreign <path> (ignored)"] == 160  # its XML name the author's machine
    sample = val[0]
    assert sample.image.ndim == 3 and len(sample.boxes) >= 1
    h, w = sample.orig_size
    assert (sample.boxes[:, 2] <= w).all() and (sample.boxes[:, 3] <= h).all()
    with pytest.raises(DatasetError, match="'raccoon' is not in the config's class_names"):
        VOCDetection(str(RACCOON), "val", class_names=["dog"])
