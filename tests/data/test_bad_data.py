"""Bad data never trains silently: EXIF orientation, non-finite and unnormalised coordinates, sets left
without boxes, boxes dropped or clipped (named), and clean sets left exactly as they were."""
import json
import logging
import shutil
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from PIL import Image

from detframe.data import CocoDetection, VOCDetection, YOLODetection, build_dataset
from detframe.data.cache import ImageCache
from detframe.data.check import check_dataset, format_report
from detframe.data.imagefile import _jpeg_header, _pil_header, read_header
from detframe.data.synthetic import SHAPES_CLASSES
from detframe.errors import DatasetError

from ..conftest import RACCOON, compose, needs_raccoon
from .helpers import COLOURS, assert_boxes_cover_colours
from .test_datasets import write_voc, write_yolo

RECTS = [(20, 10, 90, 50), (120, 60, 180, 110)]  # x1 y1 x2 y2 in stored pixels of a 120 x 200 image


def exif_jpeg(path, orientation, pixels=None, big_endian=False, description=""):
    """A 120 x 200 (h x w) JPEG with RECTS filled in COLOURS[0], COLOURS[1] and an EXIF orientation tag
    (and an ImageDescription tag, which makes the EXIF block as long as wished)."""
    if pixels is None:
        pixels = np.zeros((120, 200, 3), np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(RECTS):
            pixels[y1:y2, x1:x2] = COLOURS[k]
    image = Image.fromarray(pixels)
    if big_endian:  # a hand-made Motorola-order block: IFD0 with the one orientation entry
        exif = (b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01"
                + orientation.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00")
    else:
        exif = image.getexif()
        exif[0x0112] = orientation
        if description:
            exif[0x010E] = description
    image.save(path, exif=exif, quality=98)


def rect_voc(root, name, size=(200, 120)):
    objects = [(cls, (x1 + 1, y1 + 1, x2, y2), False) for cls, (x1, y1, x2, y2) in zip(["cat", "dog"], RECTS)]
    write_voc(root, name, objects, size=size, image=False, filename=f"{name}.jpg", path="")
    (root / "ImageSets/Main/train.txt").write_text(f"{name}\n")


# -- EXIF orientation: stored pixel order everywhere -------------------------------------------------------

def test_header_reader_agrees_with_pil(tmp_path, tiny_shapes):
    files = sorted((tiny_shapes / "JPEGImages").glob("*.jpg"))[:4]
    for k in range(1, 9):
        exif_jpeg(tmp_path / f"o{k}.jpg", k)
        files.append(tmp_path / f"o{k}.jpg")
    exif_jpeg(tmp_path / "mm.jpg", 8, big_endian=True)
    exif_jpeg(tmp_path / "long.jpg", 3, description="x" * 40000)  # the frame header beyond the first 4 KiB
    files.append(tmp_path / "long.jpg")
    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (30, 20)).save(tmp_path / "a.bmp")
    for path in [*files, tmp_path / "mm.jpg", tmp_path / "a.png", tmp_path / "a.bmp"]:
        ours, pil = read_header(path), _pil_header(path, None)
        assert (ours.size, ours.orientation) == (pil.size, pil.orientation), path
    assert read_header(tmp_path / "mm.jpg").orientation == 8
    assert _jpeg_header((tmp_path / "long.jpg").read_bytes()) == ((120, 200), 3)  # parsed, not PIL's
    assert read_header(tmp_path / "o6.jpg").size == (120, 200)
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(OSError):
        read_header(tmp_path / "text.jpg")


@pytest.mark.parametrize("layout", ["voc", "coco"])
def test_exif_rotated_jpeg_boxes_match_the_pixels(tmp_path, layout, caplog):
    rect_voc(tmp_path, "a")
    exif_jpeg(tmp_path / "JPEGImages" / "a.jpg", 6)
    if layout == "voc":
        dataset = VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"])
    else:
        data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 120}],
                "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
                "annotations": [{"id": k + 1, "image_id": 1, "category_id": k + 1, "iscrowd": 0,
                                 "bbox": [x1, y1, x2 - x1, y2 - y1]}
                                for k, (x1, y1, x2, y2) in enumerate(RECTS)]}
        (tmp_path / "ann.json").write_text(json.dumps(data))
        dataset = CocoDetection(str(tmp_path / "ann.json"), str(tmp_path / "JPEGImages"))
    sample = dataset[0]
    assert sample.image.shape == (120, 200, 3)  # not turned to 200 x 120 as cv2.imread would
    np.testing.assert_allclose(sample.boxes, RECTS)
    assert_boxes_cover_colours(sample)
    for mode in ("ram", "disk"):  # the cache decodes by the same rule
        cache = ImageCache(mode, str(tmp_path / "cache"))
        cache.fill(dataset.records)
        np.testing.assert_array_equal(cache.get(dataset.records[0].path), sample.image)
    report = check_dataset(dataset, "data.train", "full")
    assert not report.problems and report.exif_rotated == [f"{tmp_path / 'JPEGImages' / 'a.jpg'} "
                                                           "(orientation 6: rotated 90 clockwise)"]
    assert "boxes are taken in stored pixel order" in format_report(report)


