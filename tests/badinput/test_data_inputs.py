"""The bad-input catalogue, data part: bad datasets in the three layouts (VOC XML, COCO JSON, YOLO txt),
each given to a real tool in a subprocess as a user would. Each case asserts the exit status, that the
message names the culprit (file, and object, annotation id or line) and how to go on, and that no
traceback is printed. Errors stop a tool with status 2 (train, browse, eval) or 1 (check_dataset's
report); warnings let it finish with 0."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from ..data.test_datasets import write_yolo
from .helpers import TINY_TRAIN, assert_fails, run_main

pytestmark = pytest.mark.slow  # 33 runs of a tool (in this process), 1-3 s each

SKIP = "data.on_error=skip"
LAYOUT_ARGS = {
    "coco": ["data=shapes"],
    "voc": ["data=shapes_voc"],
    "yolo": ["data=yolo_txt", "data.class_names=[circle,square,triangle,star]",
             "data.train.images=images/train", "data.val.images=images/val"],
}
# The tiny set: train images 000000-000007, val images 000008-000011 (COCO ids 9-12; annotations 1-2 are
# those of 000008, annotation 4 is on 000009, which is 248 x 264 (h x w)).


@pytest.fixture(scope="module")
def tiny_sets(tiny_shapes, tmp_path_factory) -> dict[str, Path]:
    """The tiny shapes set in each layout (COCO and VOC share a folder)."""
    from detframe.data import VOCDetection
    from detframe.data.synthetic import SHAPES_CLASSES

    yolo = tmp_path_factory.mktemp("yolo")
    for split in ("train", "val"):
        write_yolo(yolo, split, VOCDetection(str(tiny_shapes), split, class_names=SHAPES_CLASSES).records)
    return {"coco": tiny_shapes, "voc": tiny_shapes, "yolo": yolo}


# -- how each bad set is made from a copy of the tiny one ------------------------------------------------

def set_tag(path: Path, tag: str, value: str) -> None:
    """Set the text of the first <tag> of an XML file."""
    path.write_text(re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", path.read_text(), count=1))


def edit_json(root: Path, split: str, edit) -> None:
    path = root / "annotations" / f"instances_{split}.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def xml(root: Path, stem: str = "000008") -> Path:
    return root / "Annotations" / f"{stem}.xml"


def jpeg(root: Path, stem: str = "000009") -> Path:
    return root / "JPEGImages" / f"{stem}.jpg"


def labels(split: str, stem: str, *lines: str):
    """Write the label file of image `stem` of `split` (a YOLO set)."""
    return lambda root: (root / "labels" / split / f"{stem}.txt").write_text("".join(f"{x}\n" for x in lines))


def exif_tag(path: Path, turn: bool) -> None:
    """Give a JPEG an EXIF orientation tag 6; with `turn`, store its pixels turned (a camera's way)."""
    image = Image.open(path)
    image = image.transpose(Image.Transpose.ROTATE_90) if turn else image.copy()
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif, quality=95)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def first_bbox(value):
    return lambda d: d["annotations"][1]["bbox"].__setitem__(2, value)


def set_all(key, value):
    return lambda d: [a.__setitem__(key, value) for a in d["annotations"]]


def empty_labels(root: Path) -> None:
    for path in (root / "labels" / "val").glob("*.txt"):
        path.write_text("")


def skip_two(root: Path) -> None:
    jpeg(root, "000009").unlink()
    xml(root, "000010").write_text("<annotation><object>")


