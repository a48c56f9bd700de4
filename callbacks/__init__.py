"""Training tricks as Lightning callbacks (see TRICKS.md for the IDs cited in each class)."""

from .cyclic_lr import CyclicLR
from .grad_norm import GradNormMonitor
from .introspection import Introspection
from .loss_diagnosis import CASES, LossDiagnosis, diagnose
from .lr_finder import LRFinder, assess_curve, suggest_lr
from .lr_scaling import LinearLRScaling
from .nan_guard import NaNGuard, NonFiniteError
from .overfit import OverfitCheck
from .plateau import HalveOnPlateau
from .sanity import SanityChecks
from .wandb_io import OfflineRun, find_wandb_logger, read_offline_run, run_directory

__all__ = [
    "CASES",
    "CyclicLR",
    "GradNormMonitor",
    "HalveOnPlateau",
    "Introspection",
    "LRFinder",
    "LinearLRScaling",
    "LossDiagnosis",
    "NaNGuard",
    "NonFiniteError",
    "OfflineRun",
    "OverfitCheck",
    "SanityChecks",
    "assess_curve",
    "diagnose",
    "find_wandb_logger",
    "read_offline_run",
    "run_directory",
    "suggest_lr",
]
