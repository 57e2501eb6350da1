"""Where a user's weight file meets a model: reading it, and loading its state dict into a module.

Every path that loads weights the user named goes through here: `resume=`, `load_from=`,
`tools/eval.py checkpoint=` and a backbone's `pretrained` file. Two rules hold for all of them:

- A file is read with `torch.load(weights_only=True)`: tensors and plain containers only, so a file cannot
  run code. Whatever goes wrong becomes one line that names the file and says what it is (a folder, an
  empty file, YAML, an image, a truncated checkpoint, a pickle of Python objects), never PyTorch's advice
  to turn `weights_only` off.
- Matching counts *weights*: floating-point tensors whose name and shape agree. Integer buffers
  (BatchNorm's `num_batches_tracked`) are loaded when they fit but never counted, and whether anything
  useful was taken is judged on the model's parameters, so a checkpoint of another architecture cannot
  pass for a match through 51 step counters or the two normalisation constants every detector has.

It sits beside `errors.py` rather than in `engine/` because `models/backbones` reads pretrained files too.
"""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import UserError

log = logging.getLogger("detframe")

# How many names a one-line message shows of each kind.
SHOWN = 3
# Below this fraction of the model's parameters taken from a file, load_from and pretrained warn.
FEW = 0.5


class WeightsError(UserError):
    """A weight file cannot be read, or its weights do not fit the model."""


def read_torch_file(path: str | os.PathLike, what: str = "checkpoint", key: str | None = None) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU, with every failure as one line naming the file.

    Args:
        path: the file the user named.
        what: what the file should be, for messages ("checkpoint", "state dict").
        key: the argument that named it (`resume`, `load_from`, ...), for messages; None to name the path
            alone.

    Raises:
        WeightsError: no such file, a folder, an empty file, not a PyTorch file (what it looks like
            instead), a damaged one, or one holding Python objects that could run code when loaded.
    """
    path = Path(path).expanduser()
    where = f"{key}={path}" if key else str(path)
    if path.is_dir():
        raise WeightsError(f"{where}: a folder, not a {what} file{_inside(path)}")
    if not path.is_file():
        raise WeightsError(f"{where}: {what} not found")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise WeightsError(f"{where}: an empty file (0 bytes), not a PyTorch {what}; an interrupted copy?")
    kind = _file_kind(head)
    if kind not in ("zip", "pickle"):
        raise WeightsError(f"{where}: not a PyTorch {what} (it looks like {kind}); give the .pt file "
                           "torch.save wrote")
    try:
        with warnings.catch_warnings():  # a plain pickle's protocol warning would precede our message
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ... with long texts
        raise WeightsError(f"{where}: {_load_failure(e, kind, what)}") from None


def _file_kind(head: bytes) -> str:
    """What the first bytes of a file say it is: "zip" (torch.save's format), "pickle" (its legacy format)
    or a description for a message."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    for magic, name in ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"),
                        (b"\x1f\x8b", "a gzip file"), (b"%PDF", "a PDF document")):
        if head.startswith(magic):
            return name
    try:
        text = head.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        return "binary data of another format"
    if text[:1] in "[{":
        return "a text file: JSON"
    return "a text file: YAML or plain text" if text else "a text file of blanks"


def _load_failure(error: Exception, kind: str, what: str) -> str:
    """The cause of a failed `torch.load`, in one clause (PyTorch's own text is many lines of advice)."""
    text = str(error)
    if "Unsupported global" in text:
        name = text.split("GLOBAL", 1)[1].split()[0] if "GLOBAL" in text else "?"
        return (f"refused: it holds pickled Python objects ({name}), which could run code when loaded; "
                "detframe reads tensors and plain containers only (weights_only=True). If it is a whole "
                "model saved with torch.save(model), save model.state_dict() instead")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    if kind == "zip":
        return (f"a damaged or truncated PyTorch {what}, or a zip file of another kind ({first[:160]}); "
                "was the copy or the save interrupted?")
    return f"not a readable PyTorch {what} (a pickle torch cannot read: {first[:160]})"


def _inside(folder: Path) -> str:
    """A hint naming the checkpoint a run folder holds, when it holds one."""
    for candidate in ("checkpoints/last.pt", "checkpoints/best.pt", "last.pt", "best.pt"):
        if (folder / candidate).is_file():
            return f"; did you mean {folder / candidate}?"
    return ""


def state_dict_in(obj: Any, where: str) -> dict[str, Tensor]:
    """The state dict a loaded file holds: the EMA's weights when a detframe checkpoint kept them, else
    the raw model's, else under "state_dict" (mmdetection, Lightning), else the file itself.

    Raises:
        WeightsError: the file holds no tensors where weights should be.
    """
    if isinstance(obj, Mapping):
        ema = obj.get("ema")
        if isinstance(ema, Mapping) and isinstance(ema.get("model"), Mapping):
            obj = ema["model"]
        else:
            obj = next((obj[k] for k in ("model", "state_dict") if isinstance(obj.get(k), Mapping)), obj)
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{where}: holds a {type(obj).__name__}, not a state dict of named tensors")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:6])) or "none"
        raise WeightsError(f"{where}: holds no weights (no tensors; its keys: {keys})")
    return tensors


