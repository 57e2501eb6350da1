"""`detframe-convert` / `python tools/convert.py`: a torchvision detector's COCO weights as a detframe
checkpoint, to evaluate as it is or to fine-tune from (`load_from=`).

    python tools/convert.py arch=retinanet_resnet50_fpn weights=retinanet_resnet50_fpn_coco-eeacb38b.pth \
        out=retinanet_r50_fpn_coco.pt
    python tools/convert.py arch=ssdlite320_mobilenet_v3_large weights=DEFAULT out=ssdlite_coco.pt  # online

The file holds the converted weights (COCO's 80 classes kept of torchvision's 91 label slots) and the
config of the equivalent detframe model (`models.convert.EQUIVALENTS`) on COCO, the recipe's settings
otherwise. `tools/eval.py checkpoint=out.pt data.root=/data/coco` evaluates it; `load_from=out.pt` in
a run on your own classes takes every tensor but the class logits, which are trained from scratch.
"""
from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import ConfigError, choices_text
from ..rules import NonEmpty
from .common import Arg, parse_args, run_tool

log = logging.getLogger("detframe")

OWN = {
    "arch": Arg(None, "the torchvision builder's name, e.g. retinanet_resnet50_fpn", rule=NonEmpty("name")),
    "weights": Arg(None, "a state dict file saved by torchvision (or torch.save), or a torchvision weight "
                         "name such as DEFAULT or COCO_V1 (downloads: needs the internet)",
                   rule=NonEmpty("path or name")),
    "out": Arg(None, "the detframe checkpoint to write (.pt)", rule=NonEmpty("path")),
}
# The COCO recipe whose settings (pipeline, evaluator, schedule) the converted checkpoint carries.
RECIPES = {
    "ssd300_vgg16": "ssd300_coco",
    "ssdlite320_mobilenet_v3_large": "ssdlite_mobilenetv3_320_coco",
    "retinanet_resnet50_fpn": "retinanet_r50_fpn_1x_coco",
    "fcos_resnet50_fpn": "fcos_r50_fpn_1x_coco",
    "fasterrcnn_resnet50_fpn": "faster_rcnn_r50_fpn_1x_coco",
    "maskrcnn_resnet50_fpn": "mask_rcnn_r50_fpn_1x_coco",
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(run_convert, argv)


def run_convert(args: Sequence[str]) -> Path:
    import torch

    from ..config import compose
    from ..engine import save_checkpoint
    from ..models import build_detector
    from ..models.convert import COCO80_IDS, EQUIVALENTS, load_torchvision
    from ..weights import describe_model

    own, rest = parse_args(args, OWN, "convert")
    missing = [key for key in OWN if key not in own]
    if missing or rest:
        raise ConfigError(f"convert takes arch=NAME weights=FILE|NAME out=FILE"
                          f"{'; missing ' + ', '.join(missing) if missing else ''}"
                          f"{'; not its arguments: ' + ' '.join(rest) if rest else ''}")
    arch, out = own["arch"], Path(own["out"]).expanduser()
    if arch not in EQUIVALENTS:
        raise ConfigError(f"arch={arch}: expected one of {choices_text(sorted(EQUIVALENTS))} (the "
                          "torchvision detectors detframe has an equivalent of)")
    if out.is_dir():
        raise ConfigError(f"out={out}: a folder; expected a file name such as {out / (arch + '_coco.pt')}")
    name, overrides = EQUIVALENTS[arch]
    recipe = [f"config={RECIPES[arch]}"] if arch in RECIPES else ["data=coco"]
    cfg = compose([*recipe, f"model={name}", *overrides])
    if "pretrained" in cfg.model.backbone:
        cfg.model.backbone.pretrained = None  # every weight comes from the file: no ImageNet download
    state = _torchvision_state(arch, own["weights"])
    model = build_detector(cfg.model)
    load_torchvision(model, state, arch, COCO80_IDS)
    saved = save_checkpoint({"model": model.state_dict(), "config": OmegaConf.to_yaml(cfg, resolve=False),
                             "meta": {"converted_from": f"torchvision {arch}, weights={own['weights']}",
                                      "torch": str(torch.__version__)}}, out)
    model_args = " ".join(shlex.quote(o) for o in [f"model={name}", *overrides])
    print(f"{saved}: torchvision {arch} as {describe_model(OmegaConf.to_container(cfg.model, resolve=True))} "
          f"(COCO's 80 classes). Evaluate: python tools/eval.py checkpoint={saved} data.root=/path/to/coco; "
          f"fine-tune: python tools/train.py {model_args} load_from={saved} ...")
    return saved


def _torchvision_state(arch: str, weights: str) -> dict:
    """The state dict of `weights`: a local file, or torchvision's weight name (downloaded)."""
    from torchvision.models import get_model_weights

    from ..models.backbones.pretrained import _check_reachable, read_state_dict

    path = Path(weights).expanduser()
    if path.exists():
        return read_state_dict(path, "weights")
    enum = get_model_weights(arch)
    try:
        chosen = enum.verify(weights.split(".")[-1])
    except (KeyError, ValueError):
        raise ConfigError(f"weights={weights}: neither an existing file nor a torchvision weight name for "
                          f"{arch} (names: {choices_text([w.name for w in enum] + ['DEFAULT'])})") from None
    try:
        _check_reachable(chosen.url)
        return chosen.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # URLError, socket errors, hash mismatch: all mean "could not get it"
        raise ConfigError(f"weights={weights}: could not download {chosen} ({type(e).__name__}: {e}). "
                          f"Offline? Download {chosen.url} on a connected machine and give its path as "
                          "weights=") from None
