import numpy as np
import pytest
import torch

from detframe.data.collate import Collate
from detframe.data.transforms import (
    Albu,
    Compose,
    Expand,
    Letterbox,
    MinIoURandomCrop,
    MixUp,
    Mosaic,
    PhotoMetricDistortion,
    RandomAffine,
    RandomHorizontalFlip,
    Resize,
    build_pipeline,
)
from detframe.errors import ConfigError
from detframe.ops.boxes import undo_resize
from detframe.structures import Sample

from .helpers import assert_boxes_cover_colours, coloured_sample, visible_fraction

RECTS = [(10, 12, 50, 40), (70, 20, 110, 90), (20, 60, 60, 110), (120, 100, 150, 115)]  # in a 120 x 160 image


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


@pytest.mark.parametrize("size,center", [(200, True), ([96, 256], True), (200, False)])
def test_letterbox_boxes_cover_colours_and_map_back(size, center):
    s = coloured_sample((120, 160), RECTS)
    out = Letterbox(size, center=center)(s)
    target = (size, size) if isinstance(size, int) else tuple(size)
    assert out.image.shape[:2] == target
    assert_boxes_cover_colours(out)
    back = undo_resize(torch.from_numpy(out.boxes), out.scale, out.offset, out.orig_size)
    torch.testing.assert_close(back, torch.from_numpy(s.boxes), atol=1e-3, rtol=0)
    if center and target[0] != target[1]:
        assert out.offset[0] > 0 and out.offset[1] == 0  # a wide target pads left and right


def test_albu_transform_drops_boxes_pushed_out():
    s = Sample(image=np.zeros((100, 100, 3), np.uint8), boxes=[[0, 0, 20, 20], [70, 70, 90, 90]],
               labels=[0, 1], ignore=[False, True], image_id=1, orig_size=(100, 100))
    out = Albu(transform="Crop", x_min=50, y_min=50, x_max=100, y_max=100)(s)
    np.testing.assert_allclose(out.boxes, [[20, 20, 40, 40]])
    assert out.labels.tolist() == [1] and out.ignore.tolist() == [True]


def test_albu_geometric_keeps_exactly_the_visible_boxes():
    s = coloured_sample((120, 160), RECTS)
    t = Albu(transform="Affine", translate_px={"x": (-60, 60), "y": (-50, 50)}, p=1.0, min_visibility=0.3)
    for seed in range(15):
        np.random.seed(seed)
        out = t(s)
        assert_boxes_cover_colours(out, margin=2.0, min_fill=0.7)
        for k, (x1, y1, x2, y2) in enumerate(RECTS):
            # the visible share of the colour decides
            seen = visible_fraction(out, k, (x2 - x1) * (y2 - y1))
            if seen > 0.45:
                assert k in out.labels
            if seen < 0.15:
                assert k not in out.labels


def test_albu_is_reproducible_from_numpy_seed_and_nested_composites_build():
    s = coloured_sample((120, 160), RECTS)
    t = Albu(transform="OneOf", p=1.0, transforms=[{"transform": "Affine", "rotate": (-30, 30), "p": 1.0},
                                                   {"transform": "Affine", "scale": (0.5, 0.9), "p": 1.0}])
    np.random.seed(3)
    a = t(s)
    np.random.seed(3)
    b = t(s)
    np.random.seed(4)
    c = t(s)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, c.image)
    with pytest.raises(ConfigError, match="albumentations has no transform 'Affin'. Did you mean 'Affine'"):
        Albu(transform="OneOf", transforms=[{"transform": "Affin"}])
    with pytest.raises(ConfigError, match="Mosaic.*draw them from the dataset"):
        Albu(transform="Mosaic")


