"""Stop at the first NaN/Inf, name it, and keep the last good checkpoint (TRICKS T55)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.optim import Optimizer
from typing_extensions import override

from .notices import notice
from .wandb_io import find_wandb_logger, run_directory

ADVICE = (
    "lower the learning rate (try a tenth), use a smaller initialisation scale, clip gradients "
    "(trainer.gradient_clip_val: 5, T10), and check the inputs and the loss for log(0) or division by zero"
)


class NonFiniteError(RuntimeError):
    """Training produced a NaN or Inf; the message names the tensor, the step and what to try."""


def _first_nonfinite(named: list[tuple[str, Optional[torch.Tensor]]]) -> Optional[tuple[str, str]]:
    for name, tensor in named:
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            kind = "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
            bad = int((~torch.isfinite(tensor)).sum())
            return name, f"{bad} of {tensor.numel()} values {kind}"
    return None


class NaNGuard(Callback):
    r"""Check the loss, the gradients and the parameters of every step; stop at the first NaN/Inf (T55).

    Lightning's ``EarlyStopping(check_finite=True)`` stops only at the next validation, after
    ``ModelCheckpoint`` may have saved ``last.ckpt`` with NaN weights over the last good one.
    This checks each optimizer step before the update: the loss and the gradients, so a NaN
    gradient never reaches the weights; a parameter made non-finite by an update (overflow from
    a huge LR) shows up at the next step and is named as such. Every checkpoint is checked as it
    is saved, whoever saves it, and the save is aborted if the weights are not finite. At the
    first non-finite value it

    1. names the tensor (``loss``, or a parameter's or its gradient's name) and the step,
    2. saves a diagnostic checkpoint ``nonfinite-step=<step>.ckpt`` beside the regular ones
       (the weights as they were when the problem was found), leaving every checkpoint that
       ``ModelCheckpoint`` wrote untouched,
    3. writes ``nan_guard/*`` to the W&B summary with an alert, and
    4. raises :class:`NonFiniteError` with advice (lower LR, smaller init, clipping). Raising,
       rather than setting ``trainer.should_stop``, is what keeps the last good checkpoint:
       a stopped trainer still validates and saves ``last.ckpt`` once more.

    The check costs one global gradient norm and one device-to-host synchronisation per
    optimizer step; on a GPU, where the synchronisation stalls the queue, ``check_every_n_steps``
    thins it out: NaN gradients of the steps in between do reach the weights, the next check
    names the parameter, and the checkpoint guard still keeps every saved checkpoint finite.

    Args:
        check_every_n_steps: check every n-th optimizer step (1: every step).
        save_checkpoint: save the diagnostic checkpoint.

    Raises:
        ValueError: ``check_every_n_steps`` < 1.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.NaNGuard   # T55
              init_args:
                check_every_n_steps: 1
    """

    def __init__(self, check_every_n_steps: int = 1, save_checkpoint: bool = True) -> None:
        if not (isinstance(check_every_n_steps, int) and check_every_n_steps >= 1):
            raise ValueError(f"check_every_n_steps must be an integer >= 1, got {check_every_n_steps}.")
        self.check_every_n_steps = check_every_n_steps
        self.save_checkpoint = save_checkpoint
        self.finding: Optional[dict[str, Any]] = None
        self._loss_ok: Optional[torch.Tensor] = None
        self._saving_diagnostic = False

    def _due(self, trainer: Trainer) -> bool:
        return trainer.global_step % self.check_every_n_steps == 0

    @override
    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        if self._due(trainer):
            ok = torch.isfinite(loss.detach()).all()  # kept on the device; read with the gradients' check
            self._loss_ok = ok if self._loss_ok is None else self._loss_ok & ok
            self._last_loss = loss.detach()

    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        if not self._due(trainer):
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        ok = torch.isfinite(torch.nn.utils.get_total_norm(grads)) if grads else torch.tensor(True)
        if self._loss_ok is not None:
            ok = ok & self._loss_ok.to(ok.device)
        loss_ok, self._loss_ok = self._loss_ok, None
        if self._all_ranks_ok(trainer, bool(ok)):  # the one synchronisation per checked step
            return
        # a parameter made non-finite by an earlier update shows up here first, as a NaN loss or gradient
        found = _first_nonfinite(list(pl_module.named_parameters()))
        kind = "parameter"
        if found is None and loss_ok is not None and not bool(loss_ok):
            found, kind = ("loss", f"{float(self._last_loss):g}"), "loss"
        elif found is None:
            found, kind = _first_nonfinite([(n, p.grad) for n, p in pl_module.named_parameters()]), "gradient"
        self._stop(trainer, pl_module, kind, found)

    @override
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        # every checkpoint, whoever saves it and whenever: raising here aborts the save before anything is written
        if self._saving_diagnostic:
            return
        params = [p.detach() for p in pl_module.parameters()]
        ok = bool(torch.isfinite(torch.nn.utils.get_total_norm(params))) if params else True
        if not self._all_ranks_ok(trainer, ok):
            self._stop(trainer, pl_module, "parameter", _first_nonfinite(list(pl_module.named_parameters())))

    @staticmethod
    def _all_ranks_ok(trainer: Trainer, ok: bool) -> bool:
        return bool(trainer.strategy.reduce_boolean_decision(ok, all=True))

    def _checkpoint_dir(self, trainer: Trainer) -> Path:
        checkpoint = next((cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)), None)
        if checkpoint is not None and checkpoint.dirpath:
            return Path(checkpoint.dirpath)
        return run_directory(trainer) / "checkpoints"

    def _stop(self, trainer: Trainer, pl_module: LightningModule, kind: str, found: Optional[tuple[str, str]]) -> None:
        name, detail = found if found is not None else ("(on another rank)", "non-finite")
        step = trainer.global_step
        path: Optional[Path] = None
        if self.save_checkpoint:
            path = self._checkpoint_dir(trainer) / f"nonfinite-step={step}.ckpt"
            self._saving_diagnostic = True
            try:
                trainer.save_checkpoint(path)  # on every rank: it is a collective call
            finally:
                self._saving_diagnostic = False
        kept = [str(p) for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)
                for p in (cb.last_model_path, cb.best_model_path) if p]
        self.finding = {"kind": kind, "tensor": name, "detail": detail, "step": step, "epoch": trainer.current_epoch,
                        "checkpoint": str(path) if path else None, "kept": sorted(set(kept))}
        saved = f"Last good checkpoint kept: {', '.join(sorted(set(kept)))}. " if kept else "No checkpoint saved yet. "
        message = (
            f"NaNGuard: non-finite {kind} in `{name}` ({detail}) at step {step} (epoch {trainer.current_epoch}). "
            + saved
            + (f"Weights at this step: {path}. " if path else "")
            + f"Try: {ADVICE}."
        )
        logger = find_wandb_logger(trainer)
        if logger is not None and trainer.is_global_zero:
            summary = logger.experiment.summary
            for key, value in self.finding.items():
                summary[f"nan_guard/{key}"] = value
            logger.experiment.alert(title=f"NaN/Inf in {kind}"[:63], text=message, level="ERROR", wait_duration=1)
        notice(__name__, message)
        raise NonFiniteError(message)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"finding": self.finding}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.finding = state_dict.get("finding")

