"""Start with Adam, switch to SGD with momentum near convergence (T05, SWATS)."""

from __future__ import annotations

import importlib
import math
import statistics
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch.optim import Optimizer
from typing_extensions import override

from .notices import notice
from .plateau import MODES, default_mode

# keys of a param group that describe the group, not the optimizer: carried over to the new optimizer
_GROUP_KEYS = ("params", "weight_decay", "name")


def _optimizer_class(target: str) -> type[Optimizer]:
    """``SGD`` or ``torch.optim.SGD`` or ``package.module.Class`` → the class; it must be an Optimizer."""
    path = target if "." in target else f"torch.optim.{target}"
    module_name, _, name = path.rpartition(".")
    valid = sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                   and issubclass(getattr(torch.optim, n), Optimizer) and n != "Optimizer")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise ValueError(f"switch target {target!r} is not an optimizer class; choose one of {', '.join(valid)} "
                         "(or a dotted path to a torch.optim.Optimizer subclass).")
    return cls


class OptimizerSwitch(Callback):
    r"""Train with the model's Adam(W), then switch to SGD with momentum on a plateau or at a given epoch.

    Keskar & Socher 2017 ("Improving Generalization Performance by Switching from Adam to SGD",
    arXiv 1712.07628, SWATS): Adam makes fast early progress, SGD often generalises better at the
    end. While Adam runs, this callback keeps SWATS's estimate of the SGD learning rate that would
    have made the same progress, per parameter tensor as in the paper's per-layer algorithm: for
    Adam's step ``p`` and the gradient ``g`` of a tensor it computes ``γ = pᵀp / (−pᵀg)`` (the SGD LR
    whose step projects onto Adam's), and keeps a bias-corrected exponential average ``Λ`` of it with
    Adam's ``β2``. At the switch every tensor gets its own SGD param group with LR
    ``(1 − momentum) · Λ`` (SWATS's momentum form, ``v ← βv + g; w ← w − (1−β)Λv``, written for
    ``torch.optim.SGD``); with ``sgd_lr`` (the documented fixed rule) all share that LR and the param
    groups stay as they were. Groups keep their ``weight_decay`` (no decay on biases stays no decay).
    Embeddings, whose rows Adam moves by momentum while their gradient is zero, get large estimates;
    set ``sgd_lr`` if that is a problem.

    The switch happens at the first validation after which ``monitor`` has not improved for
    ``patience`` validations, or at the start of ``switch_epoch``, whichever comes first. Which
    optimizer is active, and its state, survive a resume: the checkpoint holds SGD's state and the
    callback builds SGD before Lightning loads it. With DDP the decision uses the ranks' mean
    metric and the estimate uses the (already averaged) gradients, so all ranks agree.

    Logs ``optimizer/sgd_lr_estimate`` (while on Adam, the median over tensors) and
    ``optimizer/switched`` (0 or 1) per epoch.

    Args:
        monitor: the validation metric that decides a plateau; ``None`` switches only at ``switch_epoch``.
        mode: ``min`` or ``max``; by default from the metric name (``loss`` → ``min``).
        patience: validations without improvement before the switch.
        min_delta: the least change that counts as an improvement.
        switch_epoch: switch at the start of this (0-based) epoch at the latest; ``None``: only on a plateau.
        target: the optimizer to switch to (``SGD`` or a dotted class path).
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        sgd_lr: a fixed LR for SGD instead of the SWATS estimate.
        estimate_beta: β of the LR estimate's moving average (SWATS uses Adam's β2, 0.999).

    Raises:
        ValueError: ``target`` is not an optimizer class (the message lists torch's), an unknown
            ``mode``, ``patience``/``switch_epoch`` negative, ``momentum`` outside [0, 1), ``sgd_lr`` ≤ 0,
            ``estimate_beta`` outside [0, 1), or neither ``monitor`` nor ``switch_epoch`` given.

    Example::

        model:
          optimizer:
            class_path: torch.optim.AdamW
        trainer:
          callbacks:
            - class_path: my_project.callbacks.OptimizerSwitch   # T05
              init_args:
                monitor: val/loss
                patience: 1
                momentum: 0.9
    """

    def __init__(
        self,
        monitor: Optional[str] = "val/loss",
        mode: Optional[str] = None,
        patience: int = 1,
        min_delta: float = 0.0,
        switch_epoch: Optional[int] = None,
        target: str = "SGD",
        momentum: float = 0.9,
        nesterov: bool = False,
        sgd_lr: Optional[float] = None,
        estimate_beta: float = 0.999,
    ) -> None:
        self.target_class = _optimizer_class(target)
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)} (or None: from the metric name), got {mode!r}.")
        if not (isinstance(patience, int) and patience >= 0):
            raise ValueError(f"patience must be an integer >= 0, got {patience}.")
        if switch_epoch is not None and not (isinstance(switch_epoch, int) and switch_epoch >= 0):
            raise ValueError(f"switch_epoch must be an integer >= 0 or None, got {switch_epoch}.")
        if monitor is None and switch_epoch is None:
            raise ValueError("give a monitor (switch on a plateau), a switch_epoch, or both.")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        if sgd_lr is not None and not sgd_lr > 0:
            raise ValueError(f"sgd_lr must be > 0 or None (the SWATS estimate), got {sgd_lr}.")
        if not 0 <= estimate_beta < 1:
            raise ValueError(f"estimate_beta must be in [0, 1), got {estimate_beta}.")
        self.monitor = monitor
        self.mode = mode or (default_mode(monitor) if monitor else "min")
        self.patience = patience
        self.min_delta = min_delta
        self.switch_epoch = switch_epoch
        self.target = target
        self.momentum = momentum
        self.nesterov = nesterov
        self.sgd_lr = sgd_lr
        self.estimate_beta = estimate_beta
        # progress (the state saved in checkpoints)
        self.switched = False
        self.switch_step: Optional[int] = None
        self.applied_lrs: list[float] = []  # SGD's LR per parameter tensor, once switched
        self.best: Optional[float] = None
        self.wait = 0
        self.estimates: list[float] = []  # per parameter tensor: the moving average Λ before bias correction
        self.estimate_steps: list[int] = []
        self._params: list[torch.Tensor] = []
        self._before: Optional[list[torch.Tensor]] = None
        self._grads: Optional[list[Optional[torch.Tensor]]] = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, target=self.target)

    @property
    def sgd_lr_estimates(self) -> list[Optional[float]]:
        """SWATS's bias-corrected LR estimate Λ̂ per parameter tensor (``None`` where no step was usable yet)."""
        return [e / (1 - self.estimate_beta**k) if k else None for e, k in zip(self.estimates, self.estimate_steps)]

    @property
    def sgd_lr_estimate(self) -> Optional[float]:
        """The median of the per-tensor estimates, ``None`` before the first usable step."""
        known = [e for e in self.sgd_lr_estimates if e is not None]
        return statistics.median(known) if known else None

    # ------------------------------------------------------------------ the estimate while on Adam
    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        if self.switched or self.sgd_lr is not None:
            return
        self._params = [p for group in optimizer.param_groups for p in group["params"]]
        self._before = [p.detach().clone() for p in self._params]
        self._grads = [None if p.grad is None else p.grad.detach().clone() for p in self._params]

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._before is None:
            return
        if len(self.estimates) != len(self._params):
            self.estimates, self.estimate_steps = [0.0] * len(self._params), [0] * len(self._params)
        for i, (parameter, before, grad) in enumerate(zip(self._params, self._before, self._grads)):
            if grad is None:
                continue
            step = (parameter.detach() - before).flatten()
            projection = float(torch.dot(step, grad.flatten()))
            if projection < 0:  # a descent step (always for Adam, barring numerical noise)
                gamma = float(torch.dot(step, step)) / -projection
                if math.isfinite(gamma):
                    self.estimates[i] = self.estimate_beta * self.estimates[i] + (1 - self.estimate_beta) * gamma
                    self.estimate_steps[i] += 1
        self._before = self._grads = None

    # ------------------------------------------------------------------ the decision
    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.switched and self.switch_epoch is not None and trainer.current_epoch >= self.switch_epoch:
            self._switch(trainer, f"epoch {trainer.current_epoch}")

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("optimizer/switched", float(self.switched), on_step=False, on_epoch=True)
        if not self.switched and self.sgd_lr_estimate is not None:  # the median over the parameter tensors
            pl_module.log("optimizer/sgd_lr_estimate", self.sgd_lr_estimate, on_step=False, on_epoch=True)

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.switched or self.monitor is None or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            available = ", ".join(sorted(trainer.callback_metrics)) or "none"
            notice(__name__, f"OptimizerSwitch: the validation did not log `{self.monitor}`. Available: {available}.")
            return
        value = float(trainer.strategy.reduce(torch.as_tensor(float(value), device=pl_module.device), reduce_op="mean"))
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait > self.patience:
            self._switch(trainer, f"{self.monitor} did not improve for {self.wait} validation(s)")

    # ------------------------------------------------------------------ the switch itself
    def _learning_rates(self, old: Optimizer) -> list[float]:
        """One LR per parameter tensor of ``old``, in its order."""
        count = sum(len(group["params"]) for group in old.param_groups)
        if self.sgd_lr is not None:
            return [self.sgd_lr] * count
        estimates = self.sgd_lr_estimates if len(self.estimates) == count else [None] * count
        fallback = self.sgd_lr_estimate
        if fallback is None:
            fallback = float(old.param_groups[0]["lr"])
            notice(__name__, "OptimizerSwitch: no SWATS estimate yet (no training step seen); SGD keeps Adam's LR.")
        scale = (1 - self.momentum) if self.target_class is torch.optim.SGD else 1.0
        return [scale * (fallback if e is None else e) for e in estimates]

    def _build(self, old: Optimizer, lrs: list[float]) -> Optimizer:
        groups, index = [], 0
        for group in old.param_groups:
            keep = {k: v for k, v in group.items() if k in _GROUP_KEYS and k != "params"}
            if self.sgd_lr is not None:  # one LR: keep the groups as they are
                groups.append({**keep, "params": group["params"], "lr": lrs[index]})
                index += len(group["params"])
                continue
            for parameter in group["params"]:  # SWATS: each tensor its own LR
                groups.append({**keep, "params": [parameter], "lr": lrs[index]})
                index += 1
        kwargs: dict[str, Any] = {"lr": lrs[0] if lrs else 0.01}
        if self.target_class is torch.optim.SGD:
            kwargs.update(momentum=self.momentum, nesterov=self.nesterov and self.momentum > 0)
        return self.target_class(groups, **kwargs)

    def _install(self, trainer: Trainer, new: Optimizer) -> None:
        old = trainer.optimizers[0]
        trainer.strategy.optimizers = [new, *trainer.optimizers[1:]]
        for config in trainer.lr_scheduler_configs:  # a model scheduler keeps stepping the active optimizer
            if getattr(config.scheduler, "optimizer", None) is old:
                config.scheduler.optimizer = new

    def _switch(self, trainer: Trainer, reason: str) -> None:
        old = trainer.optimizers[0]
        lrs = self._learning_rates(old)
        self._install(trainer, self._build(old, lrs))
        self.switched = True
        self.switch_step = trainer.global_step
        self.applied_lrs = lrs
        rank_zero_info(
            f"OptimizerSwitch: {reason}; {type(old).__name__} (lr {float(old.param_groups[0]['lr']):.3g}) -> "
            f"{self.target_class.__name__} (lr {statistics.median(lrs):.3g} median over {len(lrs)} tensors, "
            f"momentum {self.momentum}) at step {trainer.global_step}."
        )

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # resumed after the switch: build SGD now, before Lightning loads the checkpoint's (SGD) optimizer state
        if self.switched and trainer.optimizers and not isinstance(trainer.optimizers[0], self.target_class):
            self._install(trainer, self._build(trainer.optimizers[0], self.applied_lrs))

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "switched": self.switched, "switch_step": self.switch_step, "applied_lrs": list(self.applied_lrs),
            "best": self.best, "wait": self.wait, "estimates": list(self.estimates),
            "estimate_steps": list(self.estimate_steps),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.switched = state_dict.get("switched", False)
        self.switch_step = state_dict.get("switch_step")
        self.applied_lrs = list(state_dict.get("applied_lrs", []))
        self.best = state_dict.get("best")
        self.wait = state_dict.get("wait", 0)
        self.estimates = list(state_dict.get("estimates", []))
        self.estimate_steps = list(state_dict.get("estimate_steps", []))
