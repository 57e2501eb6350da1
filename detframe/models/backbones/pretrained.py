"""Loading ImageNet weights into a torchvision backbone: from a local file, or by torchvision's name.

Nothing is downloaded unless the user names torchvision weights; offline, that fails with a message
saying how to pass a local file instead.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

from ...errors import ConfigError, choices_text

log = logging.getLogger(__name__)


def load_pretrained(model: nn.Module, pretrained: str | None, weights_enum: type[WeightsEnum], where: str) -> None:
    """Load `pretrained` into the torchvision `model` (before it is cut into stages).

    Args:
        model: the full torchvision classification model.
        pretrained: None/"" (random init), a path to a state dict saved with torch.save (the file
            torchvision downloads, or one of your own), or a torchvision weight name such as
            "IMAGENET1K_V1" or "MobileNet_V3_Large_Weights.IMAGENET1K_V1".
        weights_enum: the torchvision enum listing the names for this architecture.
        where: the config key, for messages.
    """
    if not pretrained:
        return
    path = Path(pretrained).expanduser()
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    else:
        try:
            weights = weights_enum.verify(pretrained)
        except (KeyError, ValueError):
            names = [w.name for w in weights_enum]
            raise ConfigError(
                f"{where}: '{pretrained}' is neither an existing file nor a torchvision weight name. "
                f"Weight names for {weights_enum.__name__}: {choices_text(names)}"
            ) from None
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as e:  # URLError, socket errors, hash mismatch: all mean "could not get it"
            raise ConfigError(
                f"{where}: could not download torchvision weights {weights} ({type(e).__name__}: {e}). "
                f"Offline? Download {weights.url} on a connected machine and set {where}=/path/to/the/file.pth"
            ) from None
    result = model.load_state_dict(state, strict=False)
    matched = len(model.state_dict()) - len(result.missing_keys)
    if matched == 0:
        raise ConfigError(f"{where}: none of the {len(state)} tensors in '{pretrained}' fit {type(model).__name__}")
    log.info("%s: loaded %d tensors from %s (missing %d, unexpected %d)", where, matched, pretrained,
             len(result.missing_keys), len(result.unexpected_keys))
