"""Training tricks as Lightning callbacks (see TRICKS.md for the IDs cited in each class)."""

from .grad_norm import GradNormMonitor
from .wandb_io import OfflineRun, find_wandb_logger, read_offline_run

__all__ = ["GradNormMonitor", "OfflineRun", "find_wandb_logger", "read_offline_run"]
