"""Training and evaluation of classifiers (tools/train.py, tools/eval.py) on timm's components."""
from .checkpoint import CheckpointError, find_latest, load_checkpoint, save_checkpoint, verify_checkpoint
from .engine import NonFiniteLossError, Trainer, evaluate, evaluate_checkpoint

__all__ = ["CheckpointError", "NonFiniteLossError", "Trainer", "evaluate", "evaluate_checkpoint",
           "find_latest", "load_checkpoint", "save_checkpoint", "verify_checkpoint"]
