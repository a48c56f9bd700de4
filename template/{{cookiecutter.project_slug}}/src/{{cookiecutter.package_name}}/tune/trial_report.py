"""Inside a trial: report the monitor to the study after every validation, and stop when the pruner says so.

The CLI adds :class:`TrialReport` to a ``fit`` started by ``{{ cookiecutter.package_name }} tune`` (it finds
``{{ cookiecutter.package_name | upper }}_TUNE_TRIAL`` in its environment); nothing changes in a run a user starts.
``optuna-integration``'s ``PyTorchLightningPruningCallback`` was not used: it raises ``TrialPruned`` through the
Trainer, so the run ends as a crash (no checkpoint kept, no W&B exit code 0); this one stops the run as early
stopping does and records why.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from ..trials import TUNE_VARIABLE


class TrialReport(Callback):
    """Report ``monitor`` per epoch to an Optuna trial (step = epoch) and stop the run when it is pruned.

    At train start it records what the run settled on after its fit-start steps (the LR the finder chose, the
    batch size, the training examples) as the trial's ``facts``, which the autopilot's later stages build on.

    Args:
        storage: the study's storage (a journal file path or an RDB URL).
        study: the study's name.
        trial_id: the trial's id in the storage.
        monitor: the metric reported (``model.monitor``).
        pruning: the pruner's settings (``study.make_pruner``).
    """

    def __init__(self, storage: str, study: str, trial_id: int, monitor: str, pruning: dict[str, Any]) -> None:
        import optuna

        from .study import make_pruner, open_storage

        self.monitor = monitor
        self.pruned: Optional[int] = None
        self._storage = open_storage(storage, heartbeat=None)  # the worker that started this run beats for it
        loaded = optuna.load_study(study_name=study, storage=self._storage, pruner=make_pruner(pruning))
        self._trial = optuna.trial.Trial(loaded, trial_id)

    @classmethod
    def from_environment(cls) -> Optional["TrialReport"]:
        """The callback for this run when the tuner started it, else ``None``."""
        value = os.environ.get(TUNE_VARIABLE)
        return cls(**json.loads(value)) if value else None

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            datamodule = trainer.datamodule
            facts = {"lr": float(getattr(pl_module, "lr", float("nan"))),
                     "batch_size": int(getattr(datamodule, "batch_size", 0) or 0),
                     "train_size": int(sum(datamodule.class_counts("train"))) if hasattr(datamodule, "class_counts") else 0}
            self._trial.set_user_attr("facts", facts)

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None and math.isfinite(float(value)):
                self._trial.report(float(value), step=trainer.current_epoch)
                prune = self._trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):
            self.pruned = trainer.current_epoch
            if trainer.is_global_zero:
                self._trial.set_user_attr("pruned_at_epoch", trainer.current_epoch)
            trainer.should_stop = True

