"""Every config composes and builds; bad keys, types and names give short errors that suggest a fix; values
are checked against their rules (detframe/rules.py) before any work starts."""
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from detframe.config import check_training, experiments
from detframe.engine.preflight import BATCHNORM_ONE_VALUE, check_components, check_model, check_train_loader
from detframe.errors import ConfigError
from detframe.models import build_detector
from detframe.registry import Registry, config_path
from detframe.rules import Each, IoUThreshold, OneOf, PositiveInt, Probability, Range, check_value

from .conftest import CONFIGS, compose

GROUP_OPTIONS = [
    (group.name, path.stem)
    for group in sorted(CONFIGS.iterdir()) if group.is_dir() and group.name != "experiment"
    for path in sorted(group.glob("*.yaml"))
]


@pytest.mark.parametrize("name", experiments())
def test_every_experiment_composes_and_builds(name):
    cfg = compose([f"config={name}"])
    assert cfg.experiment_name == name
    if "pretrained" in cfg.model.backbone:  # the recipes name ImageNet weights; tests download nothing
        cfg.model.backbone.pretrained = None
    model = build_detector(cfg.model)
    assert model.head.num_classes == len(cfg.data.class_names) == cfg.data.num_classes


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_group_option_composes(group, option):
    cfg = compose([f"{group}={option}"])
    if group == "model":
        build_detector(cfg.model)


def test_value_group_and_addition_overrides():
    cfg = compose(["optimizer.lr=0.123", "data=shapes_voc", "+model.head.extra_key=1", "train.max_epochs=3"])
    assert cfg.optimizer.lr == 0.123 and cfg.data.train.type == "VOCDetection"
    assert cfg.model.head.extra_key == 1 and cfg.train.max_epochs == 3


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["optimizer.lrr=0.1"], ["unknown config key 'optimizer.lrr'", "Did you mean 'lr'?", "momentum",
                                 "+optimizer.lrr="]),
        (["train.max_epoch=3"], ["'train.max_epoch'", "Did you mean 'max_epochs'?"]),
        (["modle=ssd300_vgg16"], ["'modle'", "Did you mean 'model'?"]),
        (["model=ssd300_vgg"], ["model=ssd300_vgg", "Did you mean 'ssd300_vgg16'?", "ssdlite_mobilenetv3"]),
        (["config=ssdlite_shape"], ["config=ssdlite_shape", "Did you mean 'ssdlite_shapes'?",
                                    "Experiments in"]),
        (["train.max_epochs=abc"], ["train.max_epochs", "wrong type", "abc"]),
        (["data.batch_size=[1,2]"], ["data.batch_size", "wrong type"]),
    ],
)
def test_bad_overrides_give_short_errors(overrides, expected):
    with pytest.raises(ConfigError) as e:
        compose(overrides)
    message = str(e.value)
    for text in expected:
        assert text in message, message
    assert "\n" not in message and "Traceback" not in message


def test_unknown_component_and_argument_name_the_config_path():
    cfg = compose(["model.head.type=SSDHaed"])
    with pytest.raises(ConfigError, match=r"model.head.type: unknown head type 'SSDHaed'. "
                                          r"Did you mean 'SSDHead'\?"):
        build_detector(cfg.model)
    cfg = compose(["+model.neck.out_channel=[1]"])
    with pytest.raises(ConfigError, match=r"model.neck.out_channel: SSDExtraLayers has no argument "
                                          r"'out_channel'. Did you mean 'out_channels'\?"):
        build_detector(cfg.model)


def test_user_experiment_file_outside_the_repo(tmp_path):
    own = tmp_path / "elsewhere"
    (own / "data").mkdir(parents=True)
    (own / "data" / "my_set.yaml").write_text(
        "class_names: [cat, dog]\nroot: /data/pets\n"
        "train: {type: VOCDetection, root: '${data.root}', split: train}\n"
        "val: {type: VOCDetection, root: '${data.root}', split: val}\n")
    (own / "my_exp.yaml").write_text("defaults:\n  - override /data: my_set\n"
                                     "  - override /model: ssd300_vgg16\n"
                                     "optimizer:\n  lr: 0.002\ntrain:\n  max_epochs: 24\n")
    cfg = compose([f"config={own / 'my_exp.yaml'}", "train.max_epochs=30"])
    assert cfg.experiment_name == "my_exp" and cfg.data.class_names == ["cat", "dog"]
    assert cfg.optimizer.lr == 0.002 and cfg.train.max_epochs == 30 and cfg.model.backbone.type == "SSDVGG16"
    assert build_detector(cfg.model).head.num_classes == 2


