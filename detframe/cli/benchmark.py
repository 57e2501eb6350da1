"""`detframe-benchmark` / `python tools/benchmark.py`: parameters, FLOPs, inference latency and training
speed of the model of a config (or of several) or of a checkpoint, on synthetic images; one table
printed, and JSON.

    python tools/benchmark.py [config=NAME|[a,b,...]] [key=value ...] [own keys]
    python tools/benchmark.py checkpoint=PATH [own keys]

Inference is the full `predict` (forward, decoding, NMS, boxes to original pixels) in eval mode; the
forward alone is reported beside it. benchmarks/models.py compares detframe's models with
torchvision's on the same inputs; this tool is for measuring one's own configs and checkpoints.
"""
from __future__ import annotations

import json
import logging
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ..config import (
    apply_overrides,
    check_config,
    compose,
    load_run_config,
    replace_groups,
    split_group_overrides,
)
from ..engine.benchmark import FLOPS_NOTE
from ..errors import ConfigError
from ..rules import DEVICE, SIZE, Folder, NonEmpty, NonNegativeInt, OneOf, PositiveInt, Range
from .common import Arg, parse_args, require_key_values, run_tool

log = logging.getLogger("detframe")


def config_list(text: str) -> list[str]:
    """`a` or `[a,b]` or `a,b` -> the experiment names / files."""
    items = [item.strip() for item in text.strip().removeprefix("[").removesuffix("]").split(",")]
    if not all(items):
        raise ValueError(text)
    return items


def input_size(text: str) -> int | list[int]:
    """`320` -> 320; `800x1333` or `[800,1333]` -> [800, 1333] (h, w)."""
    parts = text.strip().removeprefix("[").removesuffix("]").replace("x", ",").split(",")
    values = [int(p) for p in parts]
    return values[0] if len(values) == 1 else values


