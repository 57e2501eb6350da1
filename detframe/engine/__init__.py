from . import hooks, optim
from .checkpoint import CheckpointError, inference_weights, load_checkpoint, save_checkpoint
from .ema import EMAHook, ModelEMA
from .runner import NonFiniteLossError, Runner, format_metrics
from .setup import seed_everything, select_device
from .signals import TrainingInterrupted

__all__ = [
    "CheckpointError", "EMAHook", "ModelEMA", "NonFiniteLossError", "Runner", "TrainingInterrupted", "format_metrics",
    "hooks", "inference_weights", "load_checkpoint", "optim", "save_checkpoint", "seed_everything", "select_device",
]
