import numpy as np
import torch

from detframe.data.collate import Collate
from detframe.data.transforms import Albu, RandomHorizontalFlip, Resize, build_pipeline
from detframe.ops.boxes import undo_resize
from detframe.structures import Sample


def sample_with_box():
    image = np.zeros((60, 80, 3), np.uint8)
    image[10:30, 5:25] = 255  # a white box at x 5..25, y 10..30
    return Sample(image=image, boxes=[[5, 10, 25, 30]], labels=[1], image_id=7, orig_size=(60, 80))


def test_flip_twice_is_identity_and_box_follows_pixels():
    s = sample_with_box()
    flipped = RandomHorizontalFlip(p=1.0)(s)
    x1, y1, x2, y2 = flipped.boxes[0].astype(int)
    assert (x1, x2) == (55, 75) and flipped.image[y1:y2, x1:x2].min() == 255
    back = RandomHorizontalFlip(p=1.0)(flipped)
    np.testing.assert_array_equal(back.image, s.image)
    np.testing.assert_allclose(back.boxes, s.boxes)


def test_resize_records_how_to_map_back():
    s = Resize(size=[120, 40])(sample_with_box())
    assert s.image.shape == (120, 40, 3)
    np.testing.assert_allclose(s.boxes, [[2.5, 20, 12.5, 60]])
    back = undo_resize(torch.from_numpy(s.boxes), s.scale, s.offset, s.orig_size)
    torch.testing.assert_close(back, torch.tensor([[5.0, 10.0, 25.0, 30.0]]))
    kept = Resize(size=40, keep_ratio=True)(sample_with_box())
    assert kept.image.shape == (30, 40, 3) and kept.scale == (0.5, 0.5)


def test_albu_transform_drops_boxes_pushed_out():
    s = Sample(image=np.zeros((100, 100, 3), np.uint8), boxes=[[0, 0, 20, 20], [70, 70, 90, 90]], labels=[0, 1],
               ignore=[False, True], image_id=1, orig_size=(100, 100))
    out = Albu(transform="Crop", x_min=50, y_min=50, x_max=100, y_max=100)(s)
    np.testing.assert_allclose(out.boxes, [[20, 20, 40, 40]])
    assert out.labels.tolist() == [1] and out.ignore.tolist() == [True]


def test_pipeline_from_config_and_collate_pads():
    pipeline = build_pipeline([{"type": "RandomHorizontalFlip", "p": 0.0}, {"type": "Resize", "size": 50, "keep_ratio": True}])
    a = pipeline(sample_with_box())  # 60x80 -> 38x50
    b = Resize(size=[20, 30])(sample_with_box())
    batch = Collate(size_divisor=32)([a, b])
    assert batch.images.shape == (2, 3, 64, 64) and batch.images.dtype == torch.uint8
    assert batch.image_sizes == [(38, 50), (20, 30)] and batch.orig_sizes == [(60, 80), (60, 80)]
    assert batch.images[1, :, 20:].sum() == 0 and batch.targets[0].labels.tolist() == [1]
