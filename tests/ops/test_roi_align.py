"""detframe.ops.roi_align against torchvision's: the same output, and the same gradient bit for bit
(the faster CPU backward claims torchvision's sum, term by term in its order)."""
import pytest
import torch
from torchvision.ops import roi_align as tv_roi_align

from detframe.ops.roi_align import roi_align


def random_rois(count: int, images: int, height: int, width: int, scale: float, seed: int) -> torch.Tensor:
    """[count, 5] RoIs in input pixels, some reaching past the map's edges, a few degenerate (zero size,
    inverted), as an RPN's early proposals can be."""
    g = torch.Generator().manual_seed(seed)
    size = torch.tensor([width, height]) / scale
    corner = torch.rand(count, 2, generator=g) * size * 1.2 - 0.1 * size
    extent = torch.rand(count, 2, generator=g) ** 2 * size * 0.8
    rois = torch.cat([torch.randint(0, images, (count, 1), generator=g).float(), corner, corner + extent], 1)
    rois[:4, 3:] = rois[:4, 1:3]  # zero width and height
    rois[4:6, 3:] = rois[4:6, 1:3] - 5  # inverted
    return rois


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio", [1, 2, 4])
@pytest.mark.parametrize("shape,scale", [((2, 8, 24, 20), 0.25), ((3, 5, 7, 9), 1 / 16)])
def test_same_output_and_gradient_as_torchvision(shape, scale, ratio, aligned):
    feature = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    rois = random_rois(40, shape[0], shape[2], shape[3], scale, seed=2)
    ours_in, theirs_in = feature.clone().requires_grad_(), feature.clone().requires_grad_()
    ours = roi_align(ours_in, rois, 7, scale, ratio, aligned)
    theirs = tv_roi_align(theirs_in, rois, 7, scale, ratio, aligned)
    assert torch.equal(ours, theirs)
    grad = torch.randn(ours.shape, generator=torch.Generator().manual_seed(3))
    ours.backward(grad)
    theirs.backward(grad)
    assert torch.equal(ours_in.grad, theirs_in.grad)
    assert ours_in.grad.is_contiguous()


def test_no_rois_gives_a_zero_gradient():
    """A pyramid level that no RoI maps to."""
    feature = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = roi_align(feature, torch.zeros(0, 5), 7, 0.25, 2, False)
    out.sum().backward()
    assert out.shape == (0, 4, 7, 7) and torch.equal(feature.grad, torch.zeros_like(feature))


def test_gradient_accumulates_with_other_uses_of_the_map():
    feature = torch.randn(1, 4, 16, 16, requires_grad=True)
    rois = random_rois(10, 1, 16, 16, 0.5, seed=0)
    (roi_align(feature, rois, 2, 0.5, 2, False).sum() + feature.sum()).backward()
    expected = torch.autograd.grad(tv_roi_align(feature, rois, 2, 0.5, 2, False).sum(), feature)[0] + 1
    assert torch.equal(feature.grad, expected)


def test_falls_back_to_torchvision_off_the_fast_path():
    """Adaptive sampling, float64 or no gradient: torchvision's op itself, not the custom backward."""
    feature = torch.randn(1, 3, 10, 10, requires_grad=True)
    rois = random_rois(5, 1, 10, 10, 1.0, seed=0)

    def node(out: torch.Tensor) -> str:
        return type(out.grad_fn).__name__

    assert node(roi_align(feature, rois, 3, 1.0, 2, False)) == "_RoIAlignBackward"
    assert node(roi_align(feature, rois, 3, 1.0, 0, False)) != "_RoIAlignBackward"
    assert node(roi_align(feature.double(), rois.double(), 3, 1.0, 2, False)) != "_RoIAlignBackward"
    with torch.no_grad():
        assert roi_align(feature, rois, 3, 1.0, 2, False).grad_fn is None
