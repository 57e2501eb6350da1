"""Command-line entry points behind tools/train.py and tools/eval.py.

Hydra composes the config; before handing over, we compose once ourselves (the Compose API, a few
tens of milliseconds) so that a misspelt key, a wrong type or an unknown option is reported in one
line with the closest valid name, instead of Hydra's generic message or a traceback.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from .errors import ConfigError, UserError, choices_text, did_you_mean

log = logging.getLogger("detframe")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
EXPERIMENT_GROUP = "experiment"
# Hydra flags that take the next argument as their value.
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--shell-completion", "-sc", "--experimental-rerun"}


def config_dir() -> Path:
    if not CONFIG_DIR.is_dir():
        raise UserError(f"the config tree {CONFIG_DIR} is missing: install detframe from a clone with `pip install -e .`")
    return CONFIG_DIR


def experiments() -> list[str]:
    return sorted(p.stem for p in (config_dir() / EXPERIMENT_GROUP).glob("*.yaml"))


def resolve_config_arg(argv: Sequence[str]) -> list[str]:
    """Rewrite `config=NAME` to the experiment group choice, and `config=path.yaml` to a search path
    entry plus that choice, so a user's experiment file outside the repo composes like ours."""
    out, search = [], []
    for arg in argv:
        if arg.startswith("config="):
            out += _experiment_choice(arg.split("=", 1)[1], search)
        else:
            out.append(arg)
    if search:
        out.append("hydra.searchpath=[" + ",".join(f"file://{p}" for p in search) + "]")
    return out


