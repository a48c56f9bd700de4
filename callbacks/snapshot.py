"""T60 snapshot ensemble: a checkpoint at the end of every LR cycle of ``CyclicLR``, and the manifest that lists them.

Huang et al. 2017 ("Snapshot Ensembles: Train 1, get M for free"): with warm restarts (T03) the
weights at the end of each cycle sit in different minima, and averaging their *predicted
probabilities* (not their weights) is an ensemble for the cost of one run. The boundaries are the
schedule's own (:meth:`~.schedules.CyclicSchedule.completed_cycles`), never a guess from the epoch count.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from .cyclic_lr import CyclicLR
from .ensemble import MANIFEST, write_manifest
from .notices import notice
from .wandb_io import run_directory


class SnapshotEnsemble(Callback):
    """Save the weights at each cycle end of the run's ``CyclicLR`` and keep ``ensemble.yaml`` listing them (T60).

    Each snapshot is ``checkpoints/snapshot-cycle<k>.ckpt`` (weights and the data module's state,
    like the best-epoch checkpoint); ``ensemble.yaml`` in the run folder is rewritten after each one,
    so a run stopped early still leaves an ensemble of the cycles it finished. Early stopping's patience
    is raised to the first cycle's length in epochs when it is shorter (a restart makes the monitor worse
    for a while). Snapshots are the trained weights as they are: with ``EMAWeights`` in the run, not its
    average. Test or predict with
    ``--ensemble runs/<project>/<run id>/ensemble.yaml``.

    Args:
        skip_cycles: cycles whose end is not saved, from the first (their weights are far from a minimum
            when the run starts from scratch); 0 saves every cycle end.
        keep_last: list only the newest ``keep_last`` snapshots in the manifest (Huang et al. average the
            last few); 0 lists all of them.

    Raises:
        ValueError: a negative ``skip_cycles`` or ``keep_last``.
        RuntimeError: at train start, when the run has no ``CyclicLR`` (nothing marks a cycle's end).

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.CyclicLR
              init_args: {policy: cosine_restarts, t_0: 5}   # a cycle every 5 epochs
            - class_path: my_project.callbacks.SnapshotEnsemble
              init_args: {skip_cycles: 0, keep_last: 0}
    """

    def __init__(self, skip_cycles: int = 0, keep_last: int = 0) -> None:
        if skip_cycles < 0 or keep_last < 0:
            raise ValueError(f"skip_cycles and keep_last must be >= 0, got {skip_cycles} and {keep_last}.")
        self.skip_cycles = skip_cycles
        self.keep_last = keep_last
        self.snapshots: list[dict[str, Any]] = []  # {"checkpoint", "cycle", "step", "epoch"}, in order
        self._schedule_owner: Optional[CyclicLR] = None

    @property
    def manifest(self) -> list[dict[str, Any]]:
        """The members listed in the manifest: the newest ``keep_last`` snapshots (all when 0)."""
        return self.snapshots[-self.keep_last:] if self.keep_last else list(self.snapshots)

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        owners = [cb for cb in trainer.callbacks if isinstance(cb, CyclicLR)]
        if not owners:
            raise RuntimeError("SnapshotEnsemble saves at the end of each LR cycle, but the run has no CyclicLR: add "
                               "CyclicLR (policy cosine_restarts, triangular, triangular2 or exp_range) to "
                               "trainer.callbacks, or use configs/presets/snapshot.yaml.")
        self._schedule_owner = owners[0]
        self._hold_early_stopping(trainer, owners[0])
        if owners[0].policy == "one_cycle":
            rank_zero_info("SnapshotEnsemble: one_cycle has a single cycle, so the ensemble will have one member; "
                           "use cosine_restarts or triangular for several.")

    @staticmethod
    def _hold_early_stopping(trainer: Trainer, cyclic: CyclicLR) -> None:
        """Give early stopping at least the first cycle's length in epochs of patience: right after a restart the
        monitor gets worse by design."""
        if cyclic.policy == "one_cycle":
            return
        cycle = math.ceil(cyclic.t_0 if cyclic.policy == "cosine_restarts" else 2 * cyclic.step_size_epochs)
        for callback in trainer.callbacks:
            if isinstance(callback, EarlyStopping) and callback.patience < cycle:
                notice(__name__, f"SnapshotEnsemble: early stopping's patience raised from {callback.patience} to "
                                 f"{cycle} epochs (one LR cycle): each restart makes {callback.monitor} worse for a while.")
                callback.patience = cycle

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        schedule = self._schedule_owner.schedule if self._schedule_owner is not None else None
        if schedule is None:
            return
        cycles = schedule.completed_cycles(trainer.global_step)
        saved = self.snapshots[-1]["cycle"] if self.snapshots else self.skip_cycles
        if cycles <= saved:
            return
        run_dir = run_directory(trainer)  # on every rank: it may broadcast
        path = run_dir / "checkpoints" / f"snapshot-cycle{cycles}.ckpt"
        trainer.save_checkpoint(path, weights_only=True)  # every rank takes part; rank zero writes
        self.snapshots.append({"checkpoint": str(path), "cycle": int(cycles), "step": int(trainer.global_step),
                               "epoch": int(trainer.current_epoch)})
        if trainer.is_global_zero:
            manifest = write_manifest(run_dir / MANIFEST, "snapshot", self.manifest)
            rank_zero_info(f"SnapshotEnsemble: cycle {cycles} ended at step {trainer.global_step}: saved {path.name}; "
                           f"{manifest} lists {len(self.manifest)} snapshot(s).")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": [dict(s) for s in self.snapshots]}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.snapshots = [dict(s) for s in state_dict.get("snapshots", [])]
