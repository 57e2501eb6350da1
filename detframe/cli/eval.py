"""`detframe-eval` / `python tools/eval.py`: evaluate a checkpoint, or a COCO results file, and write a
report.

    python tools/eval.py checkpoint=PATH|results=PATH [group=option ...] [key=value ...] [own keys]
    torchrun --nproc-per-node N tools/eval.py checkpoint=PATH      # every rank predicts its shard
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from ..config import (
    apply_overrides,
    check_config,
    compose,
    config_dir,
    load_run_config,
    replace_groups,
    split_group_overrides,
)
from ..errors import ConfigError, choices_text
from ..rules import DEVICE, Folder, NonEmpty, OneOf
from .common import Arg, parse_args, require_key_values, run_tool

log = logging.getLogger("detframe")

EVAL_ARGS = {
    "checkpoint": Arg(None, "a checkpoint to evaluate with the config saved in it", rule=NonEmpty("path")),
    "results": Arg(None, "a COCO results JSON to evaluate instead of a model", rule=NonEmpty("path")),
    "out": Arg(None, "the report folder (default <run>/eval_<checkpoint name>/, or <results name>_eval/ "
                     "beside the file)", rule=Folder()),
    "device": Arg(None, "auto | cpu | cuda | cuda:N", rule=DEVICE),
    "split": Arg("val", "the data split to evaluate: val (default) or train", rule=OneOf("val", "train")),
    "plots": Arg("true", "true | false: PR curves and confusion matrix as PNG files", kind=bool),
    "save_results": Arg("true", "true | false: write the model's detections as <out>/detections.json",
                        kind=bool),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(run_eval, argv)


def parse_eval_args(args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Split the command line into the tool's own arguments (EVAL_ARGS: those given, and split, plots and
    save_results always), read and checked, and config overrides."""
    require_key_values(args, ", ".join(f"{k} ({v.help})" for k, v in EVAL_ARGS.items()),
                       "overrides of the config (group=option, key=value, +key=value, ~key)")
    own, rest = parse_args(args, EVAL_ARGS, "eval")
    if ("checkpoint" in own) == ("results" in own):
        raise ConfigError("give checkpoint=PATH (evaluate a model) or results=PATH (evaluate a detections "
                          "file), one of them")
    return own, rest


def run_eval(args: Sequence[str]) -> dict[str, float]:
    """Evaluate as the command line says; returns the metrics (on every rank)."""
    from ..dist import cleanup, is_main_process
    from ..evaluation import build_evaluator, load_results
    from ..registry import import_modules

    own, rest = parse_eval_args(args)
    groups, keys = split_group_overrides(rest)
    state: dict[str, Any] = {}
    trained_on: list[str] = []
    if "checkpoint" in own:
        checkpoint = Path(own["checkpoint"]).expanduser()
        state = _read_checkpoint(checkpoint)
        cfg = load_run_config(checkpoint, state)
        trained_on = list(OmegaConf.select(cfg, "data.class_names") or [])
        cfg = replace_groups(cfg, groups)
    else:
        cfg = compose(groups)
    _with_confusion_matrix(cfg)
    cfg = apply_overrides(cfg, keys)
    import_modules(cfg.get("custom_imports") or [])
    if trained_on:
        _class_check(trained_on, list(cfg.data.class_names))
    _check_before_reading(cfg, model="checkpoint" in own)
    split = own.get("split", "val")
    dataset = _eval_dataset(cfg, split)
    evaluator = build_evaluator(cfg.evaluator, dataset)
    if "checkpoint" in own:
        hint = _mismatch_hint(state, cfg, rest)
        metrics = _evaluate_model(cfg, state, dataset, evaluator, own.get("device", cfg.runtime.device),
                                  f"checkpoint={checkpoint}", hint)
        source = checkpoint
        run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
        default_out = run_dir / f"eval_{checkpoint.stem}"
    else:
        results = Path(own["results"]).expanduser()
        metrics = evaluator.evaluate(load_results(results, evaluator.ground_truth))
        source, default_out = results, results.parent / f"{results.stem}_eval"
    if is_main_process():
        _write_eval_outputs(own, cfg, evaluator, metrics, source, dataset, split,
                            Path(own.get("out") or default_out))
    cleanup()
    return metrics


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """`load_checkpoint`, pointing at results= when the file is a JSON text (a detections file, likely)."""
    from ..engine import load_checkpoint
    from ..weights import WeightsError

    try:
        return load_checkpoint(path, "checkpoint")
    except WeightsError as e:
        if "JSON" not in str(e):
            raise
        raise WeightsError(f"{e}; a COCO results file is evaluated with results=PATH") from None


