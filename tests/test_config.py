"""Every config composes and builds; bad keys, types and names give short errors that suggest a fix."""
import pytest

from detframe.config import experiments
from detframe.errors import ConfigError
from detframe.models import build_detector

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
    cfg.model.backbone.pretrained = None  # the recipes name ImageNet weights; tests download nothing
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