def test_photometric_distortion_changes_pixels_only():
    s = coloured_sample((120, 160), RECTS)
    t = PhotoMetricDistortion()
    changed = 0
    for seed in range(8):
        np.random.seed(seed)
        out = t(s)
        assert out.image.shape == s.image.shape and out.image.dtype == np.uint8
        np.testing.assert_array_equal(out.boxes, s.boxes)
        changed += not np.array_equal(out.image, s.image)
    assert changed >= 6  # each of the 4 distortions has p 0.5: all skipped with p 1/16


def test_expand_boxes_cover_colours_and_canvas_is_mean():
    s = coloured_sample((120, 160), RECTS)
    t = Expand(mean=(100, 90, 80), ratio_range=(1, 4), p=1.0)
    for seed in range(10):
        np.random.seed(seed)
        params = t.get_params(s.size)
        left, top, cw, ch = params
        out = t.apply(s, params)
        assert out.image.shape[:2] == (ch, cw) and len(out.boxes) == len(RECTS)
        assert_boxes_cover_colours(out, margin=0.0, min_fill=1.0)  # a pure shift: exact
        assert (out.image[:top] == (100, 90, 80)).all() and (out.image[:, :left] == (100, 90, 80)).all()


def test_min_iou_crop_keeps_exactly_the_boxes_with_centre_inside():
    s = coloured_sample((120, 160), RECTS)
    t = MinIoURandomCrop()
    for seed in range(40):
        np.random.seed(seed)
        patch = t.get_params(s)
        out = t.apply(s, patch)
        if patch is None:
            assert out is s
            continue
        x1, y1, x2, y2 = patch
        assert out.image.shape[:2] == (y2 - y1, x2 - x1)
        centres = (s.boxes[:, :2] + s.boxes[:, 2:]) / 2
        inside = [k for k, (cx, cy) in enumerate(centres) if x1 < cx < x2 and y1 < cy < y2]
        assert out.labels.tolist() == inside and inside
        assert_boxes_cover_colours(out, margin=0.0, min_fill=1.0)  # crop + clip: exact
        assert (out.boxes >= 0).all()
        assert (out.boxes[:, 2] <= x2 - x1).all() and (out.boxes[:, 3] <= y2 - y1).all()


def test_min_iou_crop_honours_the_iou_threshold():
    from torchvision.ops import box_iou

    # one object: IoU >= 0.5 with several far apart is rarely possible
    s = coloured_sample((120, 160), RECTS[1:2])
    t = MinIoURandomCrop()
    t.modes = (0.5,)  # force the constrained mode
    found = 0
    for seed in range(20):
        np.random.seed(seed)
        patch = t.get_params(s)
        if patch is not None:
            found += 1
            assert box_iou(torch.tensor(patch[None]), torch.from_numpy(s.boxes)).min() >= 0.5
    assert found >= 5


class ListSource:
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def load_sample(self, index):
        return self.samples[index]


def test_mosaic_places_four_images_and_drops_exactly_the_boxes_cut_away():
    rects = [[(5, 5, 40, 30), (90, 60, 140, 110)], [(10, 70, 60, 115)], [(100, 10, 150, 50)],
             [(30, 30, 80, 80)]]
    samples, first = [], 0
    for k, r in enumerate(rects):
        samples.append(coloured_sample((120, 160), r, first_label=first, image_id=k))
        first += len(r)
    areas = {lab: (x2 - x1) * (y2 - y1)
             for s, r in zip(samples, rects) for lab, (x1, y1, x2, y2) in zip(s.labels, r)}
    t = Mosaic(size=160, min_visibility=0.1, min_size=2)
    for seed in range(25):
        np.random.seed(seed)
        out = t.apply(samples, t.get_params())
        assert out.image.shape[:2] == (320, 320) and out.image_id == 0
        assert_boxes_cover_colours(out, margin=0.0, min_fill=1.0)  # paste + clip: exact
        for label, area in areas.items():
            seen = visible_fraction(out, label, area)
            assert (label in out.labels) == (seen >= 0.1), (seed, label, seen)


