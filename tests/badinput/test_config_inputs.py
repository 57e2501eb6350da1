"""The bad-input catalogue, configs and tool arguments: each bad value, given to the real tool, stops it
with exit status 2 and one line naming the key and the value (and what is allowed), without a
traceback, and before any dataset is read.

A few cases start the tool in a subprocess as a user does (`SUBPROCESS`); the others call the same
tool's `main` in this process (`run_main`), which spares ~4 s of interpreter start-up each."""
from __future__ import annotations

import pytest

from .helpers import TINY_TRAIN, assert_fails, run, run_main

pytestmark = pytest.mark.slow
# The cases run as a user runs them, in a new process; the rest through the tools' main in this one.
SUBPROCESS = {"data.batch_size=0", "data.batch_size=1", "optimizer.lr=fast", "pipeline.size=96",
              "check_dataset-level=deep", "anchors-restarts=two"}


def case(*overrides: str, says: tuple[str, ...] = (), named: str | None = None, drop: str = "") -> tuple:
    """A bad command line; the message must name `named` (default: the last override, key=value) and
    say `says`; `drop`: leave out TINY_TRAIN's overrides of this key (another model has no such key)."""
    return pytest.param(list(overrides), [named or overrides[-1], *says], drop, id=named or overrides[-1])


TRAIN = [
    case("data.batch_size=0", says=("expected an integer >= 1",)),
    case("data.batch_size=1", says=("BatchNorm layers", "data.batch_size>=2", "train.freeze_norm=[*]")),
    case("optimizer.lr=-0.01", says=("expected a number > 0",)),
    case("optimizer.lr=fast", says=("expected a number > 0",)),
    case("optimizer.momentum=1.5", says=("expected a number in [0, 1)",)),
    case("optimizer.weight_decay=-1", says=("expected a number >= 0",)),
    case("model.head.num_classes=3", says=("expected 4, the number of data.class_names",)),
    case("data.class_names=[circle,square,circle,star]",
         named="data.class_names=[circle, square, circle, star]", says=("circle repeated",)),
    case("data.num_workers=-1", says=("expected an integer >= 0",)),
    case("train.accumulate=0", says=("expected an integer >= 1",)),
    case("train.max_epochs=0", says=("expected an integer >= 1",)),
    case("seed=-1", says=("expected an integer in [0, 4294967295]",)),
    case("runtime.amp=fp61", says=("one of off, fp16, bf16", "Did you mean 'fp16'?")),
    case("runtime.device=gpu", says=("auto, cpu, cuda or cuda:N",)),
    case("runtime.dist_backend=mpi", says=("one of auto, nccl, gloo",)),
    case("data.on_error=ignore", says=("one of error, skip",)),
    case("data.check=deep", says=("one of quick, full, off",)),
    case("data.cache=ssd", says=("one of ram, disk",)),
    case("train.nonfinite=warn", says=("one of error, skip",)),
    case("pipeline.size=0", says=("expected an integer >= 1, or [h, w] of two",)),
    case("pipeline.size=8", says=("expected at least 16, the model's largest stride",)),
    case("model=ssd300_vgg16", named="pipeline.size=96", says=("the model does not fit 96x96 px inputs",),
         drop="model.backbone.arch"),
    case("pipeline.multi_scale=[480,320]", named="pipeline.multi_scale=[480, 320]",
         says=("[min, max] with min <= max",)),
    case("pipeline.multi_scale=[100,120]", named="pipeline.multi_scale=[100, 120]",
         says=("holding a multiple of 32",)),
    case("pipeline.train.0.p=1.5", named="pipeline.train[0].p=1.5", says=("expected a number in [0, 1]",)),
    case("model.head.score_threshold=1.5", says=("expected a number in [0, 1]",)),
    case("model.head.nms_iou=0", says=("expected a number in (0, 1]",)),
    case("model.backbone.arch=tiny", says=("one of large, small",)),
    case("model=faster_rcnn_r18_fpn", "model.rpn_head.nms_iou=0", says=("expected a number in (0, 1]",),
         drop="model.backbone.arch"),
    case("model=faster_rcnn_r18_fpn", "model.roi_head.sampler.positive_fraction=1.5",
         says=("expected a number in [0, 1]",), drop="model.backbone.arch"),
    case("model=cascade_rcnn_r50_fpn", "model.roi_head.stage_ious=[0.5,0.6,1.7]",
         named="model.roi_head.stage_ious=[0.5, 0.6, 1.7]", drop="model.backbone.arch"),
    case("model=mask_rcnn_r18_fpn", "data.with_masks=true", "model.roi_head.mask_head.mask_threshold=2",
         says=("expected a number in [0, 1]",), drop="model.backbone.arch"),
    case("model=mask_rcnn_r18_fpn", "data.with_masks=true", "model.roi_head.mask_head.num_convs=0",
         says=("expected an integer >= 1",), drop="model.backbone.arch"),
    case("model=rfcn_r18", "model.roi_head.k=0", says=("expected an integer >= 1",),
         drop="model.backbone.arch"),
    case("model=rfcn_r18", "model.roi_head.stride=16", says=("expected the stride of the feature map",
                                                            "3x3 for a 96x96 input (stride 32)"),
         drop="model.backbone.arch"),
    case("scheduler.warmup_iters=-5", says=("expected an integer >= 0",)),
    # an older message (tests/engine/test_optim.py asserts it): the key, then the value
    case("scheduler.warmup=cosine", named="scheduler.warmup",
         says=("expected linear, exp or none, got 'cosine'",)),
    case("hooks.logger.interval=0", says=("expected an integer >= 1",)),
    case("+hooks.ema={type: EMAHook, decay: 1.0}", named="hooks.ema.decay=1.0",
         says=("expected a number in [0, 1)",)),
    case("evaluator.coco.backend=pycoco", says=("Did you mean 'pycocotools'?",)),
    case("evaluator=[coco,confusion]", "evaluator.confusion.iou_threshold=0", says=("(0, 1]",)),
    case("hooks.checkpoint.save_best=voc07/mAP", says=("no evaluator 'voc07'",)),
]


