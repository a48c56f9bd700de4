"""Stop at the first NaN/Inf or finite loss blow-up, name it, and keep the last good checkpoint (T55)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NoReturn, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.optim import Optimizer
from typing_extensions import override

from .contract import num_classes
from .notices import notice
from .reporting import report_alert, report_summary
from .wandb_io import run_directory

ADVICE = (
    "lower the learning rate (try a tenth), use a smaller initialisation scale, clip gradients "
    "(trainer.gradient_clip_val: 5, T10), and check the inputs and the loss for log(0) or division by zero"
)


class NonFiniteError(RuntimeError):
    """Training produced a NaN or Inf; the message names the tensor, the step and what to try."""


class LossBlowUpError(NonFiniteError):
    """The training loss is finite but above ``max_loss_factor`` × ln C: a blow-up not (yet) NaN/Inf.

    A subclass of :class:`NonFiniteError`, so whoever catches that catches this too.
    """


def _max_abs(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The largest |value|: finite exactly when every value is (NaN propagates), where the 2-norm
    overflows to Inf on finite values of a blown-up model (1e17 over 40,000 weights)."""
    return torch.nn.utils.get_total_norm(tensors, norm_type=math.inf)


def _first_nonfinite(named: list[tuple[str, Optional[torch.Tensor]]]) -> Optional[tuple[str, str]]:
    for name, tensor in named:
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            kind = "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
            bad = int((~torch.isfinite(tensor)).sum())
            return name, f"{bad} of {tensor.numel()} values {kind}"
    return None


