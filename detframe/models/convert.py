"""Load the weights of torchvision's detectors into detframe's models of the same architecture.

torchvision's `ssd300_vgg16`, `ssdlite320_mobilenet_v3_large`, `retinanet_resnet50_fpn`,
`fcos_resnet50_fpn`, `fasterrcnn_resnet50_fpn` and `maskrcnn_resnet50_fpn` are the same networks as
detframe's `ssd300_vgg16`, `ssdlite_mobilenetv3`, `retinanet_r50_fpn`, `fcos_r50_fpn`,
`faster_rcnn_r50_fpn` and `mask_rcnn_r50_fpn` configs (with the overrides in `EQUIVALENTS`); only the
module names differ, torchvision's FCOS lacks the learnt per-level scales, which the converter adds at
1 (the identity), and torchvision's R-CNN box predictor has deltas (its mask predictor a mask) for the
background too, which the converter drops. The converters rename the tensors,
can pick the logit channels of a subset of classes (torchvision's COCO models predict 91 slots:
background plus COCO's category ids 1..90, of which 80 are used), and check that the result fits the
model exactly. tests/models/test_torchvision_equivalence.py (and test_rcnn_equivalence.py) check that
converted models give torchvision's raw outputs (proposals) and detections. Use:
`load_torchvision(model, torchvision_model.state_dict(), "retinanet_resnet50_fpn", COCO80_IDS)`
(see the README's "Models" section).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError, choices_text

Rule = tuple[str, str | Callable[[re.Match], str]]

_SSD_HEAD: list[Rule] = [
    (r"^head\.classification_head\.module_list\.", "head.cls_convs."),
    (r"^head\.regression_head\.module_list\.", "head.reg_convs."),
]
RULES: dict[str, list[Rule]] = {
    "ssd300_vgg16": [
        (r"^backbone\.scale_weight$", "backbone.l2norm.weight"),
        (r"^backbone\.features\.", "backbone.conv4."),
        (r"^backbone\.extra\.0\.", "backbone.fc7."),  # pool5, fc6, fc7 belong to our backbone
        (r"^backbone\.extra\.(\d+)\.", lambda m: f"neck.blocks.{int(m[1]) - 1}."),
        *_SSD_HEAD,
    ],
    "ssdlite320_mobilenet_v3_large": [
        (r"^backbone\.features\.", "backbone.stages."),
        (r"^backbone\.extra\.", "neck.blocks."),
        *_SSD_HEAD,
    ],
    "retinanet_resnet50_fpn": [
        (r"^backbone\.body\.", "backbone."),
        (r"^backbone\.fpn\.", "neck.fpn."),
        (r"^head\.classification_head\.conv\.", "head.cls_convs."),
        (r"^head\.classification_head\.cls_logits\.", "head.cls_logits."),
        (r"^head\.regression_head\.conv\.", "head.reg_convs."),
        (r"^head\.regression_head\.bbox_reg\.", "head.bbox_reg."),
    ],
    "fcos_resnet50_fpn": [
        (r"^backbone\.body\.", "backbone."),
        (r"^backbone\.fpn\.", "neck.fpn."),
        (r"^head\.classification_head\.conv\.", "head.cls_convs."),
        (r"^head\.classification_head\.cls_logits\.", "head.cls_logits."),
        (r"^head\.regression_head\.conv\.", "head.reg_convs."),
        (r"^head\.regression_head\.bbox_reg\.", "head.bbox_reg."),
        (r"^head\.regression_head\.bbox_ctrness\.", "head.centerness."),
    ],
    "fasterrcnn_resnet50_fpn": [
        (r"^backbone\.body\.", "backbone."),
        (r"^backbone\.fpn\.", "neck.fpn."),
        (r"^rpn\.head\.conv\.0\.0\.", "rpn_head.conv."),
        (r"^rpn\.head\.cls_logits\.", "rpn_head.objectness."),
        (r"^rpn\.head\.bbox_pred\.", "rpn_head.deltas."),
        (r"^roi_heads\.box_head\.", "roi_head.bbox_head."),
        (r"^roi_heads\.box_predictor\.", "roi_head.bbox_head."),
    ],
}
RULES["maskrcnn_resnet50_fpn"] = [
    *RULES["fasterrcnn_resnet50_fpn"],
    (r"^roi_heads\.mask_head\.(\d+)\.0\.", lambda m: f"roi_head.mask_head.convs.{m[1]}."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_head.mask_head.upsample."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_head.mask_head.logits."),
]
# Tensors our model has and torchvision's does not, with the values that make them no-ops.
ADDED: dict[str, dict[str, Tensor]] = {
    "fcos_resnet50_fpn": {"head.scales": torch.ones(5)},  # ReLU(1 x conv): torchvision's regression
}

# Our model config and the overrides that make it torchvision's network, per torchvision builder.
_TV_RETINA_SIZES = "[" + ",".join(
    f"[{x},{int(x * 2 ** (1 / 3))},{int(x * 2 ** (2 / 3))}]" for x in (32, 64, 128, 256, 512)
) + "]"
EQUIVALENTS: dict[str, tuple[str, list[str]]] = {
    "ssd300_vgg16": ("ssd300_vgg16", []),
    "ssdlite320_mobilenet_v3_large": ("ssdlite_mobilenetv3", []),
    "retinanet_resnet50_fpn": ("retinanet_r50_fpn", [
        "model.neck.extra_source=p5",  # torchvision's v1 computes P6 from P5
        f"+model.head.prior_generator.sizes={_TV_RETINA_SIZES}",  # sizes truncated to integers
        "+model.head.prior_generator.round_base=true",
        "model.head.max_detections=300",
    ]),
    "fcos_resnet50_fpn": ("fcos_r50_fpn", ["model.head.score_threshold=0.2"]),  # torchvision's default
    "fasterrcnn_resnet50_fpn": ("faster_rcnn_r50_fpn", []),
    "maskrcnn_resnet50_fpn": ("mask_rcnn_r50_fpn", []),
}
# R-CNN box predictors: torchvision's has a logit and 4 deltas for each label slot, background (slot 0)
# included; ours has the background logit first and deltas for the classes only.
_RCNN_PREDICTORS = {"fasterrcnn_resnet50_fpn": "roi_head.bbox_head.",
                    "maskrcnn_resnet50_fpn": "roi_head.bbox_head."}
# R-CNN mask predictors: torchvision's has a mask for each label slot, background included; ours one
# per class.
_MASK_LOGITS = {"maskrcnn_resnet50_fpn": "roi_head.mask_head.logits."}
# The logit layers and how many logits each anchor has besides the classes (SSD's background).
_CLASS_LAYERS = {
    "ssd300_vgg16": (r"^head\.cls_convs\.\d+\.(weight|bias)$", 1),
    "ssdlite320_mobilenet_v3_large": (r"^head\.cls_convs\.\d+\.1\.(weight|bias)$", 1),
    "retinanet_resnet50_fpn": (r"^head\.cls_logits\.(weight|bias)$", 0),
    "fcos_resnet50_fpn": (r"^head\.cls_logits\.(weight|bias)$", 0),
}
# COCO's 80 category ids: torchvision's COCO models have a logit slot for every id 1..90.
COCO80_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def rename(state: dict[str, Tensor], arch: str) -> dict[str, Tensor]:
    """torchvision's tensor names -> ours, by the first matching rule; unmatched names are kept."""
    if arch not in RULES:
        raise ConfigError(f"no converter for torchvision model '{arch}'. Known: {choices_text(RULES)}")
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in RULES[arch]:
            new, n = re.subn(pattern, repl, key)
            if n:
                break
        out[new] = value
    return out


