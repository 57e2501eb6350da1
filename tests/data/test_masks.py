"""Instance masks along the data path: each transform moves a mask with its box (a rectangle's mask has
the transformed box as its bounding box) and drops it with its box; collate keeps masks per image;
the COCO reader reads polygons and both RLE forms; the shapes set gives exact masks."""
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from detframe.data import CocoDetection, build_dataloader, build_dataset
from detframe.data.collate import Collate
from detframe.data.transforms import (
    Albu,
    Expand,
    Letterbox,
    MinIoURandomCrop,
    MixUp,
    Mosaic,
    PhotoMetricDistortion,
    RandomAffine,
    RandomHorizontalFlip,
    Resize,
    rescale_long_side,
)
from detframe.data.transforms.masks import check_carries_masks
from detframe.errors import ConfigError, DatasetError
from detframe.structures import Sample

from ..conftest import compose

BOXES = [[5, 6, 20, 30], [30, 10, 55, 25]]  # in a 40 x 60 image


def rect_sample(boxes=BOXES, h=40, w=60, image_id=1) -> Sample:
    masks = np.zeros((len(boxes), h, w), np.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes):
        m[y1:y2, x1:x2] = 1
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return Sample(image=image, boxes=boxes, labels=list(range(len(boxes))), image_id=image_id,
                  orig_size=(h, w), masks=masks)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    out = []
    for m in masks:
        ys, xs = np.nonzero(m)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(out, np.float32).reshape(-1, 4)


def assert_masks_follow(s: Sample, atol: float = 1e-4) -> None:
    assert s.masks.dtype == np.uint8 and s.masks.shape == (len(s.boxes), *s.size)
    assert set(np.unique(s.masks)) <= {0, 1}
    np.testing.assert_allclose(mask_boxes(s.masks), s.boxes, atol=atol)


TRANSFORMS = [
    ("resize-2x", Resize((80, 120)), 1e-4),
    ("resize-keep-ratio", Resize(50, keep_ratio=True), 1),
    ("letterbox", Letterbox((80, 160)), 1e-4),
    ("flip", RandomHorizontalFlip(p=1.0), 1e-4),
    ("photometric", PhotoMetricDistortion(), 1e-4),
    ("albu-pixels", Albu("RandomBrightnessContrast", p=1.0), 1e-4),
    ("albu-flip", Albu("HorizontalFlip", p=1.0), 1e-4),
    ("albu-crop", Albu("Crop", x_min=2, y_min=4, x_max=40, y_max=35), 1e-4),
    ("rescale-long-side", lambda s: rescale_long_side(s, 120), 1e-4),
]


