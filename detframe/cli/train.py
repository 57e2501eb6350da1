"""`detframe-train` / `python tools/train.py`: compose the config once, start the run, train.

    python tools/train.py [config=NAME|path.yaml] [group=option] [key=value] [--cfg job] [-m sweep]
    torchrun --nproc-per-node N tools/train.py ...

A single run is composed once (with the `hydra` node: run folder, logging) and started with Hydra's
own `run_job`, which creates the run folder, writes `.hydra/` and sets up the log file, as `@hydra.main`
would. Under torchrun, rank 0 picks the run folder (and `resume=auto`'s) and every rank takes it.
Hydra's other modes (multirun sweeps, --help, --info, shell completion, another config dir) are handed
to Hydra's own entry point after the same check; Hydra composes each job of a sweep itself.
"""
from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ..config import check_training, compose, config_dir, resolve_config_arg
from ..errors import UserError

log = logging.getLogger("detframe")

# Hydra flags that take the next argument as their value.
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--shell-completion", "-sc", "--experimental-rerun"}
# Written by rank 0 into the run folder under `torchrun --max-restarts N`: the torchrun job's run id, by
# which a restarted attempt finds the folder to continue.
ELASTIC_MARK = ".torchelastic_run_id"
# Set by torchrun when its workers use the agent's TCPStore (torch's TORCH_DISABLE_SHARE_RDZV_TCP_STORE opts
# out): it outlives the attempts, and so do the keys of the previous attempt's process group.
SHARED_STORE = "TORCHELASTIC_USE_AGENT_STORE"
# Flags for which Hydra's own entry point runs (after our check of the overrides where there are any).
HYDRA_MODES = {"-m", "--multirun", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion",
               "-sc", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
               "--experimental-rerun", "--version"}


def main(argv: Sequence[str] | None = None) -> int:
    """Returns the exit status (0); a config error prints one line and exits with 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    flags, overrides = split_flags(args)
    try:
        if any(f in HYDRA_MODES for f in flags):
            _hydra_main(args, overrides, flags)
            return 0
        cfg = compose(overrides, hydra=True)
        if "--cfg" in flags or "-c" in flags:
            print(_config_text(cfg, flags))
            return 0
        check_training(cfg)  # before the run folder is made
        launch(cfg, args)
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def split_flags(args: Sequence[str]) -> tuple[dict[str, str | None], list[str]]:
    """(Hydra flags with their values, the `key=value` overrides in order)."""
    flags: dict[str, str | None] = {}
    overrides: list[str] = []
    it = iter(args)
    for arg in it:
        if arg.startswith("-"):
            flag, _, value = arg.partition("=")
            flags[flag] = value or (next(it, None) if flag in FLAGS_WITH_VALUE else None)
        else:
            overrides.append(arg)
    return flags, overrides


def _config_text(cfg: DictConfig, flags: dict[str, str | None]) -> str:
    """What `--cfg job|hydra|all [--package KEY] [--resolve]` prints, as Hydra would."""
    kind = flags.get("--cfg") or flags.get("-c") or "job"
    if kind not in ("job", "hydra", "all"):
        raise UserError(f"--cfg {kind}: expected job, hydra or all")
    if kind == "job":
        with read_write(cfg), open_dict(cfg):
            cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    elif kind == "hydra":
        cfg = OmegaConf.masked_copy(cfg, ["hydra"])
    package = flags.get("--package") or flags.get("-p")
    node = OmegaConf.select(cfg, package) if package else cfg
    if node is None:
        raise UserError(f"--package {package}: no such key in the config")
    return (OmegaConf.to_yaml(node, resolve="--resolve" in flags) if isinstance(node, DictConfig)
            else str(node))


def _hydra_main(args: list[str], overrides: list[str], flags: dict[str, str | None]) -> Any:
    """Hand the command line to `@hydra.main` (multirun, help, ...), after checking the overrides."""
    import hydra

    from ..dist import init_from_env

    hydra_args = resolve_config_arg(args)
    if overrides and not any(f in flags for f in ("--help", "-h", "--hydra-help", "--info", "-i")):
        # one-line errors before Hydra starts; a sweep checks its first values
        cfg = compose(overrides, hydra=True)
        if "-m" in flags or "--multirun" in flags:
            hydra_args += _multirun_dist_overrides(cfg, init_from_env(cfg.runtime.dist_backend,
                                                                         cfg.runtime.dist_timeout_minutes))
    sys.argv = [sys.argv[0], *hydra_args]  # @hydra.main reads the command line from sys.argv

    def task(cfg: DictConfig) -> Any:
        return train_task(cfg, args)

    return hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")(task)()


def _multirun_dist_overrides(cfg: DictConfig, distributed: bool) -> list[str]:
    """Under torchrun: every rank takes rank 0's sweep folder; ranks > 0 write no files."""
    from ..dist import broadcast_object, get_rank

    if not distributed:
        return []
    sweep_dir = broadcast_object(str(cfg.hydra.sweep.dir) if get_rank() == 0 else None)
    extra = [f"hydra.sweep.dir={_quote(sweep_dir)}"]
    if get_rank() > 0:
        extra += ["hydra.output_subdir=null", "hydra.job_logging.root.handlers=[console]",
                  "hydra.job_logging.root.level=WARNING"]
    return extra