def test_random_affine_boxes_follow_the_pixels():
    s = coloured_sample((120, 160), RECTS)
    plain = RandomAffine(size=160, degrees=0, translate=0.2, scale=(0.5, 1.5), shear=0, min_visibility=0.2)
    rotating = RandomAffine(size=[128, 192], degrees=30, translate=0.1, scale=(0.7, 1.3), shear=5)
    for seed in range(20):
        np.random.seed(seed)
        matrix = plain.get_params(s.size)
        out = plain.apply(s, matrix)
        assert out.image.shape[:2] == (160, 160)
        assert_boxes_cover_colours(out, margin=1.5, min_fill=0.8)
        zoom = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
        for k, (x1, y1, x2, y2) in enumerate(RECTS):
            seen = visible_fraction(out, k, (x2 - x1) * (y2 - y1) * zoom**2)
            if seen > 0.3:
                assert k in out.labels
            if seen < 0.1:
                assert k not in out.labels
        out = rotating(s)
        assert out.image.shape[:2] == (128, 192)
        # rotated rectangles: the box encloses every pixel of the colour, and the colour fills part of it
        assert_boxes_cover_colours(out, margin=1.5, min_fill=0.4)


def test_mixup_blends_and_keeps_both_box_sets():
    a = coloured_sample((120, 160), RECTS[:2])
    b = coloured_sample((100, 160), [(20, 60, 60, 90), (120, 70, 150, 95)], first_label=2)
    out = MixUp(fill=114).apply(a, b, 0.3)
    assert out.labels.tolist() == [0, 1, 2, 3] and out.image.shape == a.image.shape
    np.testing.assert_allclose(out.boxes, np.concatenate([a.boxes, b.boxes]))
    expected = 0.3 * a.image.astype(float)
    expected[:100] += 0.7 * b.image
    expected[100:] += 0.7 * 114  # the smaller partner is padded with the fill
    assert np.abs(out.image.astype(float) - expected).max() <= 1.0


def test_compose_draws_mix_partners_through_earlier_transforms_and_skips_by_name():
    source = ListSource([coloured_sample((120, 160), RECTS[:1], image_id=i) for i in range(5)])
    pipeline = build_pipeline([{"type": "Resize", "size": 80, "keep_ratio": True},
                               {"type": "Mosaic", "size": 80},
                               {"type": "RandomAffine", "size": 80, "scale": [1, 1], "translate": 0},
                               {"type": "Letterbox", "size": 80}])
    np.random.seed(0)
    out = pipeline(source.load_sample(0), source=source)
    assert out.image.shape[:2] == (80, 80)
    # each mosaic tile went through Resize first: 4 tiles of 60x80 images around the centre
    plain = pipeline(source.load_sample(0), source=source, skip=("Mosaic", "RandomAffine"))
    assert plain.image.shape[:2] == (80, 80) and len(plain.boxes) == 1
    np.testing.assert_allclose(plain.boxes, [[5, 16, 25, 30]])  # 0.5 x, letterboxed 10 px down
    with pytest.raises(TypeError, match="Mosaic needs a dataset"):
        pipeline(source.load_sample(0))
    assert isinstance(pipeline, Compose) and len(pipeline) == 4


def test_pipeline_from_config_and_collate_pads():
    pipeline = build_pipeline([{"type": "RandomHorizontalFlip", "p": 0.0},
                               {"type": "Resize", "size": 50, "keep_ratio": True}])
    a = pipeline(sample_with_box())  # 60x80 -> 38x50
    b = Resize(size=[20, 30])(sample_with_box())
    batch = Collate(size_divisor=32)([a, b])
    assert batch.images.shape == (2, 3, 64, 64) and batch.images.dtype == torch.uint8
    assert batch.image_sizes == [(38, 50), (20, 30)] and batch.orig_sizes == [(60, 80), (60, 80)]
    assert batch.images[1, :, 20:].sum() == 0 and batch.targets[0].labels.tolist() == [1]
