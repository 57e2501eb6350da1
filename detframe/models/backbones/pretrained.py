"""Loading ImageNet weights into a torchvision backbone: from a local file, or by torchvision's name.

Nothing is downloaded unless the user names torchvision weights; offline, that fails with a message
saying how to pass a local file instead.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

from ...errors import ConfigError, choices_text
from ...weights import FEW, describe_partial, load_weights_into, read_torch_file, state_dict_in

log = logging.getLogger(__name__)


def load_pretrained(model: nn.Module, pretrained: str | None, weights_enum: type[WeightsEnum],
                    where: str) -> None:
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
        state = read_state_dict(path, where)
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
            _check_reachable(weights.url)
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as e:  # URLError, socket errors, hash mismatch: all mean "could not get it"
            raise ConfigError(
                f"{where}: could not download torchvision weights {weights} ({type(e).__name__}: {e}). "
                f"Offline? Download {weights.url} on a connected machine "
                f"and set {where}=/path/to/the/file.pth"
            ) from None
    load_matching(model, state, str(pretrained), where)


def _check_reachable(url: str, timeout: float = 10.0) -> None:
    """Raise OSError unless the host of `url` accepts a connection within `timeout` seconds.

    Skipped when torchvision's cache already holds the file. urllib has no timeout by default: on a
    machine whose network drops packets, torch.hub's download would hang instead of failing.
    """
    import socket
    from urllib.parse import urlparse

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if cached.is_file():
        return
    parts = urlparse(url)
    # Name resolution ignores socket timeouts (a machine without DNS waits for the resolver's own
    # retries), so it runs in a thread that is abandoned after `timeout`.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        address = pool.submit(
            socket.getaddrinfo, parts.hostname, parts.port or 443, 0, socket.SOCK_STREAM
        ).result(timeout)
    except FutureTimeout:
        raise OSError(f"no answer for {parts.hostname} within {timeout:.0f} s") from None
    finally:
        pool.shutdown(wait=False)
    with socket.create_connection(address[0][4][:2], timeout=timeout):
        pass


def read_state_dict(path: Path, where: str) -> dict[str, torch.Tensor]:
    """A state dict saved with torch.save: a plain one, or nested under "state_dict" / "model" (the
    checkpoints of detframe, mmdetection and torchvision's references). Read as every weight file is
    (`detframe.weights`): a file that is not one, or that would run code, is a one-line error."""
    return state_dict_in(read_torch_file(path, "state dict", where), f"{where}={path}")


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str, where: str) -> None:
    """Load the tensors of `state` whose names and shapes fit `model`; an error if no parameter does, a
    warning when fewer than half do.

    Tensors whose shape differs are skipped (a classifier for another number of classes, say) and
    counted in the log line, as are missing and unexpected names.
    """
    match = load_weights_into(model, state, f"{where}={source}", strict=False,
                              hint=f"Its names look like '{next(iter(model.state_dict()), '')}', the file's "
                                   f"like '{next(iter(state), '')}'")
    line = describe_partial(match, f"{where}={source}")
    if match.params_fraction < FEW:
        log.warning("%s: is it the %s's weights?", line, type(model).__name__)
    else:
        log.info("%s", line)
