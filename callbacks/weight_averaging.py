"""T62: an exponential moving average of the weights, on Lightning's own ``EMAWeightAveraging``.

Lightning's callback validates with the averaged weights but hands them back before the rest of
the validation hooks run, so as it stands a weights-only "best" checkpoint holds the *raw*
weights of an epoch chosen by the *averaged* weights' score, and ``EarlyStopping``'s
restore-best keeps raw weights too. :class:`EMAWeights` keeps the averaged weights in the model
from the start of each validation until training resumes, so everything that reads the model at
validation (the monitor, every checkpoint, early stopping's best weights, ``test_after_fit``)
sees one set of weights: the average. Full checkpoints (``last.ckpt``) hold both, as Lightning's
do, and resume continues both. Not ``StochasticWeightAveraging``: it replaces the LR schedule and
drops its average when early stopping ends the run before its last epoch.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch.optim.swa_utils import get_ema_avg_fn
from typing_extensions import override

from .notices import notice


def ema_decay(half_life_steps: float) -> float:
    """The per-step decay whose average halves a weight's influence every ``half_life_steps`` steps."""
    return 0.5 ** (1.0 / max(half_life_steps, 1e-9))


class EMAWeights(EMAWeightAveraging):
    """Validate, checkpoint, early-stop and test with an exponential moving average of the weights (T62).

    Training steps update the raw weights; after each step the average moves towards them
    (``decay`` per step). The decay follows the run: the average's half-life is ``half_life_epochs``
    epochs of optimizer steps (a fixed 0.999 averages ~700 steps, the whole run on a small data set),
    unless ``decay`` is given. A step whose loss or weights are NaN/Inf is left out of the average,
    so ``NaNGuard`` stops a run whose average is still clean. BatchNorm statistics are averaged with
    the weights (``use_buffers``, as timm's EMA does), so the image task needs no ``update_bn`` pass.
    ``CyclicLR`` and ``HalveOnPlateau`` act on the raw weights' optimizer as usual.

    Args:
        half_life_epochs: the average's half-life in epochs (converted to steps at train start).
        decay: a fixed per-step decay instead (e.g. 0.999); ``None`` uses ``half_life_epochs``.
        update_starting_at_epoch: start averaging at this epoch (the first epochs' weights are far off);
            0 averages from the first step.

    Raises:
        ValueError: ``half_life_epochs`` not above 0, ``decay`` outside (0, 1), a negative start epoch.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.EMAWeights
              init_args: {half_life_epochs: 1.0}
    """

    def __init__(self, half_life_epochs: float = 1.0, decay: Optional[float] = None,
                 update_starting_at_epoch: int = 0) -> None:
        if not half_life_epochs > 0:
            raise ValueError(f"half_life_epochs must be > 0, got {half_life_epochs}.")
        if decay is not None and not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1) or null, got {decay}.")
        if update_starting_at_epoch < 0:
            raise ValueError(f"update_starting_at_epoch must be >= 0, got {update_starting_at_epoch}.")
        super().__init__(decay=decay if decay is not None else 0.999)
        self.half_life_epochs = half_life_epochs
        self.fixed_decay = decay
        self.start_epoch = update_starting_at_epoch
        self.decay: Optional[float] = decay
        self.swapped = False  # the model holds the average (from a validation's start until training resumes)
        self.skipped = 0  # steps left out of the average: a NaN/Inf loss or weight
        self._epoch = 0

    @override
    def should_update(self, step_idx: Optional[int] = None, epoch_idx: Optional[int] = None) -> bool:
        return step_idx is not None and self._epoch >= self.start_epoch

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.fixed_decay is None:
            batches = trainer.num_training_batches
            steps = max(1, math.ceil(int(batches) / trainer.accumulate_grad_batches)) if math.isfinite(batches) else 1
            self.decay = ema_decay(self.half_life_epochs * steps)
        assert self._average_model is not None and self.decay is not None
        self._average_model.avg_fn = get_ema_avg_fn(self.decay)
        self._average_model.multi_avg_fn = None
        monitor = getattr(pl_module, "monitor", "the monitor")
        notice(__name__, f"EMAWeights: validation, {monitor}, checkpoints, early stopping's best weights and the "
                         f"test after fit use the weights' moving average (decay {self.decay:.4g} per step, half-life "
                         f"{math.log(0.5) / math.log(self.decay):.0f} steps); the training loss is the raw weights'.")

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._epoch = trainer.current_epoch
        self._raw(pl_module)

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        values = [torch.isfinite(p).all() for p in pl_module.parameters()]
        if torch.is_tensor(loss):
            values.append(torch.isfinite(loss.detach()).all())
        finite = bool(torch.stack(values).all())  # one device sync
        if not trainer.strategy.reduce_boolean_decision(finite, all=True):  # every rank skips alike (DDP)
            self.skipped += 1
            self._latest_update_step = trainer.global_step
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def _averaged(self) -> bool:
        """Whether there is an average yet: before its first update the averaged model is a copy made before the
        fit-start initialisations (word vectors, weight init), not weights worth validating."""
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    @override
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and self._averaged() and not self.swapped:
            self._swap_models(pl_module)
            self.swapped = True

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pass  # the average stays in the model for the checkpoints and early stopping; the next step swaps back

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._averaged():  # no step was averaged (update_starting_at_epoch not reached): the weights stay
            rank_zero_info("EMAWeights: no step was averaged; the model keeps its trained weights.")
            return
        if self.swapped:  # the model holds the average as of the last step; the averaged model, the raw weights
            self._swap_models(pl_module)
            self.swapped = False
        super().on_train_end(trainer, pl_module)  # the average into the model: both hold it from here on
        rank_zero_info(f"EMAWeights: the model now holds the average{self._skipped_note()}.")

    def _skipped_note(self) -> str:
        return f" ({self.skipped} NaN/Inf step(s) left out)" if self.skipped else ""

    def _raw(self, pl_module: LightningModule) -> None:
        if self.swapped:
            self._swap_models(pl_module)
            self.swapped = False

    @override
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if not self.swapped:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
            return
        self._swap_models(pl_module)  # raw weights in the model, the average in the averaged model, as Lightning expects
        try:
            checkpoint["state_dict"] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
            for key in ("state_dict", "averaging_state"):  # copies: the swap below changes the tensors in place
                checkpoint[key] = {k: v.detach().clone() for k, v in checkpoint[key].items()}
        finally:
            self._swap_models(pl_module)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "decay": self.decay, "skipped": self.skipped}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.decay = state_dict.get("decay", self.decay)
        self.skipped = state_dict.get("skipped", 0)

