"""Cyclical learning rates, one-cycle and SGDR warm restarts, set every optimizer step (T02, T03).

The schedules are pure functions of the step number and plain numbers (``schedules.py``), so they can be
tested and plotted without a Trainer; ``CyclicLR`` only resolves the bounds at train start and writes
``schedule.lr(trainer.global_step)`` into the optimizer before each batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from .notices import notice
from .schedules import ANNEALING, CYCLIC_MODES, POLICIES, CyclicSchedule  # the pure schedules (schedules.py)

def find_lr_suggestion(trainer: Trainer, exclude: object = None) -> tuple[Optional[float], str]:
    """The first positive, finite float ``suggestion`` among the trainer's callbacks (an LR finder's
    result, found duck-typed), with the callback's class name; ``(None, "")`` when none has one."""
    for callback in trainer.callbacks:
        value = getattr(callback, "suggestion", None)
        if callback is exclude or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value) and value > 0:
            return float(value), type(callback).__name__
    return None, ""


class CyclicLR(Callback):
    r"""Set the LR (and momentum) every optimizer step from a cyclical, one-cycle or SGDR schedule.

    Implements T02 (Smith 2017 cyclical LR: ``triangular``, ``triangular2``, ``exp_range``;
    Smith & Topin 2018 ``one_cycle``; momentum cycled inversely to the LR) and T03 (Loshchilov &
    Hutter 2017 SGDR, ``cosine_restarts``, whose period ends are natural snapshot points).

    The bounds are resolved when training starts. ``max_lr`` is, in order: the argument; the
    suggestion of an LR finder callback that ran in this fit (T01, any callback with a float
    ``suggestion`` attribute); the optimizer's LR (group 0). ``base_lr`` is the argument or
    ``max_lr × base_ratio`` (Smith: max/3…max/4). Every other param group keeps its LR ratio to
    group 0. The resolved schedule is saved in checkpoints, so a resumed run continues the same
    schedule at the exact step (``trainer.global_step``), also mid-epoch, without re-running the finder.

    The LR itself is not logged here: add Lightning's ``LearningRateMonitor``. When momentum is
    cycled, its value (group 0 of optimizer 0) is logged as ``momentum``.

    Args:
        policy: ``triangular``, ``triangular2``, ``exp_range``, ``one_cycle`` or ``cosine_restarts``.
        base_lr: bottom of the triangle (cyclic policies only); default ``max_lr × base_ratio``.
        max_lr: top of the cycle; default the LR finder's suggestion, else the optimizer's LR.
        base_ratio: ``base_lr = max_lr × base_ratio`` when ``base_lr`` is not given.
        step_size_epochs: half a cycle, in epochs (Smith: 2–10 × the iterations of an epoch).
            Steps per epoch are ``ceil(num_training_batches / accumulate_grad_batches)``.
        gamma: ``exp_range``'s per-step decay of the amplitude, in (0, 1].
        pct_start: ``one_cycle``: share of the steps spent warming up.
        div_factor: ``one_cycle``: it starts at ``max_lr / div_factor``.
        final_div_factor: ``one_cycle``: it ends at ``max_lr / div_factor / final_div_factor``.
        anneal: ``one_cycle``: ``cos`` or ``linear`` interpolation.
        total_steps: ``one_cycle``: steps in the cycle; default ``trainer.estimated_stepping_batches``
            (``max_epochs`` × steps per epoch, or ``max_steps`` when smaller).
        t_0: ``cosine_restarts``: epochs of the first period (SGDR's :math:`T_0`).
        t_mult: ``cosine_restarts``: each period is ``t_mult`` times the previous (:math:`T_{mult}`).
        eta_min: ``cosine_restarts``: the floor of the cosine.
        cycle_momentum: cycle the momentum (SGD ``momentum``, or ``beta1`` of Adam-style ``betas``)
            inversely to the LR; optimizers with neither are left alone, and ``cosine_restarts`` keeps
            the momentum fixed (as in the SGDR paper). Note that it turns momentum on for plain SGD,
            as torch's schedulers do.
        base_momentum: momentum at the LR's peak.
        max_momentum: momentum at the LR's trough.

    Raises:
        ValueError: an unknown ``policy`` or ``anneal``, ``max_lr <= base_lr``, ``base_ratio``
            outside (0, 1), ``step_size_epochs <= 0``, ``gamma`` outside (0, 1], ``base_lr`` given to
            ``one_cycle``/``cosine_restarts``, or another setting out of range; at train start, when the
            resolved ``max_lr`` is not above the low end (e.g. a finder's suggestion below ``base_lr``).
        RuntimeError: at train start, when the train dataloader has no length (steps per epoch unknown).

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.CyclicLR     # T02: max LR from the LR finder (T01)
              init_args:
                policy: triangular2
                base_ratio: 0.25          # base = max / 4
                step_size_epochs: 4       # half a cycle = 4 epochs
            - class_path: lightning.pytorch.callbacks.LearningRateMonitor
              init_args:
                logging_interval: step
    """

    def __init__(
        self,
        policy: str = "triangular",
        base_lr: Optional[float] = None,
        max_lr: Optional[float] = None,
        base_ratio: float = 0.25,
        step_size_epochs: float = 4.0,
        gamma: float = 0.99994,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal: str = "cos",
        total_steps: Optional[int] = None,
        t_0: float = 1.0,
        t_mult: int = 2,
        eta_min: float = 0.0,
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}.")
        if anneal not in ANNEALING:
            raise ValueError(f"anneal must be one of {', '.join(ANNEALING)}; got {anneal!r}.")
        if base_lr is not None and policy not in CYCLIC_MODES:
            raise ValueError(
                f"base_lr applies to the policies {', '.join(CYCLIC_MODES)}; for {policy} set "
                + ("div_factor (the start LR is max_lr / div_factor)." if policy == "one_cycle" else "eta_min.")
            )
        if base_lr is not None and not base_lr >= 0:
            raise ValueError(f"base_lr must be >= 0, got {base_lr}.")
        if max_lr is not None and not max_lr > 0:
            raise ValueError(f"max_lr must be > 0 (or None: the LR finder's or the optimizer's LR), got {max_lr}.")
        if max_lr is not None and base_lr is not None and not max_lr > base_lr:
            raise ValueError(f"max_lr must be > base_lr, got max_lr={max_lr} <= base_lr={base_lr}.")
        if not 0 < base_ratio < 1:
            raise ValueError(f"base_ratio must be in (0, 1) (Smith: 1/3 to 1/4), got {base_ratio}.")
        if not step_size_epochs > 0:
            raise ValueError(f"step_size_epochs must be > 0 (Smith: 2 to 10), got {step_size_epochs}.")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1] (1 makes exp_range triangular), got {gamma}.")
        if not 0 < pct_start < 1:
            raise ValueError(f"pct_start must be in (0, 1), got {pct_start}.")
        if not div_factor > 1 or not final_div_factor >= 1:
            raise ValueError(f"div_factor must be > 1 and final_div_factor >= 1, got {div_factor}, {final_div_factor}.")
        if total_steps is not None and not (isinstance(total_steps, int) and total_steps > 0):
            raise ValueError(f"total_steps must be a positive integer (or None: from the trainer), got {total_steps}.")
        if not t_0 > 0:
            raise ValueError(f"t_0 must be > 0 epochs, got {t_0}.")
        if not (isinstance(t_mult, int) and t_mult >= 1):
            raise ValueError(f"t_mult must be an integer >= 1, got {t_mult}.")
        if not eta_min >= 0 or (max_lr is not None and not max_lr > eta_min):
            raise ValueError(f"eta_min must be in [0, max_lr), got {eta_min}.")
        if not 0 <= base_momentum <= max_momentum < 1:
            raise ValueError(
                "momentum bounds must satisfy 0 <= base_momentum <= max_momentum < 1, "
                f"got {base_momentum}, {max_momentum}."
            )
        self.policy = policy
        self.base_lr = base_lr
        self.max_lr = max_lr
        self.base_ratio = base_ratio
        self.step_size_epochs = float(step_size_epochs)
        self.gamma = gamma
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.anneal = anneal
        self.total_steps = total_steps
        self.t_0 = float(t_0)
        self.t_mult = t_mult
        self.eta_min = eta_min
        self.cycle_momentum = cycle_momentum
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum
        self.schedule: Optional[CyclicSchedule] = None  # resolved at train start, or restored
        self._momentum_keys: list[Optional[str]] = []  # per optimizer: "betas", "momentum" or None

    @staticmethod
    def _steps_per_epoch(trainer: Trainer) -> int:
        batches = trainer.num_training_batches
        if not math.isfinite(batches) or batches <= 0:
            raise RuntimeError(
                f"CyclicLR needs the number of training batches per epoch, but it is {batches}. Give the train "
                "dataloader a length, or set `limit_train_batches` to an integer."
            )
        return max(1, math.ceil(int(batches) / trainer.accumulate_grad_batches))

    def _resolve(self, trainer: Trainer) -> CyclicSchedule:
        lr0 = float(trainer.optimizers[0].param_groups[0]["lr"])
        ratios = [[float(g["lr"]) / lr0 if lr0 > 0 else 1.0 for g in opt.param_groups] for opt in trainer.optimizers]
        suggestion, finder = find_lr_suggestion(trainer, exclude=self)
        if self.max_lr is not None:
            max_lr, source = float(self.max_lr), "the max_lr argument"
        elif suggestion is not None:
            max_lr, source = suggestion, f"the suggestion of {finder}"
        else:
            max_lr, source = lr0, "the optimizer's LR"
        if self.policy in CYCLIC_MODES:
            base_lr = float(self.base_lr) if self.base_lr is not None else max_lr * self.base_ratio
        elif self.policy == "one_cycle":
            base_lr = max_lr / self.div_factor
        else:
            base_lr = float(self.eta_min)
        if not max_lr > base_lr:
            raise ValueError(
                f"CyclicLR: max_lr={max_lr} (from {source}) must be > the low end {base_lr}. Set max_lr, run an LR "
                "finder callback before it, or give the optimizer a positive LR."
            )
        steps_per_epoch = self._steps_per_epoch(trainer)
        total_steps = self.total_steps
        if total_steps is None and self.policy == "one_cycle":
            estimated = trainer.estimated_stepping_batches
            if not math.isfinite(estimated) or estimated <= 0:
                raise ValueError(
                    "CyclicLR(policy='one_cycle') needs the run's length: set trainer max_epochs or max_steps, "
                    "or pass total_steps."
                )
            total_steps = int(estimated)
        return CyclicSchedule(
            policy=self.policy,
            base_lr=base_lr,
            max_lr=max_lr,
            ratios=ratios,
            step_size=self.step_size_epochs * steps_per_epoch,
            gamma=self.gamma,
            total_steps=int(total_steps or 1),
            pct_start=self.pct_start,
            final_div_factor=self.final_div_factor,
            anneal=self.anneal,
            t0=self.t_0 * steps_per_epoch,
            t_mult=self.t_mult,
            cycle_momentum=self.cycle_momentum,
            base_momentum=self.base_momentum,
            max_momentum=self.max_momentum,
            source=source,
        )

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            notice(
                __name__,
                "CyclicLR sets the LR every step, but the module also configured an LR scheduler; the two fight. "
                "Return only the optimizer from `configure_optimizers`."
            )
        if self.schedule is None:
            self.schedule = self._resolve(trainer)
            s = self.schedule
            rank_zero_info(
                f"CyclicLR: {s.policy}, LR {s.base_lr:.3g} to {s.max_lr:.3g} (max from {s.source})."
            )
        elif self.schedule.policy != self.policy:
            notice(
                __name__,
                f"CyclicLR: the checkpoint holds a {self.schedule.policy} schedule; it is continued, not the "
                f"configured {self.policy}."
            )
        ratios = self.schedule.ratios or []
        if [len(r) for r in ratios] != [len(opt.param_groups) for opt in trainer.optimizers]:
            notice(__name__, "CyclicLR: the optimizers' param groups changed since the schedule was resolved; "
                             "every group now gets group 0's LR.")
            self.schedule.ratios = [[1.0] * len(opt.param_groups) for opt in trainer.optimizers]
        self._momentum_keys = []
        for opt in trainer.optimizers:
            group = opt.param_groups[0]
            self._momentum_keys.append("betas" if "betas" in group else "momentum" if "momentum" in group else None)

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        schedule = self.schedule
        if schedule is None:
            return
        step = trainer.global_step
        lr = schedule.lr(step)
        momentum = schedule.momentum(step)
        cycled = False
        for opt, ratios, key in zip(trainer.optimizers, schedule.ratios or [], self._momentum_keys):
            for group, ratio in zip(opt.param_groups, ratios):
                group["lr"] = lr * ratio
                if momentum is None or key is None:
                    continue
                if key == "betas":
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
                cycled = True
        if cycled:
            pl_module.log("momentum", momentum, on_step=True, on_epoch=False)

    @override
    def state_dict(self) -> dict[str, Any]:
        return asdict(self.schedule) if self.schedule is not None else {}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.schedule = CyclicSchedule.from_state(state_dict) if state_dict.get("max_lr") else None