def _experiment_choice(value: str, search: list[Path]) -> list[str]:
    names = experiments()
    if value in names:
        return [f"{EXPERIMENT_GROUP}={value}"]
    path = Path(value).expanduser()
    if path.suffix not in (".yaml", ".yml") and not path.exists():
        raise ConfigError(
            f"config={value}: no such experiment.{did_you_mean(value, names)} "
            f"Experiments in {config_dir() / EXPERIMENT_GROUP}: {choices_text(names)}; or give the path of a YAML file"
        )
    if not path.is_file():
        raise ConfigError(f"config={value}: file not found ({path.resolve()})")
    text = path.read_text()
    try:
        top = OmegaConf.create(text) or {}
    except Exception as e:
        raise ConfigError(f"config={value}: not valid YAML: {e}") from None
    # Our experiment files are `# @package _global_`; a user's plain YAML means the same thing.
    if "@package" not in text.split("\n", 1)[0]:
        text = "# @package _global_\n" + text
    tmp = Path(tempfile.mkdtemp(prefix="detframe-config-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    (tmp / EXPERIMENT_GROUP).mkdir()
    (tmp / EXPERIMENT_GROUP / f"{path.stem}.yaml").write_text(text)
    search += [tmp, path.resolve().parent]  # the parent: the user's own group files (data/my_set.yaml ...)
    extra = [] if isinstance(top, ListConfig) or "experiment_name" in top else [f"experiment_name={path.stem}"]
    return [f"{EXPERIMENT_GROUP}={path.stem}", *extra]


def override_args(argv: Sequence[str]) -> list[str]:
    """The `key=value` overrides among Hydra's command-line arguments (flags and their values dropped)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in _FLAGS_WITH_VALUE
            continue
        out.append(arg)
    return out


def validate_overrides(config_name: str, argv: Sequence[str], return_hydra_config: bool = False) -> DictConfig:
    """Compose `config_name` with the overrides in `argv`; raise `ConfigError` with a short message.
    With `return_hydra_config`, `hydra.*` overrides are kept and the `hydra` node is returned too."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from . import config  # noqa: F401  (registers the schema)

    overrides = [o for o in override_args(argv)
                 if return_hydra_config or not o.lstrip("+~").startswith("hydra.") or o.startswith("hydra.searchpath")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:
        raise ConfigError(f"cannot parse the command line: {str(e).splitlines()[0]}") from None
    simple = []
    for text, o in zip(overrides, parsed):
        if o.is_sweep_override():  # multirun: check the first value of each sweep
            first = next(iter(o.sweep_string_iterator()), None)
            if first is None:
                continue
            prefix = text[: len(text) - len(text.lstrip("+~"))]
            text = f"{prefix}{o.get_key_element()}={first}"
        simple.append(text)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        try:
            return compose(config_name=config_name, overrides=simple, return_hydra_config=return_hydra_config)
        except Exception as e:
            groups = [o for o in simple if _is_group_override(o)]
            raise _friendly_error(e, config_name, groups) from None


def _is_group_override(text: str) -> bool:
    key = text.lstrip("+~").split("=", 1)[0]
    return key == EXPERIMENT_GROUP or (config_dir() / key).is_dir() or key.startswith("hydra.searchpath")


def _friendly_error(e: Exception, config_name: str, group_overrides: list[str]) -> ConfigError:
    from hydra import compose
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

    if isinstance(e, MissingConfigException):
        group, _, name = (e.missing_cfg_file or "").rpartition("/")
        if group and e.options is None and (config_dir() / group).is_dir():  # a list choice: evaluator=[coco,voc7]
            e.options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
        if group and e.options is not None:
            what = "experiment" if group == EXPERIMENT_GROUP else f"option in config group '{group}'"
            return ConfigError(f"{'config' if group == EXPERIMENT_GROUP else group}={name}: no such {what}."
                               f"{did_you_mean(name, e.options)} Available: {choices_text(e.options)}")
        return ConfigError(str(e).strip().splitlines()[0])
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    source = message.split("'")[1] if message.startswith("Error merging") and "'" in message else ""
    where = f" (in {source})" if source else ""
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        full_key = getattr(cause, "full_key", None) or ""
        key = full_key.rpartition(".")[2] if full_key else str(getattr(cause, "key", ""))
        parent = full_key.rpartition(".")[0]
        keys = _valid_keys(config_name, parent, group_overrides)
        hint = "" if source else f" To add a new key on purpose, write +{full_key}=..."
        return ConfigError(
            f"unknown config key '{full_key}'{where}.{did_you_mean(key, keys)} "
            f"Valid keys under '{parent or '<root>'}': {choices_text(keys)}.{hint}"
        )
    if isinstance(cause, ValidationError):
        full_key = getattr(cause, "full_key", "") or ""
        msg = str(getattr(cause, "msg", cause)).strip().splitlines()[0]
        return ConfigError(f"{full_key}{where}: wrong type: {msg}")
    return ConfigError(message + (f": {str(cause).splitlines()[0]}" if cause is not None else ""))


def _valid_keys(config_name: str, parent: str, group_overrides: list[str]) -> list[str]:
    """Keys of the node at `parent`, composed with as many of the group choices as still compose."""
    from hydra import compose

    no_experiment = [o for o in group_overrides if not o.lstrip("+~").startswith(EXPERIMENT_GROUP + "=")]
    for overrides in (group_overrides, no_experiment, []):
        try:
            base = compose(config_name=config_name, overrides=overrides)
        except Exception:
            continue
        node = OmegaConf.select(base, parent) if parent else base
        if isinstance(node, DictConfig):
            return list(node.keys())
    return []


def _report(e: UserError) -> None:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


# -- train ----------------------------------------------------------------------------------------

_MULTIRUN_FLAGS = ("-m", "--multirun")
_ORIGINAL_ARGS: list[str] = []


def train_main(argv: Sequence[str] | None = None) -> None:
    """`python tools/train.py [config=NAME|path.yaml] [group=option] [key=value] [hydra flags]`, also
    under `torchrun --nproc-per-node N tools/train.py ...`."""
    import hydra

    from . import config  # noqa: F401  registers the schema with Hydra, also for --help and --cfg

    args = list(sys.argv[1:] if argv is None else argv)
    _ORIGINAL_ARGS[:] = args
    try:
        args = resolve_config_arg(args)
        if not any(a in ("--help", "-h", "--hydra-help", "--info", "-i") for a in args):
            cfg = validate_overrides("train", args)  # also registers the schema with Hydra
            if not any(a in ("--cfg", "-c") for a in args):  # printing the config starts no run
                args += launch_overrides(cfg, args)
    except UserError as e:
        _report(e)
    sys.argv = [sys.argv[0], *args]
    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")(_train_task)()


def launch_overrides(cfg: DictConfig, args: Sequence[str]) -> list[str]:
    """Overrides decided before Hydra starts: join torchrun's process group; give every rank rank 0's run
    folder (its timestamp); keep ranks > 0 from writing files; resolve `resume=auto` to a run folder.

    Rank 0 decides and broadcasts, so all ranks agree even when their clocks cross a second.
    """
    from .dist import broadcast_object, get_rank, init_from_env

    distributed = init_from_env(cfg.runtime.dist_backend, cfg.runtime.dist_timeout_minutes)
    multirun = any(a in _MULTIRUN_FLAGS for a in args)
    extra: list[str] = []
    if get_rank() == 0:
        hydra_cfg = validate_overrides("train", args, return_hydra_config=True).hydra
        run_dir = Path(hydra_cfg.run.dir)
        if cfg.get("resume") == "auto" and not multirun:
            run_dir = _auto_resume_dir(run_dir)
            extra.append(f"hydra.run.dir={_quote(run_dir)}")
        elif distributed:
            extra.append(f"hydra.run.dir={_quote(run_dir)}")
        if distributed and multirun:
            extra.append(f"hydra.sweep.dir={_quote(hydra_cfg.sweep.dir)}")
    extra = broadcast_object(extra)
    if get_rank() > 0:  # only rank 0 writes the log file and Hydra's record
        extra += ["hydra.output_subdir=null", "hydra.job_logging.root.handlers=[console]", "hydra.job_logging.root.level=WARNING"]
    return extra


def _auto_resume_dir(run_dir: Path) -> Path:
    """For `resume=auto`: `run_dir` if it holds a checkpoint (a fixed hydra.run.dir), else the newest
    sibling run folder with one (outputs/<experiment_name>/<time>/), else `run_dir` (a fresh start)."""
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return run_dir
    candidates = [p.parent.parent for p in run_dir.parent.glob("*/checkpoints/last.pt")]
    if not candidates:
        print(f"resume=auto: no checkpoint under {run_dir.parent.resolve()}/*/checkpoints/: starting a new run")
        return run_dir
    newest = max(candidates, key=lambda d: (d / "checkpoints" / "last.pt").stat().st_mtime)
    print(f"resume=auto: continuing the run in {newest.resolve()}")
    return newest


def _quote(path: Any) -> str:
    text = str(path)
    return text if all(c.isalnum() or c in "/._-+:" for c in text) else "'" + text.replace("'", "\\'") + "'"


def resume_command(args: Sequence[str] | None = None) -> str:
    """The command line that continues this run: the original arguments with resume=auto."""
    import shlex

    kept = [a for a in (_ORIGINAL_ARGS if args is None else args) if not a.startswith(("resume=", "+resume="))]
    launcher = "torchrun --nproc-per-node N tools/train.py" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "python tools/train.py"
    return f"{launcher} {shlex.join([*kept, 'resume=auto'])}"


def _train_task(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from .engine import Runner, TrainingInterrupted
    from .dist import is_main_process
    from .registry import import_modules

    try:
        import_modules(cfg.custom_imports)
        work_dir = Path(HydraConfig.get().runtime.output_dir)
        if is_main_process():
            (work_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        runner = Runner(cfg, work_dir)
        metrics = runner.train()
    except TrainingInterrupted as e:
        log.warning("%s:\n  %s", e, resume_command())
        sys.exit(e.exit_code)
    except UserError as e:
        log.error("error: %s", e)
        sys.exit(2)
    best = runner.hooks.get("checkpoint")
    if best is not None and getattr(best, "best_value", None) is not None:
        log.info("done: best %s = %.4f (epoch %s); checkpoints in %s", best.save_best, best.best_value, best.best_epoch, runner.ckpt_dir)
    return metrics.get(getattr(best, "save_best", "") or "", None)


# -- eval -----------------------------------------------------------------------------------------

EVAL_KEYS = {
    "checkpoint": "a checkpoint to evaluate with the config saved in it",
    "results": "a COCO results JSON to evaluate instead of a model",
    "out": "the report folder (default <run>/eval_<checkpoint name>/, or <results name>_eval/ beside the file)",
    "device": "auto | cpu | cuda | cuda:N",
    "split": "the data split to evaluate: val (default) or train",
    "plots": "true | false: PR curves and confusion matrix as PNG files (default true)",
    "save_results": "true | false: write the model's detections as <out>/detections.json (default true)",
}


def eval_main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """`python tools/eval.py checkpoint=PATH|results=PATH [group=option ...] [key=value ...] [own keys]`."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run_eval(args)
    except UserError as e:
        _report(e)
    return {}


def parse_eval_args(args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Split the command line into the tool's own keys (EVAL_KEYS) and config overrides."""
    own, rest = {}, []
    for arg in args:
        if "=" not in arg and not arg.startswith("~"):
            raise ConfigError(f"expected key=value, got '{arg}'. Keys: {', '.join(f'{k} ({v})' for k, v in EVAL_KEYS.items())}, "
                              "or overrides of the config (group=option, key=value, +key=value, ~key)")
        key, _, value = arg.partition("=")
        (own.__setitem__(key, value) if key in EVAL_KEYS else rest.append(arg))
    if ("checkpoint" in own) == ("results" in own):
        raise ConfigError("give checkpoint=PATH (evaluate a model) or results=PATH (evaluate a detections file), one of them")
    for key in ("plots", "save_results"):
        if own.get(key, "true").lower() not in ("true", "false"):
            raise ConfigError(f"{key}={own[key]}: expected true or false")
    if own.get("split", "val") not in ("val", "train"):
        raise ConfigError(f"split={own['split']}: expected val or train")
    return own, rest


def load_run_config(checkpoint: Path, state: dict[str, Any]) -> DictConfig:
    """The config a checkpoint was trained with: embedded in it, else config.yaml of its run folder."""
    if isinstance(state.get("config"), str):
        return OmegaConf.create(state["config"])
    for candidate in (checkpoint.parent / "config.yaml", checkpoint.parent.parent / "config.yaml"):
        if candidate.is_file():
            return OmegaConf.load(candidate)
    raise UserError(f"{checkpoint}: holds no config and there is no config.yaml beside it or in its run folder")


def split_group_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(group choices such as `data=raccoon`, `evaluator=[coco,voc07]`, `config=...`; the other overrides)."""
    groups, keys = [], []
    for text in overrides:
        key = text.split("=", 1)[0]
        is_group = "=" in text and key[:1] not in "+~" and "." not in key and (key == "config" or (config_dir() / key).is_dir())
        (groups if is_group else keys).append(text)
    return groups, keys


def replace_groups(cfg: DictConfig, group_overrides: Sequence[str]) -> DictConfig:
    """Replace whole sections of a saved config by freshly composed config-group files."""
    if any(o.startswith("config=") for o in group_overrides):
        raise ConfigError("config=...: a checkpoint brings its own config; change groups (data=..., evaluator=...) "
                          "and values instead")
    if not group_overrides:
        return cfg
    fresh = validate_overrides("train", ["~experiment", *group_overrides])  # the group files alone, checked
    for text in group_overrides:
        group = text.split("=", 1)[0]
        cfg[group] = OmegaConf.to_container(fresh[group], resolve=False)  # interpolations re-resolve in `cfg`
    return cfg


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Apply `key=value`, `+key=value` (add) and `~key` (remove) overrides to a config.

    Unknown keys are errors. On a saved (resolved) config, `data.root=NEW` also moves the dataset paths
    that started with the old root, as the `${data.root}` interpolations they came from would have.
    """
    import yaml

    for text in overrides:
        key, has_value, value = text.partition("=")
        add, remove = key.startswith("+"), key.startswith("~")
        key = key.lstrip("+~")
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not add and (not isinstance(node, DictConfig) or leaf not in node):
            keys = list(node.keys()) if isinstance(node, DictConfig) else []
            raise ConfigError(f"unknown config key '{key}'.{did_you_mean(leaf, keys)} "
                              f"Valid keys under '{parent or '<root>'}': {choices_text(keys)}. To add one, write +{key}=...")
        if remove:
            with open_dict(node):
                node.pop(leaf)
            continue
        try:
            parsed = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            parsed = value
        old_root = OmegaConf.select(cfg, "data.root", throw_on_missing=False) if key == "data.root" else None
        OmegaConf.update(cfg, key, parsed, merge=True, force_add=add)
        if isinstance(old_root, str) and isinstance(parsed, str):
            _rebase_data_paths(cfg.data, old_root, parsed)
    return cfg


def _rebase_data_paths(data: DictConfig, old_root: str, new_root: str) -> None:
    """Rewrite literal dataset paths under `old_root` to `new_root` (the saved config is resolved)."""
    old = old_root.rstrip("/")
    for split in ("train", "val"):
        node = data.get(split)
        if not isinstance(node, DictConfig):
            continue
        for k in list(node.keys()):
            if OmegaConf.is_interpolation(node, k) or not isinstance(node[k], str):
                continue
            value = node[k]
            if value == old or value.startswith(old + "/"):
                node[k] = new_root.rstrip("/") + value[len(old):]
                log.info("data.%s.%s: %s -> %s", split, k, value, node[k])


def _with_confusion_matrix(cfg: DictConfig) -> None:
    """The tool always draws a confusion matrix: add `evaluator.confusion` (configs/evaluator/confusion.yaml)
    unless one is configured; `evaluator.confusion.score_threshold=...` then tunes it, `~evaluator.confusion` drops it."""
    node = cfg.evaluator
    with open_dict(cfg):
        if "type" in node:  # a single evaluator (configs saved before several could run): name it by its prefix
            cfg.evaluator = {str(node.get("prefix") or "coco"): OmegaConf.to_container(node)}
        if not any(isinstance(e, DictConfig) and e.get("type") == "ConfusionMatrix" for e in cfg.evaluator.values()):
            cfg.evaluator.confusion = OmegaConf.load(config_dir() / "evaluator" / "confusion.yaml")


def _class_check(saved: list[str], now: list[str]) -> None:
    if len(saved) != len(now):
        raise ConfigError(f"data.class_names: the checkpoint's model was trained on {len(saved)} classes "
                          f"({choices_text(saved)}), the data to evaluate has {len(now)} ({choices_text(now)})")
    if list(saved) != list(now):
        log.warning("the evaluated data names its classes %s, the checkpoint was trained on %s (same order assumed)",
                    list(now), list(saved))


def run_eval(args: Sequence[str]) -> dict[str, float]:
    import torch.distributed

    from .evaluation import build_evaluator, is_main_process, load_results
    from .registry import import_modules

    own, rest = parse_eval_args(args)
    groups, keys = split_group_overrides(rest)
    state: dict[str, Any] = {}
    if "checkpoint" in own:
        from .engine import load_checkpoint

        checkpoint = Path(own["checkpoint"]).expanduser()
        state = load_checkpoint(checkpoint)
        cfg = load_run_config(checkpoint, state)
        trained_on = list(OmegaConf.select(cfg, "data.class_names") or [])
        cfg = replace_groups(cfg, groups)
    else:
        cfg = validate_overrides("train", resolve_config_arg(groups))
    _with_confusion_matrix(cfg)
    cfg = apply_overrides(cfg, keys)
    import_modules(cfg.get("custom_imports") or [])
    if "checkpoint" in own and trained_on:
        _class_check(trained_on, list(cfg.data.class_names))
    split = own.get("split", "val")
    dataset = _eval_dataset(cfg, split)
    evaluator = build_evaluator(cfg.evaluator, dataset)
    if "checkpoint" in own:
        metrics = _evaluate_model(cfg, state, dataset, evaluator, own.get("device", cfg.runtime.device))
        source, run_dir = checkpoint, (checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent)
        default_out = run_dir / f"eval_{checkpoint.stem}"
    else:
        results = Path(own["results"]).expanduser()
        metrics = evaluator.evaluate(load_results(results, evaluator.ground_truth))
        source, default_out = results, results.parent / f"{results.stem}_eval"
    if is_main_process():
        _write_eval_outputs(own, cfg, evaluator, metrics, source, dataset, split, Path(own.get("out") or default_out))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return metrics


def _eval_dataset(cfg: DictConfig, split: str):
    from .data import build_dataset

    return build_dataset(cfg.data, split, cfg.pipeline.val)


def _evaluate_model(cfg: DictConfig, state: dict[str, Any], dataset, evaluator, device_name: str) -> dict[str, float]:
    """Predict `dataset` with the checkpoint's model (every rank its shard under torchrun) into `evaluator`."""
    import os

    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler

    from .data import Collate, build_dataloader
    from .engine import inference_weights, select_device
    from .engine.evaluate import run_evaluation
    from .engine.setup import prepare_model
    from .models import build_detector

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():  # launched with torchrun: gather predictions across ranks
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    device = select_device(device_name)
    if distributed and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    data = cfg.data
    if distributed:
        loader = DataLoader(dataset, batch_size=data.val_batch_size, sampler=DistributedSampler(dataset, shuffle=False),
                            num_workers=data.num_workers, collate_fn=Collate(data.size_divisor))
    else:
        loader = build_dataloader(dataset, data.val_batch_size, data.num_workers, train=False, size_divisor=data.size_divisor)
    model = build_detector(cfg.model)
    model.load_state_dict(inference_weights(state))  # the EMA weights when the run kept them
    model = prepare_model(model, device, cfg.runtime.channels_last, sync_bn=False)
    return run_evaluation(model, loader, evaluator, device)


def _write_eval_outputs(own: dict[str, str], cfg: DictConfig, evaluator, metrics: dict[str, float], source: Path,
                        dataset, split: str, out: Path) -> None:
    from .engine import format_metrics
    from .evaluation import save_results

    print(f"{source} on {dataset!r} ({split}):\n{format_metrics(metrics)}\n\n{evaluator.text(summaries=True)}")
    plots = own.get("plots", "true").lower() == "true"
    info = {"source": str(source), "data": repr(dataset), "split": split}
    evaluator.write_reports(out, info, plots=plots)
    if "checkpoint" in own and own.get("save_results", "true").lower() == "true":
        save_results(evaluator.predictions, out / "detections.json")
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    print(f"report written to {out}/ (metrics.json, report.md{', plots' if plots else ''}"
          f"{', detections.json' if 'checkpoint' in own and own.get('save_results', 'true') == 'true' else ''})")
