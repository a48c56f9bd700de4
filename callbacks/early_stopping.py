"""Early stopping that ends with the best weights, not the last ones (TRICKS T35)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override


class EarlyStopping(LightningEarlyStopping):
    r"""Lightning's ``EarlyStopping``, plus Keras's ``restore_best_weights``.

    Stopping ``patience`` validations after the best one leaves the model at its *last* weights,
    which are worse than the best by construction. With ``restore_best_weights`` (the default) the
    callback keeps a CPU copy of the weights at each new best value of ``monitor`` and loads it back
    into the model when fitting ends, whatever ends it: early stopping, ``max_epochs``/``max_steps``
    or Ctrl+C; not SIGTERM, a preemption the run resumes from. So ``trainer.test`` / ``predict`` right after ``fit`` and the model object
    the user holds see the best weights. The copy travels in checkpoints (resume keeps it), and with
    DDP rank zero decides what counts as a new best, so every rank restores the same weights.
    Checkpoints written during training still hold the last weights (they are for resuming), also
    the one ``ResumableCheckpoint`` writes after a Ctrl+C restored the best.

    All other arguments are Lightning's (``monitor``, ``mode``, ``patience``, ``min_delta``, …).

    Args:
        monitor: the metric to watch.
        restore_best_weights: load the best weights back at the end of fitting.
        **kwargs: ``lightning.pytorch.callbacks.EarlyStopping``'s other arguments.

    Raises:
        MisconfigurationException: an unknown ``mode`` (from Lightning).

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.EarlyStopping   # T35
              init_args:
                monitor: val/acc
                mode: max
                patience: 3
                restore_best_weights: true
    """

    def __init__(self, monitor: str = "val/loss", restore_best_weights: bool = True, **kwargs: Any) -> None:
        super().__init__(monitor=monitor, **kwargs)
        self.restore_best_weights = restore_best_weights
        self.best_weights: Optional[dict[str, torch.Tensor]] = None
        self.best_epoch: Optional[int] = None
        self.best_step: Optional[int] = None
        self.restored = False
        self._interrupted_weights: Optional[dict[str, torch.Tensor]] = None

    @property
    def _checkpoint_key(self) -> str:
        return f"{self.state_key}/best_weights"

    @override
    def _run_early_stopping_check(self, trainer: Trainer) -> None:
        before = self.best_score
        super()._run_early_stopping_check(trainer)
        if not self.restore_best_weights:
            return
        # rank zero's view decides, so every rank keeps the weights of the same step
        improved = trainer.strategy.broadcast(self.best_score is not before, src=0)
        if improved:
            module = trainer.lightning_module
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
            self.best_epoch, self.best_step = trainer.current_epoch, trainer.global_step

    def _restore(self, trainer: Trainer, pl_module: LightningModule, why: str, keep_last: bool = False) -> None:
        if not self.restore_best_weights or self.best_weights is None or self.restored:
            return
        if keep_last:  # a checkpoint saved after this restore must still resume from the last weights
            self._interrupted_weights = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        pl_module.load_state_dict(self.best_weights)
        self.restored = True
        rank_zero_info(f"EarlyStopping: {why}; restored the weights of epoch {self.best_epoch} (step {self.best_step}), "
                       f"best {self.monitor} = {float(self.best_score):.4g}.")

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.restored, self._interrupted_weights = False, None

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        why = "stopped early" if self.stopped_epoch else "training ended"
        self._restore(trainer, pl_module, why)

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):  # not SIGTERMException: a preempted run resumes
            self._restore(trainer, pl_module, "interrupted (Ctrl+C)", keep_last=True)

    @override
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._interrupted_weights is not None and "state_dict" in checkpoint:
            checkpoint["state_dict"] = self._interrupted_weights
        if not self.restore_best_weights or self.best_weights is None:
            return
        weights = checkpoint.get("state_dict")
        if self.best_step == trainer.global_step and isinstance(weights, dict) and weights.keys() == self.best_weights.keys():
            # saved at the best step (the best checkpoint): the same tensors as the weights, which torch.save
            # writes once, instead of a second copy of the model in every best checkpoint
            checkpoint[self._checkpoint_key] = weights
        else:
            checkpoint[self._checkpoint_key] = self.best_weights

    @override
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self.best_weights = checkpoint.get(self._checkpoint_key, self.best_weights)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch, "best_step": self.best_step}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_epoch = state_dict.get("best_epoch")
        self.best_step = state_dict.get("best_step")
