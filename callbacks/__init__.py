"""Training tricks as Lightning callbacks (the IDs cited in each class are those of the tricks catalogue, README)."""

from .batch_size import BatchSizeSearch
from .best_metrics import BestMetrics
from .blend import ClassicalBlend
from .clipping import AutoClip
from .contract import ClassificationData, TokenData
from .cyclic_lr import CyclicLR
from .early_stopping import EarlyStopping
from .ensemble import average_probabilities, read_manifest, scores, write_manifest
from .epoch_estimate import EpochEstimate
from .figures import ConfusionMatrix, DataExamples, PredictionExamples
from .grad_norm import GradNormMonitor
from .hard_examples import HardExamples
from .introspection import Introspection
from .loss_diagnosis import CASES, LossDiagnosis, diagnose
from .lr_curve import assess_curve, suggest_lr
from .lr_finder import LRFinder
from .lr_scaling import LinearLRScaling
from .max_norm import MaxNorm
from .nan_guard import LossBlowUpError, NaNGuard, NonFiniteError
from .notices import notice
from .optimizer_switch import OptimizerSwitch
from .overfit import OverfitCheck
from .plateau import HalveOnPlateau
from .reporting import report_alert, report_summary
from .resume import ResumableCheckpoint
from .sanity import SanityChecks
from .snapshot import SnapshotEnsemble
from .wandb_io import OfflineRun, find_wandb_logger, read_offline_run, run_directory
from .weight_averaging import EMAWeights
from .weight_init import WeightInit
from .word2vec_init import Word2VecInit  # task: text_classification

__all__ = [
    "AutoClip",
    "BatchSizeSearch",
    "BestMetrics",
    "CASES",
    "ClassicalBlend",
    "ClassificationData",
    "ConfusionMatrix",
    "CyclicLR",
    "DataExamples",
    "EMAWeights",
    "EarlyStopping",
    "EpochEstimate",
    "GradNormMonitor",
    "HalveOnPlateau",
    "HardExamples",
    "Introspection",
    "LRFinder",
    "LinearLRScaling",
    "LossBlowUpError",
    "LossDiagnosis",
    "MaxNorm",
    "NaNGuard",
    "NonFiniteError",
    "OfflineRun",
    "OptimizerSwitch",
    "OverfitCheck",
    "PredictionExamples",
    "ResumableCheckpoint",
    "SanityChecks",
    "SnapshotEnsemble",
    "TokenData",
    "WeightInit",
    "Word2VecInit",  # task: text_classification
    "assess_curve",
    "average_probabilities",
    "diagnose",
    "find_wandb_logger",
    "notice",
    "read_manifest",
    "read_offline_run",
    "report_alert",
    "report_summary",
    "run_directory",
    "scores",
    "suggest_lr",
    "write_manifest",
]
