"""Training tricks as Lightning callbacks (see TRICKS.md for the IDs cited in each class)."""

from .cyclic_lr import CyclicLR
from .grad_norm import GradNormMonitor
from .lr_finder import LRFinder, assess_curve, suggest_lr
from .lr_scaling import LinearLRScaling
from .plateau import HalveOnPlateau
from .wandb_io import OfflineRun, find_wandb_logger, read_offline_run, run_directory

__all__ = [
    "CyclicLR",
    "GradNormMonitor",
    "HalveOnPlateau",
    "LRFinder",
    "LinearLRScaling",
    "OfflineRun",
    "assess_curve",
    "find_wandb_logger",
    "read_offline_run",
    "run_directory",
    "suggest_lr",
]
