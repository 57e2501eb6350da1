from . import hooks, optim
from .checkpoint import load_checkpoint, save_checkpoint
from .runner import Runner, format_metrics, select_device, seed_everything

__all__ = ["Runner", "format_metrics", "hooks", "load_checkpoint", "optim", "save_checkpoint", "seed_everything", "select_device"]
