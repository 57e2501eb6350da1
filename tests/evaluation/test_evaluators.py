"""Several evaluators from the config, metric names, reports (files and TensorBoard)."""
import json

import pytest
import torch

from detframe.data import CocoDetection
from detframe.errors import ConfigError
from detframe.evaluation import CocoEvaluator, EvaluatorGroup, build_evaluator
from detframe.structures import Detections

from ..conftest import compose


@pytest.fixture(scope="module")
def val_set(tiny_shapes):
    return CocoDetection(str(tiny_shapes / "annotations/instances_val.json"), str(tiny_shapes / "JPEGImages"))


def feed(group, dataset, jitter=0.0):
    """The ground truth as detections (slightly moved), with decreasing scores, plus one false positive."""
    group.reset()
    for rec in dataset.records:
        boxes = torch.tensor(rec.boxes) + jitter
        boxes = torch.cat([boxes, torch.tensor([[0.0, 0.0, 5.0, 5.0]])])
        scores = torch.linspace(0.9, 0.5, len(boxes))
        labels = torch.cat([torch.tensor(rec.labels), torch.tensor([0])])
        group.process([rec.image_id], [Detections(boxes, scores, labels)])
    return group.compute()


def test_default_config_is_coco_and_save_best_metric_exists(val_set):
    cfg = compose()
    assert list(cfg.evaluator) == ["coco"] and cfg.hooks.checkpoint.save_best == "coco/AP"
    metrics = feed(build_evaluator(cfg.evaluator, val_set), val_set)
    assert "coco/AP" in metrics and len(metrics) == 12


def test_several_evaluators_label_their_metrics(val_set):
    cfg = compose(["evaluator=[coco,voc07,voc12,confusion]",
                   "+evaluator.strict={type: VOCEvaluator, metric: voc12, iou_threshold: 0.9}"])
    group = build_evaluator(cfg.evaluator, val_set)
    metrics = feed(group, val_set, jitter=1.0)
    assert {"coco/AP", "coco/AP50", "coco/ARl", "voc07/mAP", "voc12/mAP", "strict/mAP"} <= set(metrics)
    assert len(metrics) == 15  # 12 + 3; the confusion matrix adds no metric
    # boxes moved by a pixel fail IoU 0.9 on small objects
    assert metrics["voc12/mAP"] > metrics["strict/mAP"]
    assert group.evaluators["voc07"].metric == "voc07" and group.evaluators["strict"].iou_threshold == 0.9


def test_config_forms_and_errors(val_set):
    single = build_evaluator({"type": "CocoEvaluator", "prefix": "coco"}, val_set)  # configs saved before
    assert list(single.evaluators) == ["coco"]
    group = build_evaluator({"coco": {"type": "CocoEvaluator"}, "voc07": None}, val_set)
    assert list(group.evaluators) == ["coco"]
    named = build_evaluator({"main": {"type": "CocoEvaluator", "prefix": "coco"}}, val_set)
    assert "coco/AP" in feed(named, val_set)
    clash = build_evaluator({"a": {"type": "VOCEvaluator", "prefix": "x"},
                             "b": {"type": "VOCEvaluator", "prefix": "x"}}, val_set)
    with pytest.raises(ConfigError, match="already produced"):
        feed(clash, val_set)
    with pytest.raises(ConfigError, match="evaluator.voc.type: unknown evaluator type 'VOCEvaluatr'. "
                                          "Did you mean 'VOCEvaluator'"):
        build_evaluator({"voc": {"type": "VOCEvaluatr"}}, val_set)
    with pytest.raises(ConfigError, match="evaluator.voc07.metric: expected one of voc07, voc12"):
        build_evaluator({"voc07": {"type": "VOCEvaluator", "metric": "voc2007"}}, val_set)
    with pytest.raises(ConfigError, match="evaluator: every evaluator is set to null"):
        build_evaluator({"coco": None}, val_set)


def test_your_own_evaluator_runs_beside_ours(val_set):
    class Counter:
        def reset(self): self.n = 0
        def process(self, image_ids, detections): self.n += sum(len(d) for d in detections)
        def compute(self): return {"count/detections": float(self.n)}

    group = EvaluatorGroup({"coco": CocoEvaluator(val_set), "count": Counter()})
    metrics = feed(group, val_set)
    assert metrics["count/detections"] == len(group.predictions) and "coco/AP" in metrics


def test_the_group_gathers_for_your_own_evaluator_across_ranks(val_set, monkeypatch):
    """Two ranks, each with a shard (the val loader's contiguous shards), image 2 on both: an evaluator
    that does not gather itself sees every image once, in dataset order."""
    import detframe.evaluation.build as build

    class Recorder:
        def reset(self): self.ids = []
        def process(self, image_ids, detections): self.ids += list(image_ids)
        def compute(self): return {"seen/images": float(len(self.ids))}

    records = val_set.records
    def predict(recs):
        return [Detections(torch.tensor(r.boxes), torch.ones(len(r.boxes)), torch.tensor(r.labels))
                for r in recs]

    monkeypatch.setattr(build, "get_world_size", lambda: 2)
    other = EvaluatorGroup({"seen": Recorder()})  # rank 1: images 2 and 3
    other.reset()
    other.process([r.image_id for r in records[2:]], predict(records[2:]))
    monkeypatch.setattr(build, "all_gather_object", lambda pending: [pending, other._pending])
    recorder = Recorder()
    group = EvaluatorGroup({"seen": recorder})  # rank 0: images 0, 1 and 2
    group.reset()
    group.process([r.image_id for r in records[:3]], predict(records[:3]))
    assert recorder.ids == []  # nothing processed before the gather
    assert group.compute() == {"seen/images": 4.0} and recorder.ids == [r.image_id for r in records]


class RecordingWriter:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def test_reports_files_and_tensorboard(val_set, tmp_path):
    cfg = compose(["evaluator=[coco,voc07,confusion]"])
    group = build_evaluator(cfg.evaluator, val_set)
    feed(group, val_set, jitter=1.0)
    writer = RecordingWriter()
    files = group.write_reports(tmp_path, {"epoch": 3}, writer=writer, step=7, plots=True)
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    assert {"metrics.json", "report.md", "coco_per_class.json", "coco_per_class.md", "coco_pr_curves.png",
            "voc07_per_class.md", "voc07_pr_curves.png", "confusion_matrix.png",
            "confusion_matrix_normalized.png", "confusion_matrix.json", "voc07_pr_per_class.png",
            "coco_pr_per_class.png"} <= names
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["epoch"] == 3 and saved["metrics"]["voc07/mAP"] == group.metrics["voc07/mAP"]
    per_class = json.loads((tmp_path / "voc07_per_class.json").read_text())
    assert [r["class"] for r in per_class] == ["circle", "square", "triangle", "star", "mAP"]
    assert "| voc07/mAP |" in (tmp_path / "report.md").read_text()
    curves = [c for c in writer.calls if c[0] == "add_pr_curve_raw"]
    assert {c[1][0] for c in curves} >= {"coco/pr_iou50/circle", "voc07/pr/star"}
    tp = curves[0][2]["true_positive_counts"]
    assert curves[0][2]["num_thresholds"] == 101 == len(tp)
    assert tp[0] >= tp[-1]  # counts fall as the threshold rises
    assert any(c[0] == "add_image" and c[1][0] == "confusion/matrix" for c in writer.calls)
    assert "circle" in group.text() and "Average Precision" in group.text(summaries=True)
