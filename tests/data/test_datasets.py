import json

import numpy as np
import pytest

from detframe.data import CocoDetection, VOCDetection
from detframe.data.synthetic import SHAPES_CLASSES
from detframe.errors import DatasetError

from ..conftest import RACCOON, needs_raccoon


def write_voc(root, name, objects, size=(100, 80), image=True, xml_extra=""):
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    objs = "".join(
        f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b, d in objects
    )
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height></size>" if size else ""
    (root / "Annotations" / f"{name}.xml").write_text(
        f"<annotation><filename>other.jpg</filename><path>/Users/x/{name}.jpg</path>{size_xml}{xml_extra}{objs}</annotation>")
    if image:
        import cv2

        cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), np.zeros((80, 100, 3), np.uint8))


def test_voc_one_based_inclusive_convention_and_quirks(tmp_path):
    write_voc(tmp_path, "a", [("cat", (1, 1, 10, 20), False), ("dog", ("5.5", 6, 100, 80), True), ("cat", (50, 50, 50, 60), False)])
    write_voc(tmp_path, "b", [("dog", (90, 70, 130, 95), False)], size=None)  # no <size>: read from the image
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\nb\n")
    ds = VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"])
    a, b = ds.records
    # xmin=1..xmax=10 covers 10 pixels: [0, 10); the zero-width box (50..50 -> [49, 50)) is a 1-pixel box
    np.testing.assert_allclose(a.boxes, [[0, 0, 10, 20], [4.5, 5, 100, 80], [49, 49, 50, 60]])
    assert a.labels.tolist() == [0, 1, 0] and a.ignore.tolist() == [False, True, False]
    assert (b.width, b.height) == (100, 80)
    np.testing.assert_allclose(b.boxes, [[89, 69, 100, 80]])  # clipped to the image
    sample = ds[0]
    assert sample.image.shape == (80, 100, 3) and sample.orig_size == (80, 100)
    assert len(VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"], difficult="drop").records[0].labels) == 2


def test_voc_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match=r"VOC dataset root not found: .*nowhere.*Annotations"):
        VOCDetection(str(tmp_path / "nowhere"), "train", class_names=["cat"])
    write_voc(tmp_path, "a", [("caat", (1, 1, 10, 20), False)])
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\n")
    with pytest.raises(DatasetError, match=r"a.xml: object class 'caat' is not in the config's class_names. Did you mean 'cat'"):
        VOCDetection(str(tmp_path), "train", class_names=["cat"])
    with pytest.raises(DatasetError, match=r"split list not found.*Did you mean 'train'"):
        VOCDetection(str(tmp_path), "trian", class_names=["caat"])
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><object>")
    with pytest.raises(DatasetError, match=r"cannot parse annotation file .*a.xml"):
        VOCDetection(str(tmp_path), "train", class_names=["cat"])


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


def test_coco_noncontiguous_ids_and_class_list(tmp_path, tiny_shapes):
    data = json.loads((tiny_shapes / "annotations/instances_train.json").read_text())
    remap = {1: 3, 2: 7, 3: 12, 4: 40}
    for c in data["categories"]:
        c["id"] = remap[c["id"]]
    for a in data["annotations"]:
        a["category_id"] = remap[a["category_id"]]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    ds = CocoDetection(str(path), str(tiny_shapes / "JPEGImages"))
    assert ds.category_ids == [3, 7, 12, 40]
    gt = ds.to_coco()
    assert {a["category_id"] for a in gt["annotations"]} <= {3, 7, 12, 40}
    with pytest.raises(DatasetError, match=r"categories \['star'\] have annotations but are not in the config's class_names"):
        CocoDetection(str(path), str(tiny_shapes / "JPEGImages"), class_names=["circle", "square", "triangle"])
    with pytest.raises(DatasetError, match="COCO annotation file not found"):
        CocoDetection(str(tmp_path / "none.json"), str(tmp_path))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"cannot read COCO annotation file .*bad.json"):
        CocoDetection(str(tmp_path / "bad.json"), str(tmp_path))


@needs_raccoon
def test_raccoon_reads_with_its_own_class_list():
    train = VOCDetection(str(RACCOON), "train", class_names=["raccoon"])
    val = VOCDetection(str(RACCOON), "val", class_names=["raccoon"])
    assert len(train) == 160 and len(val) == 40
    sample = val[0]
    assert sample.image.ndim == 3 and len(sample.boxes) >= 1
    h, w = sample.orig_size
    assert (sample.boxes[:, 2] <= w).all() and (sample.boxes[:, 3] <= h).all()
    with pytest.raises(DatasetError, match="'raccoon' is not in the config's class_names"):
        VOCDetection(str(RACCOON), "val", class_names=["dog"])
