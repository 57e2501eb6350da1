import logging

import cv2
import numpy as np
import pytest

from detframe.data import VOCDetection, build_dataset
from detframe.data.cache import ImageCache
from detframe.data.check import check_dataset, check_image, format_report
from detframe.data.datasets.base import read_image
from detframe.errors import DatasetError

from ..conftest import compose, run_tool
from .test_datasets import write_voc


def broken_set(root):
    """Five images: one fine, one missing, one truncated JPEG, one empty file, one text file."""
    for name in "abcde":
        write_voc(root, name, [("cat", (1, 1, 10, 20), False)])
    (root / "JPEGImages" / "b.jpg").unlink()
    data = (root / "JPEGImages" / "c.jpg").read_bytes()
    (root / "JPEGImages" / "c.jpg").write_bytes(data[: len(data) // 2])
    (root / "JPEGImages" / "d.jpg").write_bytes(b"")
    (root / "JPEGImages" / "e.jpg").write_text("hello")
    (root / "ImageSets/Main/train.txt").write_text("a\nb\nc\nd\ne\n")
    (root / "ImageSets/Main/val.txt").write_text("a\n")


def test_image_checks_find_each_kind_of_bad_file(tmp_path):
    broken_set(tmp_path)
    images = tmp_path / "JPEGImages"
    assert check_image(images / "a.jpg", "full") is None
    assert check_image(images / "b.jpg", "quick") == "missing"
    assert "truncated JPEG" in check_image(images / "c.jpg", "quick")
    assert check_image(images / "d.jpg", "quick") == "empty file"
    assert "not an image" in check_image(images / "e.jpg", "quick")
    dataset = VOCDetection(str(tmp_path), "train", class_names=["cat", "dog"], on_error="collect")
    report = check_dataset(dataset, "data.train", "quick", settle=False)
    assert [p.kind for p in report.problems] == ["missing_image"] + ["unreadable_image"] * 3
    assert report.missing_classes == ["dog"] and report.boxes["cat"] == 5
    text = format_report(report)
    assert "image file not found" in text and "class 'dog' of the config has no instance" in text


def test_start_up_check_stops_or_skips(tmp_path, caplog):
    broken_set(tmp_path)
    cfg = compose(["data=raccoon", f"data.root={tmp_path}", "data.class_names=[cat]"])
    with pytest.raises(DatasetError, match=r"image file not found: .*b.jpg.*and 3 more problems"):
        build_dataset(cfg.data, "train", None)
    cfg.data.on_error = "skip"
    with caplog.at_level(logging.WARNING):
        dataset = build_dataset(cfg.data, "train", None)
    assert [r.path.name for r in dataset.records] == ["a.jpg"]
    assert all(f"{n}.jpg" in caplog.text for n in "bcde") and "skipped 4 of 5 images" in caplog.text


@pytest.mark.parametrize("level", ["quick", "full"])
def test_size_mismatch_is_an_error_at_both_levels(tmp_path, level):
    write_voc(tmp_path, "a", [("cat", (1, 1, 10, 20), False)], size=(100, 60))  # the image is 100 x 80
    (tmp_path / "ImageSets/Main/train.txt").write_text("a\n")
    dataset = VOCDetection(str(tmp_path), "train", class_names=["cat"])
    report = check_dataset(dataset, "data.train", level, settle=False)
    assert report.size_mismatch and [p.kind for p in report.problems] == ["size_mismatch"]
    assert "annotation says 60x100 (h x w), the image is 80x100" in report.size_mismatch[0]
    with pytest.raises(DatasetError, match=r"a.xml: annotation says 60x100 .*data.on_error=skip"):
        check_dataset(dataset, "data.train", level)


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_cache_returns_the_decoded_images(tmp_path, tiny_shapes, mode):
    dataset = VOCDetection(str(tiny_shapes), "val", class_names=["circle", "square", "triangle", "star"])
    cache = ImageCache(mode, str(tmp_path / "cache"))
    assert cache.fill(dataset.records)
    for rec in dataset.records:
        np.testing.assert_array_equal(cache.get(rec.path), read_image(rec.path))
    if mode == "disk":
        files = sorted((tmp_path / "cache").rglob("*.npy"))
        assert len(files) == 4
        stamp = [f.stat().st_mtime_ns for f in files]
        cache.fill(dataset.records)  # already there: not written again
        assert [f.stat().st_mtime_ns for f in files] == stamp
    else:
        cache.get(dataset.records[0].path)[:] = 0  # a transform working in place must not spoil the cache
        assert cache.get(dataset.records[0].path).any()


def test_check_and_browse_tools(tmp_path, tiny_shapes, capsys):
    from detframe.cli.dataset_tools import browse_main, check_main

    broken_set(tmp_path / "broken")
    assert check_main(["data=raccoon", f"data.root={tmp_path / 'broken'}", "data.class_names=[cat]"]) == 1
    out = capsys.readouterr().out
    assert "truncated JPEG" in out and "4 problems" in out
    assert check_main([f"data.root={tiny_shapes}", "level=quick"]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "data.val: CocoDetection(4 images" in out
    assert check_main(["data.roott=x"]) == 2 and "Did you mean 'root'" in capsys.readouterr().err
    folder = tmp_path / "browse"
    assert browse_main([f"data.root={tiny_shapes}", "pipeline=yolo", "pipeline.size=128", "n=3",
                        f"out={folder}"]) == 0
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert len(pngs) == 4 and "grid.png" in pngs
    assert "boxes per class in these images: circle" in capsys.readouterr().out
    assert cv2.imread(str(folder / pngs[0])).shape == (128, 128, 3)


@pytest.mark.slow
def test_tools_run_as_scripts(tmp_path, tiny_shapes):
    result = run_tool("check_dataset.py", [f"data.root={tiny_shapes}", "splits=val"], cwd=tmp_path)
    assert result.returncode == 0 and "no problems found" in result.stdout
