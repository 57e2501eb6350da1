"""tools/eval.py end to end: a checkpoint on its own config, group overrides, a results file, torchrun."""
import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from detframe.cli.eval import run_eval
from detframe.errors import UserError

from ..conftest import FAST, REPO, compose, run_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tiny_shapes, tmp_path_factory):
    """An untrained model saved the way the runner saves it (weights + resolved config): no training
    needed."""
    from detframe.engine import save_checkpoint
    from detframe.models import build_detector

    cfg = compose([f"data.root={tiny_shapes}", *FAST])
    model = build_detector(cfg.model)
    path = tmp_path_factory.mktemp("run") / "checkpoints" / "best.pt"
    save_checkpoint({"model": model.state_dict(), "config": OmegaConf.to_yaml(cfg, resolve=True)}, path)
    return path


def metrics_of(folder):
    return json.loads((folder / "metrics.json").read_text())["metrics"]


def test_checkpoint_with_group_overrides_then_its_results_file(checkpoint, tiny_shapes, tmp_path):
    args = [f"checkpoint={checkpoint}", "data=shapes_voc", f"data.root={tiny_shapes}",
            "evaluator=[coco,voc07,voc12]", "evaluator.voc12.iou_threshold=0.3",
            "evaluator.confusion.score_threshold=0.01"]
    result = run_tool("eval.py", args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = checkpoint.parent.parent / "eval_best"
    metrics = metrics_of(out)
    assert {"coco/AP", "voc07/mAP", "voc12/mAP"} <= set(metrics)
    assert "VOCDetection(4 images" in result.stdout
    assert "voc12: per-class VOC AP (area, IoU >= 0.3)" in result.stdout
    for name in ("report.md", "coco_pr_curves.png", "voc07_per_class.md", "confusion_matrix.png",
                 "detections.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "confusion_matrix.json").read_text())["score_threshold"] == 0.01

    # the written detections, evaluated without a model (in this process: the same code, no start-up), give
    # the same numbers
    args = [f"results={out / 'detections.json'}", "data=shapes_voc", f"data.root={tiny_shapes}",
            "evaluator=[coco,voc07,voc12]", "evaluator.voc12.iou_threshold=0.3", f"out={tmp_path / 'again'}"]
    assert run_eval(args) == metrics == metrics_of(tmp_path / "again")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 0, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
                               {"image_id": 0, "category_id": 9, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    with pytest.raises(UserError, match="entry 1 .*category_id 9 is not a category"):
        run_eval([f"results={bad}", "data=shapes_voc", f"data.root={tiny_shapes}"])


def test_torchrun_gathers_the_shards(checkpoint, tmp_path):
    # Both runs in subprocesses with one thread and one image per batch: an untrained model's scores are
    # nearly tied, so a different thread count or batch composition changes float rounding and hence which
    # detections survive top-k/NMS. With these fixed, the only difference left is the sharding and the gather.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    common = [f"checkpoint={checkpoint}", "plots=false", "data.val_batch_size=1"]
    one = subprocess.run([sys.executable, str(REPO / "tools" / "eval.py"), *common,
                          f"out={tmp_path / 'one'}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-3000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(REPO / "tools" / "eval.py"), *common, f"out={tmp_path / 'two'}"]
    two = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    assert metrics_of(tmp_path / "two") == metrics_of(tmp_path / "one")
    dets = [sorted(json.loads((tmp_path / d / "detections.json").read_text()),
                   key=lambda r: (r["image_id"], r["category_id"], r["score"], r["bbox"]))
            for d in ("one", "two")]
    assert dets[0] == dets[1] and len(dets[0]) > 0
    assert two.stdout.count("report written to") == 1  # rank 0 only
