"""Adaptive gradient clipping (T12): clip at a percentile of the gradient norms seen so far."""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from torch.optim import Optimizer
from typing_extensions import override

from .grad_norm import GradNormMonitor


def percentile_threshold(history: list[float], percentile: float) -> float:
    """The ``percentile``-th percentile (0–100, linear interpolation) of the observed norms."""
    return float(torch.quantile(torch.tensor(history, dtype=torch.float64), percentile / 100.0))


class AutoClip(GradNormMonitor):
    r"""Clip the global gradient norm at the ``percentile``-th percentile of all norms seen so far.

    Seetharaman et al. 2020 ("AutoClip: Adaptive Gradient Clipping for Source Separation Networks"):
    a fixed threshold (T10) needs the typical norm in advance, and that norm drifts during
    training. AutoClip appends each step's pre-clip norm to a history and clips at a percentile of
    it (the paper's default: the 10th), so the threshold follows the run. With DDP the gradients are
    already averaged across ranks when the norm is taken, so every rank keeps the same history.

    It replaces ``GradNormMonitor`` (it logs the same ``grad/norm``, ``grad/clip_rate`` and
    ``grad/clip_rate_total``, against its own threshold) and adds ``grad/clip_threshold``. Leave
    ``trainer.gradient_clip_val`` unset: this callback does the clipping.

    Args:
        percentile: the percentile of the norm history to clip at, in (0, 100].
        history_size: keep only the most recent norms (``None``: the whole run, as in the paper).
        norm_type: the p of the p-norm.

    Raises:
        ValueError: ``percentile`` outside (0, 100], ``history_size`` < 1, ``norm_type`` ≤ 0; at fit
            start, ``trainer.gradient_clip_val`` set or a ``GradNormMonitor`` also present.

    Example::

        trainer:
          gradient_clip_val: null           # AutoClip clips instead
          callbacks:
            - class_path: my_project.callbacks.AutoClip   # T12 (replaces GradNormMonitor)
              init_args:
                percentile: 10
    """

    def __init__(self, percentile: float = 10.0, history_size: Optional[int] = None, norm_type: float = 2.0) -> None:
        super().__init__(norm_type=norm_type)
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100] (the paper uses 10), got {percentile}.")
        if history_size is not None and not (isinstance(history_size, int) and history_size >= 1):
            raise ValueError(f"history_size must be an integer >= 1 or None (the whole run), got {history_size}.")
        self.percentile = float(percentile)
        self.history_size = history_size
        self.history: list[float] = []
        self.threshold: Optional[float] = None

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if trainer.gradient_clip_val:
            raise ValueError(
                f"AutoClip clips the gradients itself: set trainer.gradient_clip_val to null "
                f"(it is {trainer.gradient_clip_val}), or drop AutoClip to clip at a fixed threshold."
            )
        others = [type(cb).__name__ for cb in trainer.callbacks if isinstance(cb, GradNormMonitor) and cb is not self]
        if others:
            raise ValueError(
                f"AutoClip already logs grad/norm and grad/clip_rate; remove {', '.join(others)} from the callbacks."
            )

    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        norm = torch.nn.utils.get_total_norm([p.grad for p in params], self.norm_type)
        value = float(norm)
        if torch.isfinite(norm):  # a NaN/Inf step must not poison the history
            self.history.append(value)
            if self.history_size is not None and len(self.history) > self.history_size:
                del self.history[: len(self.history) - self.history_size]
        if not self.history:
            return
        self.threshold = percentile_threshold(self.history, self.percentile)
        clipped = value > self.threshold
        if clipped:
            torch.nn.utils.clip_grads_with_norm_(params, self.threshold, norm)
        self.steps += 1
        self.clipped += int(clipped)
        pl_module.log("grad/norm", norm, on_step=True, on_epoch=False)
        pl_module.log("grad/clip_threshold", self.threshold, on_step=True, on_epoch=False)
        pl_module.log("grad/clip_rate", float(clipped), on_step=False, on_epoch=True)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": list(self.history), "threshold": self.threshold}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.history = list(state_dict.get("history", []))
        self.threshold = state_dict.get("threshold")