@pytest.mark.parametrize("name, transform, atol", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_mask_bounding_box_is_the_transformed_box(name, transform, atol):
    s = transform(rect_sample())
    assert len(s.masks) == len(s.boxes) >= 1
    assert_masks_follow(s, atol)


def test_expand_and_crop_move_masks_and_drop_them_with_their_boxes():
    s = Expand(p=1.0).apply(rect_sample(), (7, 3, 100, 70))
    assert_masks_follow(s)
    cropped = MinIoURandomCrop().apply(rect_sample(), np.array([2, 4, 40, 35], np.float32))
    assert len(cropped.masks) == len(cropped.boxes) == 1  # the second box's centre is outside: dropped
    assert_masks_follow(cropped)


def test_affine_warps_masks_nearest():
    matrix = np.array([[2.0, 0, 3], [0, 2.0, 5]])
    s = RandomAffine((100, 140), min_size=0).apply(rect_sample(), matrix)
    assert_masks_follow(s, atol=1)
    gone = RandomAffine((100, 140)).apply(rect_sample(), np.array([[1.0, 0, 500], [0, 1.0, 0]]))
    assert gone.masks.shape == (0, 100, 140)


def test_warping_only_the_window_of_each_mask_equals_warping_the_whole_mask():
    import cv2

    from detframe.data.transforms.masks import warp_masks

    rng = np.random.default_rng(0)
    for _ in range(20):
        masks = rect_sample([[int(rng.integers(0, 40)), int(rng.integers(0, 25)), 45, 33]]).masks
        angle, scale = np.radians(rng.uniform(-30, 30)), rng.uniform(0.3, 2.0)
        matrix = np.array([[scale * np.cos(angle), -scale * np.sin(angle) + rng.uniform(-0.2, 0.2),
                            rng.uniform(-20, 40)],
                           [scale * np.sin(angle), scale * np.cos(angle), rng.uniform(-20, 40)]])
        full = cv2.warpAffine(masks[0], matrix, (70, 50), flags=cv2.INTER_NEAREST, borderValue=0)
        np.testing.assert_array_equal(warp_masks(masks, matrix, (50, 70))[0], full)


def test_mosaic_and_mixup_carry_every_images_masks():
    samples = [rect_sample(image_id=i) for i in range(4)]
    s = Mosaic(40, min_visibility=0.0, min_size=0).apply(samples, (45, 38))
    assert s.size == (80, 80) and len(s.masks) == len(s.boxes) > 2
    assert_masks_follow(s)
    other = rect_sample([[1, 1, 9, 9]], h=30, w=70)
    mixed = MixUp().apply(rect_sample(), other, 0.5)
    assert len(mixed.masks) == 3
    assert_masks_follow(mixed)


def test_select_collate_and_device_keep_masks_in_step():
    s = rect_sample().select(np.array([False, True]))
    assert len(s.masks) == 1 and s.masks[0, 10:25, 30:55].all()
    with pytest.raises(ValueError, match="2 boxes, 1 masks"):
        Sample(s.image, BOXES, [0, 1], 1, (40, 60), masks=s.masks)
    small = rect_sample([[1, 1, 5, 5]], h=20, w=30)
    empty = rect_sample([], h=20, w=30)
    batch = Collate(size_divisor=32)([rect_sample(), small, empty])
    assert batch.images.shape[-2:] == (64, 64)
    assert [tuple(t.masks.shape) for t in batch.targets] == [(2, 40, 60), (1, 20, 30), (0, 20, 30)]
    assert batch.targets[0].masks.dtype == torch.uint8
    moved = batch.to("cpu")
    assert moved.targets[1].masks.equal(batch.targets[1].masks)
    plain = Collate()([Sample(small.image, small.boxes, small.labels, 2, (20, 30))])
    assert plain.targets[0].masks is None and plain.to("cpu").targets[0].masks is None


def test_a_transform_that_cannot_carry_masks_is_named_at_build_time():
    class Blur:  # a user transform that says nothing about masks
        def __call__(self, sample):
            return sample

    check_carries_masks([Resize(32), Albu("HorizontalFlip"), PhotoMetricDistortion()], "pipeline.train")
    with pytest.raises(ConfigError, match="pipeline.train: transform Blur does not carry instance masks"):
        check_carries_masks([Resize(32), Blur()], "pipeline.train")


def _coco_file(tmp_path, image_size=(40, 60)):
    """One image; a polygon, a compressed RLE, an uncompressed crowd RLE and a box outside the image."""
    from PIL import Image

    h, w = image_size
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / "a.png")
    crowd = np.zeros((h, w), np.uint8)
    crowd[20:30, 40:50] = 1
    flat = crowd.flatten(order="F")
    changes = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]]))
    compressed = np.zeros((h, w), np.uint8)
    compressed[2:12, 30:40] = 1
    rle = mask_utils.encode(np.asfortranarray(compressed))
    anns = [
        {"bbox": [5, 6, 15, 24], "segmentation": [[5, 6, 20, 6, 20, 30, 5, 30]], "iscrowd": 0},
        {"bbox": [30, 2, 10, 10], "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
         "iscrowd": 0},
        {"bbox": [40, 20, 10, 10], "iscrowd": 1,
         "segmentation": {"size": [h, w], "counts": np.diff(np.r_[0, changes]).tolist()}},
        {"bbox": [100, 100, 5, 5], "segmentation": [[100, 100, 105, 100, 105, 105]], "iscrowd": 0},
    ]
    data = {"images": [{"id": 1, "file_name": "a.png", "height": h, "width": w}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "area": 1.0, **a}
                            for i, a in enumerate(anns)]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_reads_polygons_and_both_rle_forms(tmp_path):
    path = _coco_file(tmp_path)
    s = CocoDetection(str(path), str(tmp_path), with_masks=True).load_sample(0)
    assert len(s.boxes) == len(s.masks) == 3  # the box outside the image is dropped with its mask
    assert s.ignore.tolist() == [False, False, True]
    assert s.masks[0, 6:30, 5:20].all() and s.masks[0].sum() == 15 * 24  # pycocotools' polygon fill
    assert s.masks[1, 2:12, 30:40].all() and s.masks[1].sum() == 100
    assert s.masks[2, 20:30, 40:50].all() and s.masks[2].sum() == 100
    assert CocoDetection(str(path), str(tmp_path)).load_sample(0).masks is None