def test_start_up_warns_of_exif_tags_and_annotated_turned_size_is_an_error(tmp_path, caplog):
    rect_voc(tmp_path, "a")
    exif_jpeg(tmp_path / "JPEGImages" / "a.jpg", 6)
    (tmp_path / "ImageSets/Main/val.txt").write_text("a\n")
    cfg = compose(["data=raccoon", f"data.root={tmp_path}", "data.class_names=[cat,dog]"])
    with caplog.at_level(logging.WARNING):
        build_dataset(cfg.data, "train", None)
    assert "1 images carry an EXIF orientation tag" in caplog.text and "a.jpg (orientation 6" in caplog.text
    rect_voc(tmp_path, "a", size=(120, 200))  # the size a viewer shows: the boxes were drawn on that view
    with pytest.raises(DatasetError, match=r"a.xml: annotation says 200x120 \(h x w\), the image is 120x200 "
                                           r"\(a.jpg\).*EXIF orientation tag \(6\).*exif_transpose"):
        build_dataset(cfg.data, "train", None)


def test_a_decoded_size_that_differs_from_the_record_stops_at_load(tmp_path):
    rect_voc(tmp_path, "a")
    exif_jpeg(tmp_path / "JPEGImages" / "a.jpg", 1)
    dataset = VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"])
    cv2.imwrite(str(tmp_path / "JPEGImages" / "a.jpg"), np.zeros((50, 60, 3), np.uint8))  # changed since
    with pytest.raises(DatasetError, match=r"a.jpg decodes to 50x60 \(h x w\), but .*a.xml says 120x200"):
        dataset[0]


# -- coordinates that are not finite, labels that are not normalised ---------------------------------------

@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", ""])
def test_voc_non_finite_coordinate_names_file_and_object(tmp_path, value, caplog):
    write_voc(tmp_path, "a", [("cat", (1, 1, 10, 20), False), ("dog", (5, 5, value, 30), False)])
    write_voc(tmp_path, "b", [("cat", (1, 1, 10, 20), False)])
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\nb\n")
    with pytest.raises(DatasetError, match=rf"a.xml: object 2 \('dog'\): <xmax> '{value}' in <bndbox>, "
                                           r"expected finite numbers; fix the file, or set "
                                           r"data.on_error=skip"):
        VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"])
    with caplog.at_level(logging.WARNING):
        skipped = VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"], on_error="skip")
    assert [r.path.name for r in skipped.records] == ["b.jpg"]
    assert "skipped " in caplog.text and "a.jpg: " in caplog.text and "skipped 1 of 2 images" in caplog.text


@pytest.mark.parametrize("bbox", [[1, 2, float("nan"), 4], [1, float("inf"), 3, 4], [1, 2, "3", 4],
                                  [1, 2, 3]])
def test_coco_bad_bbox_names_file_and_annotation(tmp_path, tiny_shapes, bbox):
    data = json.loads((tiny_shapes / "annotations/instances_val.json").read_text())
    data["annotations"][2]["bbox"] = bbox
    ann_id, image_id = data["annotations"][2]["id"], data["annotations"][2]["image_id"]
    name = next(i["file_name"] for i in data["images"] if i["id"] == image_id)
    (tmp_path / "val.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=rf"val.json: annotation {ann_id} \({name}\): bbox .* is not "
                                           r"\[x, y, w, h\] of finite numbers"):
        CocoDetection(str(tmp_path / "val.json"), str(tiny_shapes / "JPEGImages"))
    skipped = CocoDetection(str(tmp_path / "val.json"), str(tiny_shapes / "JPEGImages"), on_error="skip")
    assert len(skipped) == 3 and name not in [r.path.name for r in skipped.records]
    assert all(a["image_id"] != image_id for a in skipped.to_coco()["annotations"])  # nor evaluated