def test_misspelt_key_in_a_user_file_names_it(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError) as e:
        compose([f"config={path}"])
    assert "train.max_epoch" in str(e.value) and "Did you mean 'max_epochs'?" in str(e.value)
    with pytest.raises(ConfigError, match="file not found"):
        compose([f"config={tmp_path / 'missing.yaml'}"])


def test_a_removed_key_names_its_replacement(tmp_path):
    for override in ("hooks.eval=null", "hooks.eval.interval=2", "+hooks.eval={type: EvalHook}"):
        with pytest.raises(ConfigError, match=r"EvalHook is gone: .*train.val_interval=N \(0: never\)"):
            compose([override])
    old = tmp_path / "old.yaml"
    old.write_text("hooks:\n  eval: {type: EvalHook, interval: 2}\n")
    with pytest.raises(ConfigError, match=r"^hooks.eval: EvalHook is gone"):
        compose([f"config={old}"])
    assert compose(["train.val_interval=0"]).train.val_interval == 0


@pytest.mark.parametrize("name", experiments())
def test_every_experiment_passes_the_training_checks(name):
    cfg = compose([f"config={name}"])
    check_training(cfg)
    check_components(cfg, ("optimizer", "scheduler", "evaluator", "pipeline.train", "pipeline.val"))


@pytest.mark.parametrize(
    "rule,good,bad,text",
    [
        (Range(1, integer=True), [1, 7], [0, 1.0, True, "2", None], "an integer >= 1"),
        (Range(0, 1, lo_open=True), [1e-9, 1], [0, 1.5, float("nan"), "fast"], "a number in (0, 1]"),
        (OneOf("off", "fp16", aliases=["False"]), ["off", "False"], ["fp61", ["off"]], "one of off, fp16"),
        (Each(Range(0, 1, hi_open=True), length=2), [[0.9, 0.999], (0, 0.5)], [[0.9, 1], [0.5], "ab"],
         "a list of 2 items, each a number in [0, 1)"),
    ],
)
def test_rules(rule, good, bad, text):
    assert rule.text == text
    assert all(rule.allows(v) for v in good) and not any(rule.allows(v) for v in bad if v is not None)


def test_a_value_outside_its_rule_names_key_value_and_what_is_allowed():
    message = r"^runtime.amp=fp61: expected one of off, fp16. Did you mean 'fp16'\?$"
    with pytest.raises(ConfigError, match=message):
        check_value("runtime.amp", "fp61", [OneOf("off", "fp16")])
    check_value("train.max_iters", None, [Range(1)])  # whether null is allowed is the type's business


def test_annotated_and_registered_arguments_are_checked_when_built_or_checked():
    reg = Registry("thing")

    @reg.register(rules={"ratio": Probability})
    class Widget:
        def __init__(self, count: PositiveInt, iou: IoUThreshold = 0.5, ratio: float = 0.5, parts=None):
            if parts is not None and len(parts) != count:
                raise ValueError(f"{count} counts but {len(parts)} parts")

    cfg = OmegaConf.create({"widgets": [{"type": "Widget", "count": 2}, {"type": "Widget", "count": 0}]})
    assert config_path(cfg.widgets[1]) == "widgets[1]"
    reg.build(cfg.widgets[0])
    with pytest.raises(ConfigError, match=r"^widgets\[1\].count=0: expected an integer >= 1$"):
        reg.check(cfg.widgets[1])
    with pytest.raises(ConfigError, match=r"^Widget.ratio=2: expected a number in \[0, 1\]$"):
        reg.build({"type": "Widget", "count": 1, "ratio": 2})
    with pytest.raises(ConfigError, match=r"^Widget.iou=fast: expected a number in \(0, 1\]$"):
        reg.check({"type": "Widget", "iou": "fast"})  # `count` is not asked for: the builder may pass it
    with pytest.raises(ConfigError, match=r"^Widget: Widget: 2 counts but 1 parts$"):  # not a traceback
        reg.build({"type": "Widget", "count": 2, "parts": [1]})