def all_difficult(root: Path) -> None:
    for path in (root / "Annotations").glob("*.xml"):
        path.write_text(path.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>"))


MASKS = "data.with_masks=true"
MASK_MODEL = ["custom_imports=[tests.badinput.mask_model]", "model.type=MaskNeedingDetector"]


def set_segmentation(index, value):
    return lambda d: d["annotations"][index].__setitem__("segmentation", value)


def drop_segmentations(data):
    for a in data["annotations"]:
        a.pop("segmentation", None)


# id, layout, how to break it, tool, extra arguments, exit status, what the output must name
CASES = [
    # VOC XML
    ("voc-nan-coordinate", "voc", lambda r: set_tag(xml(r), "xmax", "NaN"),
     "train", [], 2, ["000008.xml", "object 1 ('triangle')", "<xmax> 'NaN'", SKIP]),
    ("voc-inf-coordinate", "voc", lambda r: set_tag(xml(r, "000001"), "ymax", "inf"),
     "check_dataset", [], 1, ["000001.xml", "object 1", "'inf", SKIP]),
    ("voc-empty-coordinate", "voc", lambda r: set_tag(xml(r), "ymin", ""),
     "browse_dataset", ["split=val"], 2, ["000008.xml", "object 1 ('triangle')", "<ymin> ''"]),
    ("voc-not-xml", "voc", lambda r: xml(r, "000002").write_text("just text, no XML"),
     "train", [], 2, ["cannot parse annotation file", "000002.xml", SKIP]),
    ("voc-annotation-is-a-folder", "voc", lambda r: (xml(r, "000005").unlink(), xml(r, "000005").mkdir()),
     "train", [], 2, ["cannot parse annotation file", "000005.xml", SKIP]),
    ("voc-split-list-not-text", "voc", lambda r: (r / "ImageSets/Main/val.txt").write_bytes(b"\xff\xfe\x81"),
     "check_dataset", [], 2, ["cannot read the split list", "val.txt"]),
    ("voc-unknown-class", "voc", lambda r: set_tag(xml(r, "000003"), "name", "circel"),
     "train", [], 2, ["000003.xml", "'circel'", "Did you mean 'circle'", "data.class_names"]),
    ("voc-missing-image", "voc", lambda r: jpeg(r, "000004").unlink(),
     "train", [], 2, ["image file not found", "000004.jpg", "000004.xml", SKIP]),
    ("voc-size-mismatch", "voc", lambda r: set_tag(xml(r), "width", "310"),
     "check_dataset", [], 1, ["000008.xml", "annotation says 357x310 (h x w), the image is 357x275"]),
    ("voc-exif-turned-view", "voc", lambda r: exif_tag(jpeg(r), turn=True),
     "train", [], 2, ["000009.xml", "the image is 264x248", "EXIF orientation tag (6)", "exif_transpose"]),
    ("voc-exif-tag-warns", "voc", lambda r: exif_tag(jpeg(r), turn=False),
     "check_dataset", [], 0, ["000009.jpg (orientation 6", "boxes are taken in stored pixel order"]),
    ("voc-all-difficult", "voc", all_difficult,
     "train", [], 2, ["train.txt has no boxes to train on", "difficult=positive"]),
    ("voc-box-outside-named", "voc", lambda r: set_tag(xml(r), "xmin", "400"),
     "browse_dataset", ["split=val"], 0, ["1 degenerate boxes (no area) dropped: 000008.xml (object 1"]),
    ("voc-skip-counts-kept", "voc", skip_two,
     "browse_dataset", ["split=val", f"{SKIP}"], 0,
     ["skipped", "000009.jpg", "000010.jpg", "skipped 2 of 4 images for bad input, kept 2"]),
    # COCO JSON
    ("coco-nan-bbox", "coco", lambda r: edit_json(r, "val", first_bbox(float("nan"))),
     "train", [], 2, ["instances_val.json", "annotation 2 (000008.jpg)", "NaN", SKIP]),
    ("coco-infinity-bbox", "coco", lambda r: edit_json(r, "train", first_bbox(float("inf"))),
     "check_dataset", [], 1, ["instances_train.json", "annotation 2 (000001.jpg)", "Infinity"]),
    ("coco-nan-bbox-eval", "coco", lambda r: edit_json(r, "val", first_bbox(float("nan"))),
     "eval", [], 2, ["instances_val.json", "annotation 2 (000008.jpg)"]),
    ("coco-val-no-annotations", "coco", lambda r: edit_json(r, "val", lambda d: d.pop("annotations")),
     "train", [], 2, ["data.val:", "instances_val.json", "no boxes to evaluate", "no 'annotations' key"]),
    ("coco-val-no-annotations-eval", "coco", lambda r: edit_json(r, "val", lambda d: d.pop("annotations")),
     "eval", [], 2, ["instances_val.json", "no 'annotations' key"]),
    ("coco-train-only-crowd", "coco", lambda r: edit_json(r, "train", set_all("iscrowd", 1)),
     "train", [], 2, ["data.train:", "instances_train.json", "no boxes to train on", "all crowd regions"]),
    ("coco-val-every-box-outside", "coco", lambda r: edit_json(r, "val", set_all("bbox", [900, 900, 9, 9])),
     "train", [], 2, ["instances_val.json", "every box was dropped on reading: 8 boxes outside the image"]),
    ("coco-not-json", "coco", lambda r: (r / "annotations/instances_val.json").write_text("{'images': ["),
     "train", [], 2, ["instances_val.json", "not valid JSON", "re-export"]),
    ("coco-not-an-object", "coco", lambda r: (r / "annotations/instances_train.json").write_text("[1, 2]"),
     "check_dataset", [], 2, ["instances_train.json", "not a COCO instances file", "JSON list"]),
    ("coco-unknown-category-id", "coco",
     lambda r: edit_json(r, "val", lambda d: d["annotations"][3].__setitem__("category_id", 77)),
     "train", [], 2, ["instances_val.json", "annotation 4 (000009.jpg)", "category_id 77", SKIP]),
    ("coco-size-mismatch", "coco", lambda r: edit_json(r, "val", lambda d: d["images"][0].update(height=350)),
     "eval", [], 2, ["000008.jpg", "annotation says 350x275 (h x w), the image is 357x275"]),
    ("coco-truncated-jpeg", "coco", lambda r: truncate(jpeg(r)),
     "train", [], 2, ["000009.jpg", "truncated JPEG", SKIP, "data.check=off"]),
    ("coco-text-as-image", "coco", lambda r: jpeg(r, "000002").write_text("<html>not found</html>"),
     "browse_dataset", [], 2, ["000002.jpg", "not an image", SKIP]),
    # COCO segmentations (instance masks, data.with_masks=true)
    ("coco-odd-polygon", "coco", lambda r: edit_json(r, "val", set_segmentation(1, [[1, 2, 30, 4, 5]])),
     "train", [MASKS], 2, ["instances_val.json", "annotation 2 (000008.jpg)", "5 numbers", SKIP]),
    ("coco-nan-polygon", "coco",
     lambda r: edit_json(r, "train", set_segmentation(1, [[1, 2, 3, float("nan"), 5, 6]])),
     "check_dataset", [MASKS], 1,
     ["annotation 2 (000001.jpg)", "not finite numbers", "malformed segmentations: 1"]),
    ("coco-rle-wrong-size", "coco",
     lambda r: edit_json(r, "val", set_segmentation(3, {"size": [10, 10], "counts": [100]})),
     "train", [MASKS], 2, ["annotation 4 (000009.jpg)", "RLE of size [10, 10]", "the image is [248, 264]"]),
    ("coco-segmentation-not-a-list", "coco", lambda r: edit_json(r, "val", set_segmentation(1, "polygon")),
     "browse_dataset", ["split=val", MASKS], 2, ["annotation 2 (000008.jpg)", "is a str", SKIP]),
    ("coco-bad-segmentation-skipped", "coco", lambda r: edit_json(r, "val", set_segmentation(1, [])),
     "browse_dataset", ["split=val", MASKS, SKIP], 0, ["skipped", "000008.jpg", "empty list", "kept 3"]),
    ("coco-no-segmentation-at-all", "coco", lambda r: edit_json(r, "train", drop_segmentations),
     "train", [MASKS], 2, ["instances_train.json", "no instance masks", "'segmentation' polygons or RLE"]),
    ("voc-missing-instance-map", "voc", lambda r: (r / "SegmentationObject" / "000003.png").unlink(),
     "train", [MASKS], 2, ["000003.xml", "no instance mask file", "SegmentationObject/000003.png",
                           "ImageSets/Segmentation", SKIP]),
    ("yolo-asked-for-masks", "yolo", lambda r: None,
     "check_dataset", [MASKS], 2, ["data.train", "read as boxes only", "no instance masks"]),
    ("model-needs-masks-voc", "voc", lambda r: None,
     "train", MASK_MODEL, 2, ["data.with_masks=false", "MaskNeedingDetector", "needs instance masks",
                              "VOCDetection"]),
    ("model-needs-masks-coco-boxes-only", "coco", lambda r: edit_json(r, "train", drop_segmentations),
     "train", [*MASK_MODEL, MASKS], 2, ["instances_train.json", "no instance masks", "needs instance masks"]),
    # YOLO txt
    ("yolo-pixel-labels", "yolo", labels("val", "000008", "2 167 242 56 60", "2 99.5 96.5 43 39"),
     "train", [], 2, ["000008.txt line 1", "labels not normalised?", "(and 1 more lines like it)"]),
    ("yolo-nan-value", "yolo", labels("train", "000001", "1 0.5 nan 0.1 0.1"),
     "check_dataset", [], 1, ["000001.txt line 1", "non-finite"]),
    ("yolo-wrong-field-count", "yolo", labels("val", "000008", "0 0.5 0.5 0.1"),
     "train", [], 2, ["000008.txt line 1", "expected 'class cx cy w h'", SKIP]),
    ("yolo-class-out-of-range", "yolo", labels("val", "000008", "0 0.5 0.5 0.1 0.1", "7 0.5 0.5 0.1 0.1"),
     "check_dataset", [], 1, ["000008.txt line 2", "class id 7"]),
    ("yolo-class-not-integer", "yolo", labels("train", "000002", "1.5 0.5 0.5 0.1 0.1"),
     "browse_dataset", [], 2, ["000002.txt line 1", "class id 1.5", "data.class_names"]),
    ("yolo-val-without-objects", "yolo", empty_labels,
     "train", [], 2, ["data.val:", "images/val has no boxes to evaluate", "none of its 4 images has an"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_data_input(case, tiny_sets, tmp_path):
    name, layout, breaks, tool, extra, status, culprits = case
    root = tmp_path / "set"
    shutil.copytree(tiny_sets[layout], root)
    breaks(root)
    args = [*LAYOUT_ARGS[layout], f"data.root={root}", *extra]
    if tool == "train":
        args = [*TINY_TRAIN, *args, f"hydra.run.dir={tmp_path / 'run'}"]
    elif tool == "browse_dataset":
        args += ["n=2", f"out={tmp_path / 'browse'}"]
    elif tool == "eval":
        results = tmp_path / "results.json"
        results.write_text(json.dumps([{"image_id": 9, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 1}]))
        args = [f"results={results}", *args]
    assert_fails(run_main(tool, args, cwd=tmp_path), *culprits, status=status)


def test_mask_rcnn_on_a_voc_set_without_masks_stops_in_one_line(tiny_sets, tmp_path):
    """The real model (not the stand-in of the cases above): Mask R-CNN declares it needs masks through
    its RoI head's mask branch. (TINY_TRAIN's small-backbone key is SSDLite's: its own arguments here.)"""
    args = ["data=shapes_voc", f"data.root={tiny_sets['voc']}", "model=mask_rcnn_r18_fpn",
            "train.max_iters=1", "data.num_workers=0", "hooks.progress=null",
            f"hydra.run.dir={tmp_path / 'run'}"]
    assert_fails(run_main("train", args, cwd=tmp_path), "data.with_masks=false", "TwoStageDetector",
                 "needs instance masks", "VOCDetection", status=2)
