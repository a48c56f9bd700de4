"""The gradient norm before clipping, and how often clipping fires (T10)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.optim import Optimizer
from typing_extensions import override

from .reporting import report_summary


class GradNormMonitor(Callback):
    r"""Log the global gradient norm *before* clipping and the share of clipped steps.

    Lightning computes the global norm inside ``clip_grad_norm_`` and throws it away, so
    without this callback a user cannot tell whether a threshold of 5 clips every step
    (training is LR-limited by the clip) or never (the clip does nothing). Pascanu et al.
    2013 suggest a threshold a little above the typical norm; read it off ``grad/norm``.

    Logs ``grad/norm`` (every ``log_every_n_steps``) and ``grad/clip_rate`` (share of the
    epoch's steps whose norm exceeded ``trainer.gradient_clip_val``), and writes the
    whole-run share to the W&B summary as ``grad/clip_rate_total``.

    Args:
        norm_type: the p of the p-norm, as in ``Trainer(gradient_clip_algorithm="norm")``.

    Raises:
        ValueError: ``norm_type`` is not positive.

    Example::

        trainer:
          gradient_clip_val: 5.0          # T10: clip the global norm at 5
          callbacks:
            - class_path: my_project.callbacks.GradNormMonitor
    """

    def __init__(self, norm_type: float = 2.0) -> None:
        if not norm_type > 0:
            raise ValueError(f"norm_type must be > 0 (2.0 for the Euclidean norm, inf for max), got {norm_type}.")
        self.norm_type = float(norm_type)
        self.steps = 0
        self.clipped = 0

    @staticmethod
    def _threshold(trainer: Trainer) -> tuple[float, str]:
        value = trainer.gradient_clip_val
        algorithm = trainer.gradient_clip_algorithm or "norm"
        return (float(value) if value else 0.0), str(getattr(algorithm, "value", algorithm))

    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads, self.norm_type)
        threshold, algorithm = self._threshold(trainer)
        if threshold <= 0:
            clipped = False
        elif algorithm == "value":
            clipped = bool(max(g.abs().max() for g in grads) > threshold)
        else:
            clipped = bool(norm > threshold)
        self.steps += 1
        self.clipped += int(clipped)
        pl_module.log("grad/norm", norm, on_step=True, on_epoch=False)
        # batch_size=1: the epoch's value is the share of its steps that clipped, not a batch-size-weighted mean
        pl_module.log("grad/clip_rate", float(clipped), on_step=False, on_epoch=True, batch_size=1)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.steps:
            report_summary(trainer, {"grad/clip_rate_total": self.clipped / self.steps})

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "clipped": self.clipped}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.steps = state_dict.get("steps", 0)
        self.clipped = state_dict.get("clipped", 0)
