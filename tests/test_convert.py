"""tools/convert.py: a torchvision detector's weights (random here: no downloads) as a detframe checkpoint
that evaluates as the same network and fine-tunes to another class list through load_from."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from .badinput.helpers import assert_fails, run_main


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    path = tmp_path_factory.mktemp("tv") / "ssdlite_tv.pth"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def test_converted_checkpoint_is_torchvisions_network(torchvision_file, tmp_path):
    # The converted tensors are `convert_state_dict`'s, whose outputs equal torchvision's
    # (tests/models/test_torchvision_equivalence.py); the file brings the config that builds that network.
    from detframe.config import load_run_config
    from detframe.engine import load_checkpoint
    from detframe.models import build_detector
    from detframe.models.convert import COCO80_IDS, convert_state_dict

    path, theirs = torchvision_file
    out = tmp_path / "ssdlite_coco.pt"
    args = ["arch=ssdlite320_mobilenet_v3_large", f"weights={path}", f"out={out}"]
    result = run_main("convert", args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"load_from={out}" in result.stdout and "80 classes" in result.stdout
    state = load_checkpoint(out, "checkpoint")
    cfg = load_run_config(out, state)
    assert len(cfg.data.class_names) == 80 and cfg.data.class_names[0] == "person"
    assert cfg.model.backbone.pretrained is None  # nothing to download when the file is used
    ours = build_detector(cfg.model)
    ours.load_state_dict(state["model"])  # strict: every tensor of the built model, nothing else
    expected = convert_state_dict(theirs.state_dict(), "ssdlite320_mobilenet_v3_large", COCO80_IDS)
    for key, value in expected.items():
        if key in state["model"]:
            assert torch.equal(state["model"][key], value), key
    assert sum(key in state["model"] for key in expected) >= len(state["model"]) - 2  # pixel mean/std


def test_converted_checkpoint_fine_tunes_to_other_classes(torchvision_file, tmp_path):
    from detframe.config import compose
    from detframe.engine.state import load_weights
    from detframe.models import build_detector

    path, _ = torchvision_file
    out = tmp_path / "c.pt"
    assert run_main("convert", ["arch=ssdlite320_mobilenet_v3_large", f"weights={path}", f"out={out}"],
                    tmp_path).returncode == 0
    cfg = compose(["model=ssdlite_mobilenetv3", "data.class_names=[raccoon]", "model.head.num_classes=1"])
    match = load_weights(build_detector(cfg.model), out, OmegaConf.to_container(cfg.model))
    assert match.params_fraction > 0.9  # all but the class logits


@pytest.mark.parametrize("args, culprits", [
    (["arch=keypointrcnn_resnet50_fpn", "weights=x.pth", "out=o.pt"],
     ["arch=keypointrcnn_resnet50_fpn", "expected one of"]),
    (["arch=retinanet_resnet50_fpn", "weights=COCO_V9", "out=o.pt"],
     ["weights=COCO_V9", "neither an existing file nor a torchvision weight name", "COCO_V1"]),
    (["arch=retinanet_resnet50_fpn", "weights=x.pth", "out=."], ["out=.", "a folder"]),
    (["arch=retinanet_resnet50_fpn", "out=o.pt"], ["missing weights"]),
])
def test_convert_refuses_bad_arguments(args, culprits, tmp_path):
    assert_fails(run_main("convert", args, tmp_path), *culprits)