BENCH_ARGS = {
    "config": Arg(None, "an experiment name or YAML file, or several: [a,b]", kind=config_list),
    "checkpoint": Arg(None, "a checkpoint: its saved config and weights", rule=NonEmpty("path")),
    "device": Arg("auto", "auto | cpu | cuda | cuda:N", rule=DEVICE),
    "amp": Arg("off", "off | fp16 | bf16: autocast dtype", rule=OneOf("off", "fp16", "bf16")),
    "channels_last": Arg("false", "true | false: NHWC model and images", kind=bool),
    "size": Arg(None, "input size N or HxW (default: the config's pipeline.size)", kind=input_size,
                rule=SIZE),
    "batch_size": Arg("8", "images per batch of the batch-N and training measurements",
                      kind=int, rule=Range(2, integer=True)),
    "warmup": Arg("3", "untimed calls before each measurement", kind=int, rule=NonNegativeInt),
    "rounds": Arg("10", "timed calls per measurement (median and p90 of them)", kind=int, rule=PositiveInt),
    "train": Arg("true", "true | false: also time training steps", kind=bool),
    "threads": Arg(None, "CPU threads for torch (default: torch's)", kind=int, rule=PositiveInt),
    "json": Arg(None, "write the results as JSON to this file", rule=NonEmpty("path")),
    "out": Arg(None, "write the results as <out>/benchmark.json", rule=Folder()),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(run_benchmark, argv)


def run_benchmark(args: Sequence[str]) -> dict[str, Any]:
    """Measure as the command line says; returns the report written as JSON."""
    own, rest = _parse(args)
    device = _device(own["device"])
    if own.get("threads"):
        torch.set_num_threads(own["threads"])
    notes = [FLOPS_NOTE, *_cpu_notes(own, device)]
    for note in notes[1:]:
        log.warning("note: %s", note)
    results = []
    for name, cfg, state in _configs(own, rest):
        results.append(_measure(name, cfg, state, own, device))
        log.info("%s", format_table(results[-1:]).splitlines()[1])
    report = {"environment": _environment(device), "notes": notes, "results": results}
    print(format_table(results))
    for path in _json_paths(own):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {path}")
    return report


def _device(name: str) -> torch.device:
    from ..engine import select_device

    try:
        return select_device(name)
    except ConfigError:
        raise ConfigError(f"device={name}: CUDA is not available here (torch {torch.__version__}); use "
                          "device=cpu or device=auto") from None


def _parse(args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    require_key_values(args, ", ".join(BENCH_ARGS), "overrides of the config (key=value)")
    own, rest = parse_args(args, BENCH_ARGS, "benchmark")
    if "config" in own and "checkpoint" in own:
        raise ConfigError(f"config={','.join(own['config'])} checkpoint={own['checkpoint']}: give "
                          "config=NAME (a config's model, untrained) or checkpoint=PATH (a trained model), "
                          "not both")
    return own, rest


def _configs(own: dict[str, Any], rest: list[str]) -> list[tuple[str, DictConfig, dict | None]]:
    """(label, config, checkpoint state or None) of each model to measure, all composed before any is
    measured, so a bad name stops the tool at once."""
    if "checkpoint" not in own:
        names = own.get("config") or [None]
        return [(name or "default", compose([*([f"config={name}"] if name else []), *rest]), None)
                for name in names]
    from ..engine import load_checkpoint

    path = Path(own["checkpoint"]).expanduser()
    state = load_checkpoint(path, "checkpoint")
    groups, keys = split_group_overrides(rest)
    cfg = apply_overrides(replace_groups(load_run_config(path, state), groups), keys)
    check_config(cfg)
    return [(str(path), cfg, state)]


def _measure(name: str, cfg: DictConfig, state: dict | None, own: dict[str, Any],
             device: torch.device) -> dict[str, Any]:
    """Every measurement of one model; a dict for the table and the JSON."""
    from ..engine import benchmark as bench
    from ..engine.freeze import freeze
    from ..engine.optim import build_optimizer
    from ..engine.setup import parse_amp

    model = _build(cfg, state, name)
    freeze(model, list(cfg.train.freeze), list(cfg.train.freeze_norm))
    _check_fits(cfg, model, own.get("size"))
    total, trainable = bench.count_parameters(model)
    size = _size(cfg.pipeline.size)
    num_classes = len(cfg.data.class_names)
    divisor = int(cfg.pipeline.size_divisor)
    model = model.to(device)
    if own["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    masks = bool(getattr(model, "requires_masks", False))
    one = bench.to_device(bench.synthetic_batch(1, size, num_classes, divisor, with_masks=masks), device,
                          own["channels_last"])
    many = bench.to_device(bench.synthetic_batch(own["batch_size"], size, num_classes, divisor, seed=1,
                                                 with_masks=masks), device, own["channels_last"])
    log.info("%s: %s, %.2fM parameters, input %dx%d, on %s", name, type(model).__name__, total / 1e6, *size,
             device)
    model.eval()
    with torch.no_grad():
        flops = bench.count_flops(model.predict, one)
    amp, timing = parse_amp(own["amp"], device), (own["warmup"], own["rounds"])
    result = {
        "name": name, "model": type(model).__name__, "input_size": list(size), "device": str(device),
        "amp": own["amp"], "channels_last": own["channels_last"], "threads": torch.get_num_threads(),
        "parameters": {"total": total, "trainable": trainable}, "flops": flops, "gflops": flops / 1e9,
        "inference": {key: bench.time_predict(model, b, device, amp, *timing).to_dict()
                      for key, b in (("batch_1", one), ("batch_n", many))},
        "train": None,
    }
    if own["train"]:
        optimizer = build_optimizer(cfg.optimizer, model)
        result["train"] = bench.time_train_step(model, optimizer, many, device, amp, *timing).to_dict()
    return result


def _build(cfg: DictConfig, state: dict | None, source: str) -> torch.nn.Module:
    from ..engine import inference_weights
    from ..models import build_detector
    from ..registry import import_modules
    from ..weights import load_weights_into

    import_modules(cfg.get("custom_imports") or [])
    model = build_detector(_without_pretrained(cfg.model))
    if state is not None:
        load_weights_into(model, inference_weights(state, source), source)
    return model


def _check_fits(cfg: DictConfig, model: torch.nn.Module, size: int | list[int] | None) -> None:
    """The model takes inputs of `size` (the tool's `size=`, else pipeline.size): the training
    preflight's check, one line naming the size otherwise (not a traceback from inside the model)."""
    from ..engine.preflight import check_model
    from ..rules import show

    if size is not None:
        cfg.pipeline.size = size
    cfg.pipeline.multi_scale = None  # only the one size is measured
    try:
        check_model(cfg, model)
    except ConfigError as e:
        if size is None:
            raise
        raise ConfigError(f"size={show(size)}: {str(e).split(': ', 1)[-1]}") from None


def _without_pretrained(node: DictConfig) -> DictConfig:
    """The model config with every `pretrained` set to null: weights do not change the speed, and a
    benchmark must not download them (or fail offline)."""
    node = node.copy()
    for key, value in node.items():
        if key == "pretrained":
            node[key] = None
        elif isinstance(value, DictConfig):
            node[key] = _without_pretrained(value)
    return node


def _size(value: Any) -> tuple[int, int]:
    """pipeline.size (an int or [h, w]) -> (h, w)."""
    if isinstance(value, int):
        return value, value
    h, w = (int(v) for v in value)
    return h, w


def _cpu_notes(own: dict[str, Any], device: torch.device) -> list[str]:
    """What a CPU measurement with GPU settings does and does not say."""
    if device.type != "cpu":
        return []
    notes = []
    if own["amp"] == "fp16":
        notes.append("amp=fp16 on a CPU: autocast runs, but few CPUs compute in fp16; the numbers say "
                     "nothing about a GPU's fp16 speed")
    elif own["amp"] == "bf16":
        notes.append("amp=bf16 on a CPU: faster only on CPUs with AVX512-BF16 or AMX; elsewhere it is "
                     "emulated and slower than amp=off")
    if own["channels_last"]:
        notes.append("channels_last on a CPU: oneDNN's convolutions may gain or lose; it matters mostly "
                     "on GPUs with tensor cores")
    return notes


def _environment(device: torch.device) -> dict[str, Any]:
    env = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "python": platform.python_version()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _json_paths(own: dict[str, Any]) -> list[Path]:
    paths = [Path(own["json"]).expanduser()] if "json" in own else []
    if "out" in own:
        paths.append(Path(own["out"]).expanduser() / "benchmark.json")
    return paths


def format_table(results: list[dict[str, Any]]) -> str:
    """One row per model: size, parameters, GFLOPs, latency at batch 1 and N, images/s, training."""
    head = ["model", "input", "params (M)", "GFLOPs", "bs1 ms (p90)", "bs1 fwd ms", "bs1 img/s",
            "bsN", "bsN ms (p90)", "bsN img/s", "train img/s"]
    rows = [head]
    for r in results:
        one, many = r["inference"]["batch_1"], r["inference"]["batch_n"]
        fwd = one["forward_median_ms"]
        rows.append([
            r["name"], "x".join(map(str, r["input_size"])), f"{r['parameters']['total'] / 1e6:.2f}",
            f"{r['gflops']:.2f}", f"{one['median_ms']:.1f} ({one['p90_ms']:.1f})",
            "-" if fwd is None else f"{fwd:.1f}", f"{one['images_per_s']:.3g}", str(many["batch_size"]),
            f"{many['median_ms']:.1f} ({many['p90_ms']:.1f})", f"{many['images_per_s']:.3g}",
            "-" if r["train"] is None else f"{r['train']['images_per_s']:.3g}",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    setting = results[0] if results else {}
    lines.append(f"device {setting.get('device')}, amp {setting.get('amp')}, channels_last "
                 f"{setting.get('channels_last')}, {setting.get('threads')} threads; {FLOPS_NOTE}")
    return "\n".join(lines)