@dataclass
class WeightMatch:
    """How a state dict lines up with a model, name by name. Only floating-point tensors are listed as
    missing, unexpected or of another shape; integer buffers that fit are loaded and listed as counters."""

    loaded: list[str] = field(default_factory=list)  # the model's float tensors the file fills
    counters: list[str] = field(default_factory=list)  # integer buffers it fills (num_batches_tracked)
    missing: list[str] = field(default_factory=list)  # the model's float tensors the file lacks
    reshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # the file's float tensors the model lacks
    params: set[str] = field(default_factory=set)  # names of the model's parameters (learned tensors)

    @property
    def total(self) -> int:
        """The model's floating-point tensors."""
        return len(self.loaded) + len(self.missing) + len(self.reshaped)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.reshaped or self.unexpected)

    @property
    def params_loaded(self) -> int:
        return sum(k in self.params for k in self.loaded)

    @property
    def params_fraction(self) -> float:
        return self.params_loaded / max(1, len(self.params))

    def differences(self) -> str:
        """The mismatches in one clause, the first few names of each kind."""
        shapes = [f"{k}: file {list(a)}, model {list(b)}" for k, a, b in self.reshaped[:2]]
        return (f"{len(self.missing)} of the model's {self.total} tensors missing{_names(self.missing)}, "
                f"{len(self.unexpected)} unexpected{_names(self.unexpected)}, "
                f"{len(self.reshaped)} of another shape" + (f" ({'; '.join(shapes)})" if shapes else ""))

    def table(self) -> str:
        """One line per tensor: loaded, other shape, missing (keeps its initialisation) or unused."""
        lines = [f"loaded      {k}" for k in self.loaded]
        lines += [f"shape       {k}: file {list(a)}, model {list(b)} (keeps its initialisation)"
                  for k, a, b in self.reshaped]
        lines += [f"missing     {k} (keeps its initialisation)" for k in self.missing]
        lines += [f"unused      {k} (in the file, not in the model)" for k in self.unexpected]
        lines += [f"counter     {k}" for k in self.counters]
        return "\n".join(lines) + "\n"


def match_weights(model: nn.Module, weights: Mapping[str, Tensor]) -> WeightMatch:
    """Line `weights` up with `model.state_dict()` by name and shape (see `WeightMatch`)."""
    own = model.state_dict()
    match = WeightMatch(params={k for k, _ in model.named_parameters()})
    for k, mine in own.items():
        theirs = weights.get(k)
        if not mine.dtype.is_floating_point:
            if theirs is not None and theirs.shape == mine.shape:
                match.counters.append(k)
        elif theirs is None:
            match.missing.append(k)
        elif theirs.shape != mine.shape:
            match.reshaped.append((k, tuple(theirs.shape), tuple(mine.shape)))
        else:
            match.loaded.append(k)
    match.unexpected = [k for k, v in weights.items() if k not in own and v.dtype.is_floating_point]
    return match


def load_weights_into(model: nn.Module, weights: Mapping[str, Tensor], source: str, *, strict: bool = True,
                      hint: str = "") -> WeightMatch:
    """Load `weights` into `model`; the one function that does so with weights a user named.

    Args:
        model: the module to fill, in place.
        weights: a state dict (name -> tensor).
        source: how the user named the file, e.g. "checkpoint=runs/x/best.pt", for messages.
        strict: True (resume, evaluation): every floating-point tensor must match by name and shape, or
            nothing is loaded. False (load_from, pretrained): load what fits; at least one parameter must.
        hint: what to do about a mismatch, appended to the error.

    Returns:
        The match; with strict=False the caller reports it (see `describe_partial`).

    Raises:
        WeightsError: one line with the counts and the first names of each kind of mismatch.
    """
    match = match_weights(model, weights)
    if strict and not match.exact:
        raise WeightsError(f"{source}: the weights do not fit the model: {match.differences()}"
                           + (f". {hint}" if hint else ""))
    if not strict and match.params_loaded == 0:
        raise WeightsError(f"{source}: none of the model's {len(match.params)} parameters is in the file "
                           f"(by name and shape): {match.differences()}" + (f". {hint}" if hint else ""))
    fitting = {k: weights[k] for k in (*match.loaded, *match.counters)}
    with torch.no_grad():
        model.load_state_dict(fitting, strict=False)
    return match


def describe_partial(match: WeightMatch, source: str) -> str:
    """`load_from`/`pretrained`'s summary line: parameters taken, and what kept its initialisation."""
    kept = len(match.missing) + len(match.reshaped)
    return (f"{source}: loaded {match.params_loaded} of the model's {len(match.params)} parameters "
            f"({match.params_fraction:.0%}; {len(match.loaded)} of {match.total} tensors with the buffers); "
            f"{kept} keep their initialisation ({len(match.reshaped)} of another shape, "
            f"{len(match.missing)} missing); {len(match.unexpected)} of the file's unused")


def describe_model(model_cfg: Any) -> str:
    """A model config node as a short phrase: "ResNet-18 + FPN + RetinaHead, 4 classes"."""
    if not isinstance(model_cfg, Mapping):
        return "an unknown model"
    parts = []
    for name in ("backbone", "neck", "head"):
        node = model_cfg.get(name)
        if isinstance(node, Mapping) and node.get("type"):
            variant = node.get("depth") or node.get("arch")
            parts.append(f"{node['type']}-{variant}" if variant else str(node["type"]))
    text = " + ".join(parts) or str(model_cfg.get("type", "an unknown model"))
    head = model_cfg.get("head")
    classes = head.get("num_classes") if isinstance(head, Mapping) else None
    return f"{text}, {classes} classes" if isinstance(classes, int) else text


def _names(names: list[str]) -> str:
    if not names:
        return ""
    more = ", ..." if len(names) > SHOWN else ""
    return f" ({', '.join(names[:SHOWN])}{more})"