def select_classes(state: dict[str, Tensor], arch: str, class_index: Sequence[int]) -> dict[str, Tensor]:
    """Keep the logit channels of `class_index` (torchvision's label slots, e.g. `COCO80_IDS`) in every
    classification layer, anchor by anchor; SSD's background slot 0 is always kept."""
    pattern, background = _CLASS_LAYERS[arch]
    keep = ([0] if background else []) + list(class_index)
    out = dict(state)
    for key, value in state.items():
        if re.match(pattern, key):
            # Slots per anchor: the layer's channels over the number of anchors, which the matching
            # box layer gives (4 channels per anchor).
            box_key = key.replace("cls_convs", "reg_convs").replace("cls_logits", "bbox_reg")
            anchors = state[box_key].shape[0] // 4
            per_anchor = value.view(anchors, -1, *value.shape[1:])
            if max(keep) >= per_anchor.shape[1]:
                raise ConfigError(
                    f"{key}: {per_anchor.shape[1]} class slots per anchor, cannot select slot {max(keep)}"
                )
            out[key] = per_anchor[:, keep].reshape(-1, *value.shape[1:]).clone()
    return out


def select_rcnn_classes(state: dict[str, Tensor], prefix: str,
                        class_index: Sequence[int] | None) -> dict[str, Tensor]:
    """An R-CNN box predictor's rows for the label slots `class_index` (all but the background's slot 0
    when None): the background logit and each kept class's logit and 4 deltas, in that order."""
    logits, deltas = f"{prefix}cls_score.", f"{prefix}bbox_pred."
    slots = state[logits + "weight"].shape[0]
    keep = list(class_index) if class_index is not None else list(range(1, slots))
    if max(keep) >= slots:
        raise ConfigError(f"{logits}weight: {slots} class slots, cannot select slot {max(keep)}")
    out = dict(state)
    for kind in ("weight", "bias"):
        out[logits + kind] = state[logits + kind][[0, *keep]].clone()
        per_slot = state[deltas + kind].view(slots, 4, *state[deltas + kind].shape[1:])
        out[deltas + kind] = per_slot[keep].reshape(-1, *per_slot.shape[2:]).clone()
    return out