def test_batchnorm_with_one_image_per_batch_stops_before_training(tiny_shapes):
    from detframe.engine.freeze import freeze

    cfg = compose([f"data.root={tiny_shapes}", "model.backbone.arch=small", "data.batch_size=1"])
    model = build_detector(cfg.model)
    with pytest.raises(ConfigError, match=r"^data.batch_size=1: a batch of one image per process, and the "
                                          r"model trains \d+ BatchNorm layers .*train.freeze_norm=\[\*\]"):
        check_model(cfg, model)
    with open_dict(cfg):
        cfg.runtime.sync_bn = True
    check_model(cfg, model, world_size=2)  # SyncBatchNorm: statistics over the images of both processes
    check_model(cfg, freeze(model, norms=["*"]))  # frozen: FrozenBatchNorm2d, no batch statistics


def test_a_training_set_of_one_image_stops_before_training(tiny_shapes):
    from detframe.data import build_dataloader

    cfg = compose([f"data.root={tiny_shapes}", "model.backbone.arch=small", "data.batch_size=4"])
    model = build_detector(cfg.model)
    one = build_dataloader(list(range(1)), 4, 0, train=True)
    with pytest.raises(ConfigError, match=r"^data.train has 1 image per process \(data.batch_size=4\)"):
        check_train_loader(cfg, one, model)
    five = build_dataloader(list(range(5)), 4, 0, train=True)
    check_train_loader(cfg, five, model)  # a batch of 4; the fifth image waits for the next epoch


def test_input_size_against_the_model_stride():
    cfg = compose(["config=yolov3_d53_small_raccoon", "pipeline.size=16"])
    model = build_detector(cfg.model)
    with pytest.raises(ConfigError, match=r"^pipeline.size=16: expected at least 32, the model's largest"):
        check_model(cfg, model)
    cfg.pipeline.size, cfg.pipeline.multi_scale = 320, [330, 350]
    with pytest.raises(ConfigError, match=r"^pipeline.multi_scale=\[330, 350\]: .* e.g. \[352, 352\]"):
        check_model(cfg, model)
    cfg = compose(["model=ssd300_vgg16", "pipeline.size=256"])  # SSD300's extra layers need ~270 px
    cfg.model.backbone.pretrained = None
    model = build_detector(cfg.model).train()
    with pytest.raises(ConfigError, match=r"^pipeline.size=256: the model does not fit 256x256 px inputs \("):
        check_model(cfg, model)
    assert model.training  # put back as it was


def test_a_batchnorm_error_during_training_is_one_line(tmp_path, monkeypatch, caplog):
    from hydra.core.hydra_config import HydraConfig

    import detframe.engine
    from detframe.cli.train import train_task
    from detframe.config import compose as compose_config

    with_hydra = compose_config(["data.batch_size=3"], hydra=True)
    with open_dict(with_hydra):
        with_hydra.hydra.runtime.output_dir = str(tmp_path)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", HydraConfig.instance().cfg)  # put back afterwards
    HydraConfig.instance().set_config(with_hydra)  # as Hydra's run_job does
    cfg = compose(["data.batch_size=3"])

    class Failing:
        def train(self):
            raise ValueError(f"{BATCHNORM_ONE_VALUE}, got input size torch.Size([1, 128, 1, 1])")

    monkeypatch.setattr(detframe.engine, "build_runner", lambda cfg, work_dir: Failing())
    with pytest.raises(SystemExit) as e:
        train_task(cfg, [])
    assert e.value.code == 2
    assert "data.batch_size=3: a training batch held a single image" in caplog.text


def test_default_and_valid_values_are_left_alone():
    cfg = compose(["runtime.amp=bf16", "runtime.device=cuda:1", "pipeline.size=[320,480]", "seed=4294967295",
                   "train.max_iters=10", "pipeline.multi_scale=[320,320]", "+hooks.ema={type: EMAHook}"])
    check_training(cfg)
    check_components(cfg)
    assert torch.device(cfg.runtime.device).index == 1