def test_coco_rle_of_another_size_names_the_annotation(tmp_path):
    path = _coco_file(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"][1]["segmentation"]["size"] = [40, 61]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"annotation 2 \(a.png\): segmentation is an RLE of size"):
        CocoDetection(str(path), str(tmp_path), with_masks=True)
    skipped = CocoDetection(str(path), str(tmp_path), with_masks=True, on_error="skip")
    assert len(skipped) == 0


def test_shapes_masks_are_exact_and_survive_the_yolo_pipeline(tiny_shapes):
    cfg = compose(["data=shapes", f"data.root={tiny_shapes}", "data.with_masks=true", "pipeline=yolo",
                   "pipeline.size=96", "data.check=off"])
    plain = build_dataset(cfg.data, "val", None)
    for i in range(len(plain)):
        s = plain.load_sample(i)
        np.testing.assert_array_equal(mask_boxes(s.masks), s.boxes)
    train = build_dataset(cfg.data, "train", cfg.pipeline.train)
    loader = build_dataloader(train, 4, 0, train=True, size_divisor=32)
    batch = next(iter(loader))
    for target, size in zip(batch.targets, batch.image_sizes):
        assert target.masks.shape == (len(target.boxes), *size)
        assert (target.masks.flatten(1).sum(1) > 0).all()  # no box without mask pixels


def test_voc_instance_maps_give_the_visible_part_of_each_shape(tiny_shapes, tmp_path):
    import shutil

    from detframe.data import VOCDetection
    from detframe.data.synthetic import SHAPES_CLASSES

    voc = VOCDetection(str(tiny_shapes), "train", class_names=SHAPES_CLASSES, with_masks=True)
    coco = CocoDetection(str(tiny_shapes / "annotations" / "instances_train.json"),
                         str(tiny_shapes / "JPEGImages"), with_masks=True)
    for i in range(len(voc)):
        visible, whole = voc.load_sample(i).masks, coco.load_sample(i).masks
        assert visible.shape == whole.shape and not (visible > whole).any()
        assert (visible.reshape(len(visible), -1).sum(1) > 0).all()
    root = tmp_path / "voc"
    shutil.copytree(tiny_shapes, root)
    (root / "SegmentationObject" / "000001.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read the instance mask file .*000001.png"):
        VOCDetection(str(root), "train", class_names=SHAPES_CLASSES, with_masks=True)
    assert len(VOCDetection(str(root), "train", class_names=SHAPES_CLASSES, with_masks=True,
                            on_error="skip")) == 7


def test_a_shapes_set_from_before_masks_is_regenerated_when_masks_are_asked_for(tmp_path):
    from detframe.data import ensure_shapes

    root = ensure_shapes(tmp_path / "s", num_train=2, num_val=1, seed=3)
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    for a in data["annotations"]:
        a.pop("segmentation")
    path.write_text(json.dumps(data))
    (root / ".complete").write_text("num_train=2 num_val=1 seed=3\n")  # as older versions wrote it
    ensure_shapes(root, num_train=2, num_val=1, seed=3)
    assert "segmentation" not in json.loads(path.read_text())["annotations"][0]  # boxes only: kept
    ensure_shapes(root, num_train=2, num_val=1, seed=3, with_masks=True)
    assert "segmentation" in json.loads(path.read_text())["annotations"][0]
    assert [p.name for p in tmp_path.iterdir()] == ["s"]
