"""Wire a detector from its config: each nested `{type: ...}` node is built from its registry."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ..errors import ConfigError
from ..registry import (
    ASSIGNERS,
    BACKBONES,
    CODERS,
    DETECTORS,
    HEADS,
    LOSSES,
    NECKS,
    PRIORS,
    ROI_EXTRACTORS,
    SAMPLERS,
    Registry,
)
from .detectors import Detector

# Keys of a head config that hold components, and the registry each is built from.
HEAD_PARTS: dict[str, Registry] = {
    "prior_generator": PRIORS,
    "assigner": ASSIGNERS,
    "coder": CODERS,
    "loss_cls": LOSSES,
    "loss_box": LOSSES,
    "loss_obj": LOSSES,
    "loss_xy": LOSSES,
    "loss_wh": LOSSES,
    "loss_centerness": LOSSES,
    "loss_offset": LOSSES,
    "sampler": SAMPLERS,
    "roi_extractor": ROI_EXTRACTORS,
    "mask_roi_extractor": ROI_EXTRACTORS,
    "loss_dfl": LOSSES,
    "loss_l1": LOSSES,
}
# Heads nested in a head (Mask R-CNN's mask branch in its RoI head), given the neck's channels too.
NESTED_HEADS = ("mask_head",)


def head_keys(cfg: DictConfig) -> tuple[str, ...]:
    """The head nodes of a `model` config: ("rpn_head", "roi_head") for a two-stage one, else ("head",)."""
    return ("rpn_head", "roi_head") if cfg.get("rpn_head") is not None else ("head",)


def build_detector(cfg: DictConfig) -> Detector:
    """Build `model` config: backbone, then neck (given the backbone's channels), then head parts and head.

    Raises:
        ConfigError: `model.type` names a class that is not a `Detector` (the runner relies on its
            `loss(batch)` and `predict(batch)` and nothing else).
    """
    backbone = BACKBONES.build(cfg.backbone)
    neck = NECKS.build(cfg.neck, in_channels=backbone.out_channels) if cfg.get("neck") else None
    in_channels = neck.out_channels if neck is not None else backbone.out_channels
    heads = {key: _build_head(cfg[key], in_channels) for key in head_keys(cfg)}
    detector = DETECTORS.build(cfg, backbone=backbone, neck=neck, **heads)
    if not isinstance(detector, Detector):
        raise ConfigError(
            f"model.type: {cfg.type} is not a detframe.models.Detector subclass; the runner needs its "
            "loss(batch) and predict(batch)"
        )
    return detector


def check_detector(cfg: DictConfig) -> None:
    """Check the `model` config without building it (types, argument names and values), for a tool that
    builds the model only after reading its data (tools/eval.py); the same checks `build_detector`
    makes before each constructor runs."""
    BACKBONES.check(cfg.backbone)
    if cfg.get("neck"):
        NECKS.check(cfg.neck)
    for head in head_keys(cfg):
        for key, registry in HEAD_PARTS.items():
            if cfg[head].get(key) is not None:
                registry.check(cfg[head][key])
        for key in NESTED_HEADS:
            if cfg[head].get(key) is not None:
                HEADS.check(cfg[head][key])
        HEADS.check(cfg[head])
    DETECTORS.check(cfg)


def _build_head(head_cfg: DictConfig, in_channels: list[int]) -> Any:
    """A head from its config node, its parts (`HEAD_PARTS`) built first."""
    parts: dict[str, Any] = {
        key: registry.build(head_cfg[key])
        for key, registry in HEAD_PARTS.items()
        if head_cfg.get(key) is not None
    }
    for key in NESTED_HEADS:
        if head_cfg.get(key) is not None:
            parts[key] = HEADS.build(head_cfg[key], in_channels=in_channels)
    return HEADS.build(head_cfg, in_channels=in_channels, **parts)
