"""The training engine: the Runner (loop), `build_runner` (wiring from a config), hooks, optimizers and
schedules, checkpoints and run state. Importing it registers the hooks, optimizers and schedules."""
from . import hooks, logging_hooks, optim
from .build import build_hooks, build_runner
from .checkpoint import CheckpointError, inference_weights, load_checkpoint, save_checkpoint
from .ema import EMAHook, ModelEMA
from .hooks import CheckpointHook, Hook, PipelineSwitchHook
from .logging_hooks import LoggerHook, ProgressBarHook
from .runner import NonFiniteLossError, Runner, format_metrics
from .setup import seed_everything, select_device
from .signals import TrainingInterrupted
from .state import load_weights, resume_run, run_state, save_run

__all__ = [
    "CheckpointError", "CheckpointHook", "EMAHook", "Hook", "LoggerHook", "ModelEMA", "NonFiniteLossError",
    "PipelineSwitchHook", "ProgressBarHook", "Runner", "TrainingInterrupted", "build_hooks", "build_runner",
    "format_metrics", "hooks", "inference_weights", "load_checkpoint", "load_weights", "logging_hooks",
    "optim", "resume_run", "run_state", "save_checkpoint", "save_run", "seed_everything", "select_device",
]