class NaNGuard(Callback):
    r"""Check the loss, the gradients and the parameters of every step; stop at the first NaN/Inf
    or finite loss blow-up (T55).

    Lightning's ``EarlyStopping(check_finite=True)`` stops only at the next validation, after
    ``ModelCheckpoint`` may have saved ``last.ckpt`` with NaN weights over the last good one.
    This checks each optimizer step before the update: the loss and the gradients, so a NaN
    gradient never reaches the weights; a parameter made non-finite by an update (overflow from
    a huge LR) shows up at the next step and is named as such. Every checkpoint is checked as it
    is saved, whoever saves it, and the save is aborted if the weights are not finite.

    A learning rate that is far too high does not always overflow: Adam's steps are bounded by the
    LR, so the loss can climb to a *finite* 1e34 and stay there, and a NaN/Inf check alone lets such
    a run end with exit code 0. So the loss is also bounded: above ``max_loss_factor`` × ln C
    (C classes, from ``num_classes``, the model's ``hparams.num_classes`` or the data module's
    ``num_classes``; 100 × ln 2 = 69 for two classes) the run stops in the same way. A model that
    predicts chance has loss ln C (T53) and one that learns goes below it, spikes of a few ln C
    aside, so a healthy run never gets near 100 × ln C, while a diverging one passes it within a
    step or two (Adam at LR 1e17 on the tests' tiny model: 8e33 at step 1). The bound is compared
    with the loss as ``training_step`` returned it: the AMP loss scale and the division by
    ``accumulate_grad_batches`` are undone first. When C is unknown, a notice says so and only
    NaN/Inf stop the run. At the first non-finite value or the first loss above the bound it

    1. names the tensor (``loss``, or a parameter's or its gradient's name), the value, the
       bound for a blow-up, and the step,
    2. saves a diagnostic checkpoint ``nonfinite-step=<step>.ckpt`` beside the regular ones
       (the weights as they were when the problem was found), leaving every checkpoint that
       ``ModelCheckpoint`` wrote untouched,
    3. writes ``nan_guard/*`` to the W&B summary with an alert, and
    4. raises :class:`NonFiniteError` (:class:`LossBlowUpError`, its subclass, for a finite blow-up)
       with advice (lower LR, smaller init, clipping), so the CLI exits non-zero. Raising,
       rather than setting ``trainer.should_stop``, is what keeps the last good checkpoint:
       a stopped trainer still validates and saves ``last.ckpt`` once more.

    The check costs one global max-abs of the gradients and one device-to-host synchronisation per
    optimizer step (the loss bound is read with it, at no extra cost); on a GPU, where the
    synchronisation stalls the queue, ``check_every_n_steps`` thins it out: NaN gradients of the
    steps in between do reach the weights, the next check names the parameter, and the checkpoint
    guard still keeps every saved checkpoint finite (finite but blown-up weights it cannot tell).

    Args:
        check_every_n_steps: check every n-th optimizer step (1: every step).
        save_checkpoint: save the diagnostic checkpoint.
        max_loss_factor: also stop when the training loss exceeds this times ln C (a finite
            blow-up); ``None`` stops on NaN/Inf only.
        num_classes: C; by default the model's ``hparams.num_classes`` or the data module's ``num_classes``.

    Raises:
        ValueError: ``check_every_n_steps`` < 1, ``max_loss_factor`` not a finite number > 1 (nor
            ``None``), or ``num_classes`` < 2.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.NaNGuard   # T55
              init_args:
                check_every_n_steps: 1
                max_loss_factor: 100   # stop when the train loss exceeds 100 x ln C; null: NaN/Inf only
    """

    def __init__(
        self,
        check_every_n_steps: int = 1,
        save_checkpoint: bool = True,
        max_loss_factor: Optional[float] = 100.0,
        num_classes: Optional[int] = None,
    ) -> None:
        if not (isinstance(check_every_n_steps, int) and check_every_n_steps >= 1):
            raise ValueError(f"check_every_n_steps must be an integer >= 1, got {check_every_n_steps}.")
        if max_loss_factor is not None and not (
            isinstance(max_loss_factor, (int, float)) and not isinstance(max_loss_factor, bool)
            and math.isfinite(max_loss_factor) and max_loss_factor > 1
        ):
            raise ValueError(
                "max_loss_factor must be a finite number > 1 (the loss bound in units of ln C, the loss at chance; "
                f"100 stops above 100 x ln C) or None to stop on NaN/Inf only, got {max_loss_factor}."
            )
        if num_classes is not None and not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(f"num_classes must be >= 2 or None (read from the model or data), got {num_classes}.")
        self.check_every_n_steps = check_every_n_steps
        self.save_checkpoint = save_checkpoint
        self.max_loss_factor = max_loss_factor
        self.num_classes = num_classes
        self.finding: Optional[dict[str, Any]] = None
        self.max_loss: Optional[float] = None  # max_loss_factor x ln C, set at fit start
        self._classes: Optional[int] = None
        self._loss_ok: Optional[torch.Tensor] = None
        self._losses: list[torch.Tensor] = []
        self._saving_diagnostic = False

    def _due(self, trainer: Trainer) -> bool:
        return trainer.global_step % self.check_every_n_steps == 0

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.max_loss = self._classes = None
        if self.max_loss_factor is None:
            return
        classes = num_classes(trainer, pl_module, self.num_classes)
        if classes and classes > 1:
            self._classes = int(classes)
            self.max_loss = self.max_loss_factor * math.log(self._classes)
        else:
            notice(__name__, "NaNGuard: the number of classes C is unknown (no `num_classes` in the model's hparams "
                             "or on the data module), so the loss bound max_loss_factor x ln C is off and only "
                             "NaN/Inf stop the run; pass num_classes to NaNGuard to bound the loss.")

    @staticmethod
    def _as_returned(trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> torch.Tensor:
        """The loss as ``training_step`` returned it: without the AMP loss scale and the accumulation division."""
        loss = loss.detach().float()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            scale = scaler._get_scale_async() if hasattr(scaler, "_get_scale_async") else scaler.get_scale()
            if scale is not None:  # a tensor on the loss's device: no synchronisation
                loss = loss / torch.as_tensor(scale, device=loss.device)
        if pl_module.automatic_optimization and trainer.accumulate_grad_batches > 1:
            loss = loss * trainer.accumulate_grad_batches
        return loss

    @override
    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        if self._due(trainer):
            loss = self._as_returned(trainer, pl_module, loss)
            ok = torch.isfinite(loss).all()  # kept on the device; read with the gradients' check
            if self.max_loss is not None:
                ok = ok & (loss <= self.max_loss).all()
            self._loss_ok = ok if self._loss_ok is None else self._loss_ok & ok
            self._losses.append(loss)

    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        if not self._due(trainer):
            return
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        ok = torch.isfinite(_max_abs(grads)) if grads else torch.tensor(True)
        if self._loss_ok is not None:
            ok = ok & self._loss_ok.to(ok.device)
        losses, self._loss_ok, self._losses = self._losses, None, []
        if self._all_ranks_ok(trainer, bool(ok)):  # the one synchronisation per checked step
            return
        # a parameter made non-finite by an earlier update shows up here first, as a NaN loss or gradient
        found = _first_nonfinite(list(pl_module.named_parameters()))
        if found is not None:
            self._stop(trainer, pl_module, "parameter", found)
        values = [float(loss.max()) for loss in losses]  # max propagates NaN
        value = next((v for v in values if not math.isfinite(v)), None)
        if value is not None:
            self._stop(trainer, pl_module, "loss", ("loss", f"{value:g}"))
        value = next((v for v in values if self.max_loss is not None and v > self.max_loss), None)
        if value is not None:
            assert self.max_loss_factor is not None and self._classes is not None
            bound = f"{self.max_loss:.3g} = max_loss_factor {self.max_loss_factor:g} x ln {self._classes}"
            self._stop(trainer, pl_module, "loss", ("loss", f"{value:.3g} > {bound}"), blow_up=True)
        self._stop(trainer, pl_module, "gradient",
                   _first_nonfinite([(n, p.grad) for n, p in pl_module.named_parameters()]))

    @override
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        # every checkpoint, whoever saves it and whenever: raising here aborts the save before anything is written
        if self._saving_diagnostic:
            return
        params = [p.detach() for p in pl_module.parameters()]
        ok = bool(torch.isfinite(_max_abs(params))) if params else True
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

    def _stop(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        kind: str,
        found: Optional[tuple[str, str]],
        blow_up: bool = False,
    ) -> NoReturn:
        name, detail = found if found is not None else ("(on another rank)", "non-finite or above the loss bound")
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
        problem = "finite blow-up" if blow_up else "non-finite"
        self.finding = {"kind": kind, "problem": problem, "tensor": name, "detail": detail, "step": step,
                        "epoch": trainer.current_epoch, "max_loss": self.max_loss,
                        "checkpoint": str(path) if path else None, "kept": sorted(set(kept))}
        saved = f"Last good checkpoint kept: {', '.join(sorted(set(kept)))}. " if kept else "No checkpoint saved yet. "
        what = "finite loss blow-up" if blow_up else f"non-finite {kind}"
        message = (
            f"NaNGuard: {what} in `{name}` ({detail}) at step {step} (epoch {trainer.current_epoch}). "
            + saved
            + (f"Weights at this step: {path}. " if path else "")
            + f"Try: {ADVICE}."
        )
        folder = run_directory(trainer) if trainer.loggers else None  # on every rank: it may broadcast
        report_summary(trainer, {f"nan_guard/{key}": value for key, value in self.finding.items()}, folder)
        report_alert(trainer, "Loss blow-up" if blow_up else f"NaN/Inf in {kind}", message, "ERROR", folder)
        notice(__name__, message)
        raise (LossBlowUpError if blow_up else NonFiniteError)(message)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"finding": self.finding}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.finding = state_dict.get("finding")