@pytest.mark.parametrize("overrides,culprits,drop", TRAIN)
def test_train_stops_on_a_bad_value(overrides, culprits, drop, tiny_shapes, tmp_path):
    base = [a for a in TINY_TRAIN if not (drop and a.startswith(drop + "="))]
    args = [*base, f"data.root={tiny_shapes}", f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    runner = run if culprits[0] in SUBPROCESS else run_main
    out = assert_fails(runner("train", args, tmp_path), *culprits)
    assert "data.train: " not in out  # stopped before the dataset was read
    assert len([line for line in out.splitlines() if "error:" in line]) == 1


def test_eval_checks_its_config_and_the_evaluators_before_reading(tiny_shapes, tmp_path):
    # No results file: the overrides are checked before anything is read.
    args = [f"results={tmp_path / 'none.json'}", f"data.root={tiny_shapes}",
            "evaluator.confusion.score_threshold=2"]
    out = assert_fails(run("eval", args, tmp_path), "evaluator.confusion.score_threshold=2",
                       "expected a number in [0, 1]")
    assert "data.val: " not in out


def tool_case(tool: str, *args: str, says: tuple[str, ...] = ()) -> tuple:
    """A tool with one bad argument (the last one, which the message must name) among good ones."""
    return pytest.param(tool, list(args), [args[-1], *says], id=f"{tool}-{args[-1]}")


TOOL_ARGS = [
    tool_case("eval", "checkpoint=x.pt", "split=test", says=("one of val, train",)),
    tool_case("eval", "checkpoint=x.pt", "plots=maybe", says=("true or false",)),
    tool_case("eval", "checkpoint=x.pt", "device=gpu0", says=("auto, cpu, cuda or cuda:N",)),
    tool_case("eval", "chekpoint=x.pt", says=("Did you mean 'checkpoint'?",)),
    tool_case("eval", "results=r.json", "out={file}", says=("expected a folder",)),
    tool_case("check_dataset", "level=deep", says=("one of full, quick, off",)),
    tool_case("check_dataset", "splits=tarin", says=("Did you mean 'train'?",)),
    tool_case("check_dataset", "levle=full", says=("Did you mean 'level'?",)),
    tool_case("browse_dataset", "n=0", says=("expected an integer >= 1",)),
    tool_case("browse_dataset", "seed=-3", says=("expected an integer >= 0",)),
    tool_case("browse_dataset", "split=vla", says=("Did you mean 'val'?",)),
    tool_case("browse_dataset", "out={file}", says=("expected a folder",)),
    tool_case("anchors", "k=0", says=("expected an integer >= 1",)),
    tool_case("anchors", "iou=1.5", says=("expected a number in (0, 1]",)),
    tool_case("anchors", "restarts=two", says=("k, restarts and seed take integers",)),
    tool_case("anchors", "split=test", says=("one of train, val",)),
    tool_case("export", "checkpoint=x.pt", "format=tflite", says=("one of onnx, torchscript",)),
    tool_case("export", "checkpoint=x.pt", "half=true", says=("needs device=cuda",)),
    tool_case("export", "checkpoint=x.pt", "dynamic=hw", says=("one of batch, none, all",)),
    tool_case("export", "checkpoint=x.pt", "format=torchscript", "dynamic=all", says=("ONNX only",)),
    tool_case("export", "checkpoint=x.pt", "dynamic=height", says=("one of batch, none, all",)),
    tool_case("export", "checkpoint=x.pt", "opset=9", says=("expected an integer in [11, 20]",)),
    tool_case("export", "checkpoint=x.pt", "nms=maybe", says=("true or false",)),
    tool_case("export", "checkpoint=x.pt", "size=0", says=("expected an integer >= 1, or [h, w] of two",)),
    tool_case("export", "checkpoint=x.pt", "out={dir}", says=("is a folder",)),
    tool_case("export", "checkpoint=x.pt", "format=torchscript", "opset=13", says=("format=torchscript",)),
    tool_case("export", "chekpoint=x.pt", says=("Did you mean 'checkpoint'?",)),
    tool_case("predict", "checkpoint=x.pt", "source=a.jpg", "batch_size=0",
              says=("expected an integer >= 1",)),
    tool_case("predict", "checkpoint=x.pt", "source=a.jpg", "score_threshold=1.5",
              says=("expected a number in [0, 1]",)),
    tool_case("predict", "checkpoint=x.pt", "source=a.jpg", "max_detections=0",
              says=("expected an integer >= 1",)),
    tool_case("predict", "checkpoint=x.pt", "source=a.jpg", "size=[320]",
              says=("expected an integer >= 1, or [h, w] of two",)),
    tool_case("predict", "checkpoint=x.pt", "source=a.jpg", "device=gpu0",
              says=("auto, cpu, cuda or cuda:N",)),
    tool_case("predict", "checkpoint=x.pt", "source=a.jpg", "save_txt=maybe", says=("true or false",)),
    tool_case("predict", "checkpoint=x.pt", "source=a.jpg", "recursive=yes", says=("true or false",)),
    tool_case("predict", "checkpoint=x.pt", "sourse=a.jpg", says=("Did you mean 'source'?",)),
    tool_case("predict", "checkpoint=x.pt", "source=a.jpg", "out={file}", says=("expected a folder",)),
    tool_case("predict", "checkpoint=x.pt", "source=no_such_file.jpg", says=("no such file or folder",)),
    tool_case("benchmark", "rounds=0", says=("expected an integer >= 1",)),
    tool_case("benchmark", "batch_size=1", says=("expected an integer >= 2",)),
    tool_case("benchmark", "amp=fp8", says=("one of off, fp16, bf16",)),
    tool_case("benchmark", "size=big", says=("an integer >= 1, or [h, w] of two",)),
    tool_case("benchmark", "size=0", says=("an integer >= 1, or [h, w] of two",)),
    tool_case("benchmark", "size=8", says=("the model's largest stride",)),
    tool_case("benchmark", "device=gpu0", says=("auto, cpu, cuda or cuda:N",)),
    tool_case("benchmark", "config=ssdlite_shapes", "checkpoint=x.pt", says=("not both",)),
    tool_case("benchmark", "config=ssd300_cooc", says=("Did you mean 'ssd300_coco'?",)),
    tool_case("benchmark", "out={file}", says=("expected a folder",)),
    # a bare word where key=value belongs (checkpoint= forgotten)
    tool_case("eval", "best.pt", says=("expected key=value", "checkpoint (a checkpoint")),
    tool_case("predict", "best.pt", says=("expected key=value", "checkpoint, source")),
    tool_case("export", "best.pt", says=("expected key=value", "checkpoint, format")),
    tool_case("benchmark", "best.pt", says=("expected key=value", "config, checkpoint")),
]


@pytest.mark.parametrize("tool,args,culprits", TOOL_ARGS)
def test_tool_stops_on_a_bad_argument(tool, args, culprits, tiny_shapes, tmp_path):
    file = tmp_path / "a_file.txt"
    file.write_text("not a folder\n")
    runner = run if f"{tool}-{args[-1]}" in SUBPROCESS else run_main
    args = [a.format(file=file, dir=tmp_path) for a in args] + [f"data.root={tiny_shapes}"]
    out = assert_fails(runner(tool, args, tmp_path), *(c.format(file=file, dir=tmp_path) for c in culprits))
    assert "data.train: " not in out and "data.val: " not in out