def yolo_set(tmp_path, tiny_shapes):
    write_yolo(tmp_path, "val", VOCDetection(str(tiny_shapes), "val", class_names=SHAPES_CLASSES).records)
    return sorted((tmp_path / "labels" / "val").glob("*.txt"))[1]


@pytest.mark.parametrize("lines, message", [
    (["0 0.5 0.5 0.1 0.1", "2 167 242 56 60", "1 12 30 5 5"],
     r"line 2: '2 167 242 56 60' has values over 1: labels not normalised\? .*\(and 1 more lines like it\); "
     r"write the labels normalised"),
    (["0 0.5 0.5 0.1 0.1", "1 -0.2 0.5 0.1 0.1"],
     r"line 2: '1 -0.2 0.5 0.1 0.1' has values below 0: labels not"),
    (["0 0.5 nan 0.1 0.1"], r"line 1: '0 0.5 nan 0.1 0.1' holds a non-finite value"),
    (["0 0.5 0.5 inf 0.1"], r"line 1: '0 0.5 0.5 inf 0.1' holds a non-finite value"),
    (["", "1.5 0.5 0.5 0.1 0.1"], r"line 2: class id 1.5 is not an index of the config's class_names"),
    (["-1 0.5 0.5 0.1 0.1"], r"line 1: class id -1 is not an index"),
    (["cat 0.5 0.5 0.1 0.1"], r"line 1: expected 'class cx cy w h' \(5 numbers\), got 'cat 0.5 0.5 0.1 0.1'"),
    (["0 0.5 0.5 0.1 0.1 0.3"], r"line 1: expected 'class cx cy w h'"),
])
def test_yolo_bad_lines_name_file_and_line(tmp_path, tiny_shapes, lines, message):
    label = yolo_set(tmp_path, tiny_shapes)
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"{label.name} {message}"):
        YOLODetection(str(tmp_path), "images/val", class_names=SHAPES_CLASSES)
    skipped = YOLODetection(str(tmp_path), "images/val", class_names=SHAPES_CLASSES, on_error="skip")
    assert len(skipped) == 3 and label.stem not in [r.path.stem for r in skipped.records]


def test_yolo_values_rounded_just_past_the_edge_are_clipped(tmp_path, tiny_shapes):
    label = yolo_set(tmp_path, tiny_shapes)
    label.write_text("0 0.9 0.5 0.2002 0.1\n1 1.0004 0.5 0.0002 0.1\n")
    dataset = YOLODetection(str(tmp_path), "images/val", class_names=SHAPES_CLASSES)
    rec = next(r for r in dataset.records if r.path.stem == label.stem)
    assert len(rec.boxes) == 1 and rec.boxes[0, 2] == rec.width
    assert dataset.quirks.examples["boxes clipped to the image"] == [f"labels/val/{label.name} line 1"]


# -- splits left without a box -------------------------------------------------------------------------------

def coco_copy(tmp_path, tiny_shapes, split, edit):
    root = tmp_path / "set"
    shutil.copytree(tiny_shapes, root)
    path = root / "annotations" / f"instances_{split}.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return compose([f"data.root={root}"]), path


@pytest.mark.parametrize("split, edit, reason", [
    ("val", lambda d: d.pop("annotations"), "the file has no 'annotations' key"),
    ("val", lambda d: d.update(annotations=[]), "its 'annotations' list is empty"),
    ("train", lambda d: [a.update(iscrowd=1) for a in d["annotations"]],
     "its 30 annotations are all crowd regions"),
    ("val", lambda d: [a.update(bbox=[5000, 5000, 9, 9]) for a in d["annotations"]],
     "every box was dropped on reading: 8 boxes outside the image dropped"),
    ("val", lambda d: [a.update(bbox=[5, 5, 0, 9]) for a in d["annotations"]],
     "every box was dropped on reading: 8 degenerate boxes"),
])
def test_a_split_without_boxes_is_an_error_naming_file_and_reason(tmp_path, tiny_shapes, split, edit, reason):
    cfg, path = coco_copy(tmp_path, tiny_shapes, split, edit)
    use = "train on" if split == "train" else "evaluate"
    with pytest.raises(DatasetError, match=rf"data.{split}: {path} has no boxes to {use}: {reason}"):
        build_dataset(cfg.data, split, None)
    cfg.data.on_error = "skip"  # no policy trains on nothing
    with pytest.raises(DatasetError, match="has no boxes"):
        build_dataset(cfg.data, split, None)