def select_mask_classes(state: dict[str, Tensor], prefix: str,
                        class_index: Sequence[int] | None) -> dict[str, Tensor]:
    """A mask predictor's output channels for the label slots `class_index` (all but the background's
    slot 0 when None)."""
    slots = state[prefix + "weight"].shape[0]
    keep = list(class_index) if class_index is not None else list(range(1, slots))
    if max(keep) >= slots:
        raise ConfigError(f"{prefix}weight: {slots} class slots, cannot select slot {max(keep)}")
    return {**state, **{prefix + kind: state[prefix + kind][keep].clone() for kind in ("weight", "bias")}}


def convert_state_dict(state: dict[str, Tensor], arch: str,
                       class_index: Sequence[int] | None = None) -> dict[str, Tensor]:
    """A torchvision detector's state dict as detframe's (see `rename`, `select_classes`,
    `select_rcnn_classes`, `select_mask_classes`, `ADDED`)."""
    state = {**rename(state, arch), **{k: v.clone() for k, v in ADDED.get(arch, {}).items()}}
    if arch in _MASK_LOGITS:
        state = select_mask_classes(state, _MASK_LOGITS[arch], class_index)
    if arch in _RCNN_PREDICTORS:
        return select_rcnn_classes(state, _RCNN_PREDICTORS[arch], class_index)
    return select_classes(state, arch, class_index) if class_index is not None else state


def load_torchvision(model: nn.Module, state: dict[str, Tensor], arch: str,
                     class_index: Sequence[int] | None = None) -> None:
    """Load a torchvision detector's state dict into `model` (detframe's equivalent, see `EQUIVALENTS`).

    BatchNorm's `num_batches_tracked` is dropped where the model has FrozenBatchNorm instead; any other
    name or shape that does not fit is an error naming it.
    """
    converted = convert_state_dict(state, arch, class_index)
    own = model.state_dict()
    converted = {k: v for k, v in converted.items() if k in own or not k.endswith("num_batches_tracked")}
    extra = sorted(set(converted) - set(own))
    missing = sorted(k for k in set(own) - set(converted) if k not in ("pixel_mean", "pixel_std"))
    wrong = [f"{k}: theirs {tuple(converted[k].shape)}, ours {tuple(own[k].shape)}"
             for k in converted if k in own and converted[k].shape != own[k].shape]
    if extra or missing or wrong:
        raise ConfigError(
            f"torchvision {arch} does not fit this model: {len(extra)} unexpected ({', '.join(extra[:3])}), "
            f"{len(missing)} missing ({', '.join(missing[:3])}), "
            f"{len(wrong)} of another shape ({'; '.join(wrong[:2])})"
        )
    with torch.no_grad():
        model.load_state_dict(converted, strict=False)