def launch(cfg: DictConfig, args: Sequence[str]) -> Any:
    """Start one run of the composed config `cfg` (with its `hydra` node) and train it.

    Joins torchrun's process group first; rank 0 decides the run folder (its timestamp, for `resume=auto`
    the newest run of the experiment, on a torchrun restart the previous attempt's) and broadcasts it, so
    every rank agrees even when their clocks cross a second. Ranks > 0 write no log file and no `.hydra/`
    record.
    """
    from hydra._internal.callbacks import Callbacks
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import run_job
    from hydra.types import HydraContext

    from ..dist import all_gather_object, broadcast_object, get_rank, init_from_env

    init_from_env(cfg.runtime.dist_backend, cfg.runtime.dist_timeout_minutes)
    HydraConfig.instance().set_config(cfg)  # `${hydra:...}` in the config resolves from here on
    # Each torchrun agent counts its own restarts: an agent whose workers were restarted because another
    # machine's failed may still say 0, so the group is on a restart when any rank says so.
    restart = max(all_gather_object(_elastic_attempt()[1]))
    choice = _choose_run_dir(cfg, restart) if get_rank() == 0 else None
    run_dir, resume, note = broadcast_object(choice)
    with read_write(cfg), open_dict(cfg):
        cfg.resume = resume
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.run.dir = run_dir
        if get_rank() > 0:
            cfg.hydra.output_subdir = None
            cfg.hydra.job_logging.root.handlers = ["console"]
            cfg.hydra.job_logging.root.level = "WARNING"

    def task(task_cfg: DictConfig) -> Any:
        if note:
            log.info("%s", note)  # inside the job, so that train.log records the restart
        if get_rank() == 0 and _elastic_attempt()[2] > 0 and os.environ.get(SHARED_STORE) == "True":
            log.warning("torchrun --max-restarts with the store torchrun's agent shares with its workers: a "
                        "restarted group can read the previous attempt's addresses from it and fail or hang "
                        "while connecting (pytorch/pytorch#135712, #167288); launch torchrun with "
                        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1")
        return train_task(task_cfg, args)

    context = HydraContext(config_loader=None, callbacks=Callbacks(cfg))  # run_job uses only the callbacks
    return run_job(task, cfg, job_dir_key="hydra.run.dir", job_subdir_key=None,
                   hydra_context=context).return_value


def _choose_run_dir(cfg: DictConfig, restart: int) -> tuple[str, str | None, str | None]:
    """Rank 0's choice of (run folder, resume, a note for the log).

    A torchrun restart (`--max-restarts`; `restart`, the largest TORCHELASTIC_RESTART_COUNT of the group,
    > 0) continues the folder of the previous attempt of the same torchrun job, from its last.pt when
    there is one: `resume=auto` semantics without a manual step. The folder is found by the job's
    TORCHELASTIC_RUN_ID, which the first attempt writes into it (`ELASTIC_MARK`): the timestamp in
    `hydra.run.dir` is new at each attempt, and the newest run of the experiment could be another job's.
    A fixed `hydra.run.dir` is the same folder at every attempt and is found the same way.
    """
    run_dir, resume = Path(str(cfg.hydra.run.dir)), cfg.get("resume")
    run_id, _, max_restarts = _elastic_attempt()
    if restart > 0:
        previous = _previous_attempt_dir(run_dir, run_id)
        if previous is not None:
            if (previous / "checkpoints" / "last.pt").is_file():
                resume, start = "auto", "from its last checkpoint"  # build_runner takes this folder's last.pt
            else:
                start = f"from {resume}" if resume not in (None, "auto") else "from the start"
                start += " (it has no checkpoint yet)"
            note = (f"torchrun restart {restart} of at most {max_restarts}: continuing the run in "
                    f"{previous.resolve()} {start}")
            return str(previous), resume, note
        print(f"torchrun restart {restart}: no run folder of this job ({ELASTIC_MARK} = {run_id}) under "
              f"{run_dir.parent.resolve()}: starting as the first attempt did")
    if resume == "auto":
        run_dir = _auto_resume_dir(run_dir)
    if max_restarts > 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ELASTIC_MARK).write_text(run_id + "\n")
    return str(run_dir), resume, None


