"""tools/benchmark.py and engine/benchmark.py: FLOPs with a known answer, synthetic batches, and one
tiny benchmark through the tool's main."""
import json

import pytest
import torch
from torch import nn

from detframe.cli.benchmark import main
from detframe.engine.benchmark import count_flops, count_parameters, synthetic_batch
from detframe.models import build_detector

from ..conftest import compose


def test_flops_of_a_convolution_are_two_per_multiply_add():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # 8 output channels x 16 x 16 positions, each a sum of 3 x 3 x 3 products: 2 FLOPs per product
    assert count_flops(conv, torch.zeros(1, 3, 16, 16)) == 2 * 3 * 8 * 3 * 3 * 16 * 16
    assert count_flops(conv, torch.zeros(2, 3, 16, 16)) == 2 * 2 * 3 * 8 * 3 * 3 * 16 * 16


def test_parameter_count_separates_frozen_parameters():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == (4 * 3 + 3 + 3 * 2 + 2, 3 * 2 + 2)


def test_synthetic_batch_is_padded_and_has_boxes_inside_the_image():
    batch = synthetic_batch(3, (50, 70), num_classes=4, size_divisor=32)
    assert batch.images.shape == (3, 3, 64, 96) and batch.images.dtype == torch.uint8
    assert batch.images[:, :, 50:].sum() == 0 and batch.images[:, :, :, 70:].sum() == 0
    for t in batch.targets:
        assert len(t.boxes) >= 1 and (t.labels < 4).all() and (t.labels >= 0).all()
        assert (t.boxes[:, 2:] - t.boxes[:, :2] >= 8).all()
        assert (t.boxes[:, :2] >= 0).all() and (t.boxes[:, 2] <= 70).all() and (t.boxes[:, 3] <= 50).all()
    assert batch.image_sizes == [(50, 70)] * 3 and batch.scales == [(1.0, 1.0)] * 3
    assert batch.targets[0].masks is None
    masked = synthetic_batch(2, (50, 70), num_classes=4, with_masks=True)
    for t in masked.targets:  # for a model that requires masks: each box's rectangle
        assert t.masks.shape == (len(t.boxes), 50, 70) and t.masks.dtype == torch.uint8
        ys, xs = t.masks[0].nonzero().unbind(1)
        assert (xs.min() + 0.5 >= t.boxes[0, 0]) and (xs.max() + 0.5 < t.boxes[0, 2])


@pytest.mark.slow
def test_benchmark_of_a_small_config_writes_every_field(tmp_path, capsys):
    overrides = ["model.backbone.arch=small"]
    assert main(["config=ssdlite_shapes", *overrides, "device=cpu", "size=64", "batch_size=2", "warmup=0",
                 "rounds=2", "threads=1", f"json={tmp_path / 'b.json'}", f"out={tmp_path / 'out'}"]) == 0
    table = capsys.readouterr().out
    assert "ssdlite_shapes" in table and "a multiply-add is 2 FLOPs" in table
    report = json.loads((tmp_path / "b.json").read_text())
    assert report == json.loads((tmp_path / "out" / "benchmark.json").read_text())
    (result,) = report["results"]
    model = build_detector(compose(["config=ssdlite_shapes", *overrides]).model)
    assert result["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    assert result["flops"] > 0 and result["gflops"] == pytest.approx(result["flops"] / 1e9)
    assert result["input_size"] == [64, 64] and result["device"] == "cpu" and result["amp"] == "off"
    for key, size in (("batch_1", 1), ("batch_n", 2)):
        timing = result["inference"][key]
        assert timing["batch_size"] == size and timing["median_ms"] > 0
        assert timing["p90_ms"] >= timing["median_ms"]
        assert timing["images_per_s"] == pytest.approx(size / timing["median_ms"] * 1e3)
        assert 0 < timing["forward_median_ms"] < timing["median_ms"]
    assert result["train"]["batch_size"] == 2 and result["train"]["images_per_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(capsys):
    assert main(["device=cuda", "rounds=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device=cuda: CUDA is not available here") and err.count("\n") == 1