def _with_confusion_matrix(cfg: DictConfig) -> None:
    """The tool always draws a confusion matrix: add `evaluator.confusion` (configs/evaluator/confusion.yaml)
    unless one is configured; `evaluator.confusion.score_threshold=...` then tunes it, `~evaluator.confusion`
    drops it."""
    node = cfg.evaluator
    with open_dict(cfg):
        # a single evaluator (configs saved before several could run): name it by its prefix
        if "type" in node:
            cfg.evaluator = {str(node.get("prefix") or "coco"): OmegaConf.to_container(node)}
        if not any(isinstance(e, DictConfig) and e.get("type") == "ConfusionMatrix"
                   for e in cfg.evaluator.values()):
            cfg.evaluator.confusion = OmegaConf.load(config_dir() / "evaluator" / "confusion.yaml")


def _check_before_reading(cfg: DictConfig, model: bool) -> None:
    """The config as the command line changed it, and the nodes built after the dataset, checked before
    the dataset is read."""
    from ..engine.preflight import check_components

    check_config(cfg)
    check_components(cfg, ("model", "evaluator", "pipeline.val") if model else ("evaluator", "pipeline.val"))


def _class_check(saved: list[str], now: list[str]) -> None:
    if len(saved) != len(now):
        raise ConfigError(f"data.class_names: the checkpoint's model was trained on {len(saved)} classes "
                          f"({choices_text(saved)}), the data to evaluate has {len(now)} "
                          f"({choices_text(now)})")
    if list(saved) != list(now):
        log.warning("the evaluated data names its classes %s, the checkpoint was trained on %s "
                    "(same order assumed)", list(now), list(saved))


def _eval_dataset(cfg: DictConfig, split: str) -> Any:
    from ..data import build_dataset

    return build_dataset(cfg.data, split, cfg.pipeline.val)


def _mismatch_hint(state: dict[str, Any], cfg: DictConfig, overrides: Sequence[str]) -> str:
    """What to say when the checkpoint's weights do not fit the model built for evaluation."""
    from ..engine.checkpoint import saved_model
    from ..weights import describe_model

    changed = [o for o in overrides if o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] == "model"]
    built = describe_model(OmegaConf.to_container(cfg.model, resolve=True))
    if changed:
        return (f"The command line changed the model ({' '.join(changed)}): the checkpoint is of "
                f"{saved_model(state) or 'another model'}, the model built is {built}; evaluate it without "
                "those overrides")
    return (f"The model built from the config saved with the checkpoint is {built}; its weights come from "
            "another model (assembled or edited by hand, or another run's config.yaml beside it?)")


def _evaluate_model(cfg: DictConfig, state: dict[str, Any], dataset: Any, evaluator: Any,
                    device_name: str, source: str, hint: str) -> dict[str, float]:
    """Predict `dataset` with the checkpoint's model (every rank its shard under torchrun) into
    `evaluator`; `source` and `hint` are for the message when the weights do not fit the model."""
    from ..data import build_dataloader
    from ..dist import init_from_env
    from ..engine import inference_weights, select_device
    from ..engine.setup import prepare_model
    from ..evaluation import run_evaluation
    from ..models import build_detector
    from ..weights import load_weights_into

    distributed = init_from_env(cfg.runtime.dist_backend, cfg.runtime.dist_timeout_minutes)
    device = select_device(device_name)
    data = cfg.data
    loader = build_dataloader(dataset, data.val_batch_size, data.num_workers, train=False,
                              size_divisor=data.size_divisor, distributed=distributed)
    model = build_detector(cfg.model)
    load_weights_into(model, inference_weights(state, source), source, hint=hint)  # the EMA's when kept
    model = prepare_model(model, device, cfg.runtime.channels_last, sync_bn=False)
    return run_evaluation(model, loader, evaluator, device)


def _write_eval_outputs(own: dict[str, Any], cfg: DictConfig, evaluator: Any, metrics: dict[str, float],
                        source: Path, dataset: Any, split: str, out: Path) -> None:
    from ..engine import format_metrics
    from ..evaluation import save_results

    print(f"{source} on {dataset!r} ({split}):\n{format_metrics(metrics)}\n\n"
          f"{evaluator.text(summaries=True)}")
    plots = own["plots"]
    save = "checkpoint" in own and own["save_results"]
    evaluator.write_reports(out, {"source": str(source), "data": repr(dataset), "split": split}, plots=plots)
    if save:
        save_results(evaluator.predictions, out / "detections.json")
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    print(f"report written to {out}/ (metrics.json, report.md{', plots' if plots else ''}"
          f"{', detections.json' if save else ''})")