def _elastic_attempt() -> tuple[str, int, int]:
    """(torchrun's run id, this attempt's restart count, the most restarts allowed); ("", 0, 0) outside
    torchrun."""
    env = os.environ
    return (env.get("TORCHELASTIC_RUN_ID", ""), int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
            int(env.get("TORCHELASTIC_MAX_RESTARTS", "0")))


def _previous_attempt_dir(run_dir: Path, run_id: str) -> Path | None:
    """The folder an earlier attempt of torchrun job `run_id` marked: `run_dir` itself (a fixed
    hydra.run.dir) or a sibling (outputs/<experiment_name>/<time>/); the newest if several."""
    marks = [run_dir / ELASTIC_MARK, *run_dir.parent.glob(f"*/{ELASTIC_MARK}")]
    found = {m.parent: m.stat().st_mtime for m in marks if m.is_file() and m.read_text().strip() == run_id}
    return max(found, key=found.__getitem__) if found else None


def _auto_resume_dir(run_dir: Path) -> Path:
    """For `resume=auto`: `run_dir` if it holds a checkpoint (a fixed hydra.run.dir), else the newest
    sibling run folder with one (outputs/<experiment_name>/<time>/), else `run_dir` (a fresh start)."""
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return run_dir
    candidates = [p.parent.parent for p in run_dir.parent.glob("*/checkpoints/last.pt")]
    if not candidates:
        print(f"resume=auto: no checkpoint under {run_dir.parent.resolve()}/*/checkpoints/: "
              "starting a new run")
        return run_dir
    newest = max(candidates, key=lambda d: (d / "checkpoints" / "last.pt").stat().st_mtime)
    print(f"resume=auto: continuing the run in {newest.resolve()}")
    return newest


def _quote(path: Any) -> str:
    text = str(path)
    return text if all(c.isalnum() or c in "/._-+:" for c in text) else "'" + text.replace("'", "\\'") + "'"


def resume_command(args: Sequence[str]) -> str:
    """The command line that continues this run: the original arguments with resume=auto."""
    kept = [a for a in args if not a.startswith(("resume=", "+resume="))]
    launcher = ("torchrun --nproc-per-node N tools/train.py" if int(os.environ.get("WORLD_SIZE", "1")) > 1
                else "python tools/train.py")
    return f"{launcher} {shlex.join([*kept, 'resume=auto'])}"


def train_task(cfg: DictConfig, args: Sequence[str]) -> float | None:
    """One training run inside its run folder (Hydra's job): build the runner, train, report the best.
    Returns the last value of the checkpoint metric (what a Hydra sweeper optimises), or None."""
    from hydra.core.hydra_config import HydraConfig

    from ..dist import is_main_process
    from ..engine import CheckpointHook, TrainingInterrupted, build_runner
    from ..engine.preflight import BATCHNORM_ONE_VALUE, batchnorm_message
    from ..registry import import_modules

    try:
        import_modules(cfg.custom_imports)
        work_dir = Path(HydraConfig.get().runtime.output_dir)
        if is_main_process():
            (work_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        runner = build_runner(cfg, work_dir)
        metrics = runner.train()
    except TrainingInterrupted as e:
        log.warning("%s:\n  %s", e, resume_command(args))
        sys.exit(e.exit_code)
    except UserError as e:
        log.error("error: %s", e)
        sys.exit(2)
    except ValueError as e:
        if BATCHNORM_ONE_VALUE not in str(e):
            raise
        # engine/preflight.py stops the known cases (data.batch_size=1, a one-image set) before training;
        # this is for any other way a single image reaches a BatchNorm layer in training mode.
        log.error("error: %s", batchnorm_message(f"data.batch_size={cfg.data.batch_size}", [],
                                                 "a training batch held a single image"))
        sys.exit(2)
    best = next((h for h in runner.hooks.values() if isinstance(h, CheckpointHook)), None)
    if best is None or not best.save_best:
        return None
    if best.best_value is not None:
        log.info("done: best %s = %.4f (epoch %s); checkpoints in %s", best.save_best, best.best_value,
                 best.best_epoch, runner.ckpt_dir)
    return metrics.get(best.save_best)
