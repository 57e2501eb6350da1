"""A tiny training run through tools/train.py with the YOLO recipe and every loading option on."""
import pytest

from ..conftest import FAST, run_tool

pytestmark = pytest.mark.slow


def test_yolo_recipe_trains_with_switch_multiscale_grouping_cache_and_workers(tmp_path, tiny_shapes):
    run_dir = tmp_path / "run"
    args = [f"data.root={tiny_shapes}", *FAST, "pipeline=yolo", "pipeline.size=128",
            "pipeline.multi_scale=[96,160]", "data.num_workers=2", "data.aspect_ratio_grouping=true",
            "data.cache=ram", "data.check=full",
            "train.max_epochs=2", "+hooks.pipeline_switch={type: PipelineSwitchHook, num_last_epochs: 1}",
            f"hydra.run.dir={run_dir}"]
    result = run_tool("train.py", args, cwd=tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "epoch 2: training without Mosaic, RandomAffine, MixUp for the last 1 epochs" in log
    assert "data.cache=ram: 8 images cached" in log and "image files checked (full" in log
    assert (run_dir / "checkpoints" / "last.pt").is_file() and "coco/AP50" in log
