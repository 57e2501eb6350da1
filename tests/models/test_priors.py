import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from detframe.models.priors import AnchorGenerator, PointGenerator, SSDPriorGenerator, YOLOPriorGenerator

SSD300 = dict(aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
              scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
SSD300_GRID = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]


def test_ssd300_has_8732_default_boxes():
    gen = SSDPriorGenerator(**SSD300)
    assert gen.num_anchors == [4, 6, 6, 6, 4, 4]
    priors = gen(SSD300_GRID, (300, 300))
    assert priors.shape == (8732, 4)


@pytest.mark.parametrize(
    "kwargs,grid,size",
    [
        (SSD300, SSD300_GRID, (300, 300)),
        (dict(aspect_ratios=[[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95),
         [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)], (320, 320)),
        (dict(aspect_ratios=[[2, 3]] * 3, min_ratio=0.1, max_ratio=0.8, clip=False),
         [(8, 12), (4, 6), (2, 3)], (128, 192)),
    ],
)
def test_same_boxes_as_torchvision(kwargs, grid, size):
    ours = SSDPriorGenerator(**kwargs)(grid, size)
    tv = DefaultBoxGenerator(**kwargs)
    images = ImageList(torch.zeros(1, 3, *size), [size])
    theirs = tv(images, [torch.zeros(1, 1, h, w) for h, w in grid])[0]
    torch.testing.assert_close(ours, theirs)


def test_cached_and_level_count_checked():
    gen = SSDPriorGenerator(**SSD300)
    assert gen(SSD300_GRID, (300, 300)) is gen(SSD300_GRID, (300, 300))
    with pytest.raises(ValueError, match="6 levels"):
        gen(SSD300_GRID[:5], (300, 300))


@pytest.mark.parametrize("make", [
    lambda strides: PointGenerator(strides),
    lambda strides: AnchorGenerator(strides=strides, octave_base_scale=4, scales_per_octave=1,
                                    aspect_ratios=[1.0]),
    lambda strides: YOLOPriorGenerator(strides, [[(10, 13)]] * len(strides)),
])
def test_strides_must_be_the_feature_maps(make):
    """A stride list that disagrees with the backbone's levels (C4-C5 configured as 8 and 16) is refused
    on the first call, naming the level; maps within one cell of size / stride (padding, odd sizes) pass."""
    from detframe.errors import ConfigError

    make([16, 32])([(4, 4), (2, 2)], (64, 64))
    make([16, 32])([(5, 4), (3, 2)], (65, 63))  # ceil(65 / 16) = 5, ceil(65 / 32) = 3
    with pytest.raises(ConfigError, match=r"strides\[0\] is 8, but level 0's map is 4x4 for a 64x64 "
                                          r"input \(stride 16\)"):
        make([8, 16])([(4, 4), (2, 2)], (64, 64))