def test_some_images_without_boxes_are_fine_and_all_skipped_is_said(tmp_path, tiny_shapes):
    images = sorted(json.loads((tiny_shapes / "annotations/instances_val.json").read_text())["images"],
                    key=lambda i: i["id"])
    cfg, path = coco_copy(tmp_path, tiny_shapes, "val", lambda d: d.update(
        annotations=[a for a in d["annotations"] if a["image_id"] != images[0]["id"]]))
    assert len(build_dataset(cfg.data, "val", None)) == 4
    for image in images:
        (path.parent.parent / "JPEGImages" / image["file_name"]).write_bytes(b"")
    cfg.data.on_error = "skip"
    with pytest.raises(DatasetError, match=r"has no boxes to evaluate: 4 of its 4 images were skipped"):
        build_dataset(cfg.data, "val", None)


def test_voc_all_difficult_says_how_to_count_them(tmp_path):
    write_voc(tmp_path, "a", [("cat", (1, 1, 10, 20), True)])
    (tmp_path / "ImageSets/Main/val.txt").write_text("a\n")
    cfg = compose(["data=raccoon", f"data.root={tmp_path}", "data.class_names=[cat]"])
    with pytest.raises(DatasetError, match=r"val.txt has no boxes to evaluate: its 1 boxes are all ignored "
                                           r"regions \(difficult objects; VOCDetection's difficult=positive"):
        build_dataset(cfg.data, "val", None)


# -- boxes dropped or clipped are named; the skip summary counts what is kept -------------------------------

def test_dropped_and_clipped_boxes_name_their_first_files(tmp_path, caplog):
    for name in "abcde":
        write_voc(tmp_path, name, [("cat", (1, 1, 10, 20), False), ("cat", (6, 5, 5, 9), False),
                                   ("cat", (90, 70, 130, 95), False), ("cat", (200, 200, 210, 210), False)])
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\nb\nc\nd\ne\n")
    with caplog.at_level(logging.WARNING):
        dataset = VOCDetection(str(tmp_path), "train", class_names=["cat"])
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.endswith("5 degenerate boxes (no area) dropped: a.xml (object 2 'cat'), "
                             "b.xml (object 2 'cat'), c.xml (object 2 'cat'), ...") for line in lines), lines
    assert any("5 boxes outside the image dropped: a.xml (object 4 'cat')" in line for line in lines)
    assert any("5 boxes clipped to the image: a.xml (object 3 'cat')" in line for line in lines)
    assert sum(len(r.boxes) for r in dataset.records) == 10
    text = format_report(check_dataset(dataset, "data.train", "quick"))
    assert "warning: 5 boxes clipped to the image: a.xml (object 3 'cat'), b.xml" in text


# -- clean sets: no problem, no warning, every box kept ------------------------------------------------------

def objects_in(xml_files):
    return sum(len(ET.parse(x).getroot().findall("object")) for x in xml_files)


def assert_clean(dataset, boxes):
    report = check_dataset(dataset, "data.x", "full")
    assert not report.problems and not report.exif_rotated and not report.size_mismatch
    assert not report.box_warnings and report.no_boxes is None
    assert sum(len(r.boxes) for r in dataset.records) == boxes


def test_clean_shapes_set_reports_nothing_and_keeps_every_box(tmp_path, tiny_shapes):
    for split in ("train", "val"):
        voc = VOCDetection(str(tiny_shapes), split, class_names=SHAPES_CLASSES)
        names = (tiny_shapes / "ImageSets/Main" / f"{split}.txt").read_text().split()
        assert_clean(voc, objects_in(tiny_shapes / "Annotations" / f"{n}.xml" for n in names))
        ann = tiny_shapes / f"annotations/instances_{split}.json"
        coco = CocoDetection(str(ann), str(tiny_shapes / "JPEGImages"))
        assert_clean(coco, len(json.loads(ann.read_text())["annotations"]))
        write_yolo(tmp_path, split, voc.records)
        yolo = YOLODetection(str(tmp_path), f"images/{split}", class_names=SHAPES_CLASSES)
        assert_clean(yolo, sum(len(r.boxes) for r in voc.records))


@needs_raccoon
def test_raccoon_reports_nothing_and_keeps_every_box():
    for split in ("train", "val"):
        dataset = VOCDetection(str(RACCOON), split, class_names=["raccoon"])
        names = (RACCOON / "ImageSets/Main" / f"{split}.txt").read_text().split()
        assert_clean(dataset, objects_in(RACCOON / "Annotations" / f"{n}.xml" for n in names))
        assert set(dataset.quirks.counts) == {"foreign <path> (ignored)"}
