"""The LR schedules of ``CyclicLR`` (T02, T03) as pure functions of the optimizer step and plain numbers.

Why hand-written rather than ``torch.optim.lr_scheduler``: a torch scheduler counts its own
``step()`` calls and keeps its bounds in the optimizer's param groups, so the bounds would have
to exist when ``configure_optimizers`` runs (before the LR finder), and a resumed run would need
the scheduler object back. As closed-form functions of ``trainer.global_step``, a run resumed in
the middle of an epoch (and of a cycle) lands on exactly the same LR, with nothing to restore but
the bounds. The tests check every function step by step against torch's ``CyclicLR``,
``OneCycleLR`` and ``CosineAnnealingWarmRestarts``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Optional

POLICIES = ("triangular", "triangular2", "exp_range", "one_cycle", "cosine_restarts")
CYCLIC_MODES = ("triangular", "triangular2", "exp_range")
ANNEALING = ("cos", "linear")


# --------------------------------------------------------------------------------------------
# Pure schedules: Smith 2017 (triangular, triangular2, exp_range)
# --------------------------------------------------------------------------------------------


def _triangle(step: float, step_size: float) -> tuple[int, float]:
    """The cycle number (from 1) and the height of the triangle (0 at the base, 1 at the peak)."""
    cycle = math.floor(1 + step / (2 * step_size))
    x = abs(step / step_size - 2 * cycle + 1)
    return cycle, max(0.0, 1.0 - x)


def _amplitude(step: float, cycle: int, mode: str, gamma: float) -> float:
    if mode == "triangular":
        return 1.0
    if mode == "triangular2":
        return 1.0 / 2.0 ** (cycle - 1)  # the amplitude halves every cycle
    if mode == "exp_range":
        return gamma**step  # decays every iteration
    raise ValueError(f"mode must be one of {CYCLIC_MODES}, got {mode!r}.")


def cyclic_lr(
    step: float, base_lr: float, max_lr: float, step_size: float, mode: str = "triangular", gamma: float = 1.0
) -> float:
    """Smith's (2017) cyclical LR at ``step``: up from ``base_lr`` to ``max_lr`` in ``step_size`` steps and back.

    Args:
        step: optimizer steps taken so far (0 for the first step).
        base_lr: the bottom of the cycle.
        max_lr: the top of the cycle (its amplitude shrinks in ``triangular2`` and ``exp_range``).
        step_size: steps in half a cycle.
        mode: ``triangular`` (constant amplitude), ``triangular2`` (amplitude halved each cycle)
            or ``exp_range`` (amplitude × ``gamma ** step``).
        gamma: the per-step decay of ``exp_range``.
    """
    cycle, height = _triangle(step, step_size)
    return base_lr + (max_lr - base_lr) * height * _amplitude(step, cycle, mode, gamma)


def triangular_lr(step: float, base_lr: float, max_lr: float, step_size: float) -> float:
    """Triangular policy: a constant-amplitude triangle wave between ``base_lr`` and ``max_lr``."""
    return cyclic_lr(step, base_lr, max_lr, step_size, "triangular")


def triangular2_lr(step: float, base_lr: float, max_lr: float, step_size: float) -> float:
    """Triangular2 policy: the triangle's amplitude is halved at the end of every cycle."""
    return cyclic_lr(step, base_lr, max_lr, step_size, "triangular2")


def exp_range_lr(step: float, base_lr: float, max_lr: float, step_size: float, gamma: float) -> float:
    """Exp-range policy: the triangle's amplitude decays as ``gamma ** step``."""
    return cyclic_lr(step, base_lr, max_lr, step_size, "exp_range", gamma)


def cyclic_momentum(
    step: float,
    base_momentum: float,
    max_momentum: float,
    step_size: float,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> float:
    """The momentum that mirrors :func:`cyclic_lr`: at ``max_momentum`` when the LR is lowest, and down
    to ``base_momentum`` when it peaks (Smith 2018; torch's ``CyclicLR(cycle_momentum=True)``)."""
    cycle, height = _triangle(step, step_size)
    return max_momentum - (max_momentum - base_momentum) * height * _amplitude(step, cycle, mode, gamma)


# --------------------------------------------------------------------------------------------
# Pure schedules: one-cycle (Smith & Topin 2018)
# --------------------------------------------------------------------------------------------


def _anneal(start: float, end: float, pct: float, anneal: str) -> float:
    if anneal == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    if anneal == "linear":
        return (end - start) * pct + start
    raise ValueError(f"anneal must be one of {ANNEALING}, got {anneal!r}.")


def _one_cycle_phase(step: float, total_steps: int, pct_start: float) -> tuple[int, float]:
    """Which phase ``step`` is in (0 warm-up, 1 annealing) and how far through it (0…1).

    Phases end at the same steps as in torch's ``OneCycleLR``; steps past the end hold the final value.
    """
    step = min(max(step, 0.0), total_steps - 1)
    warmup_end = float(pct_start * total_steps) - 1
    if step <= warmup_end:
        return 0, (step / warmup_end if warmup_end > 0 else 1.0)
    end = total_steps - 1
    return 1, ((step - warmup_end) / (end - warmup_end) if end > warmup_end else 1.0)


def one_cycle_lr(
    step: float,
    total_steps: int,
    max_lr: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cos",
) -> float:
    """The one-cycle LR at ``step``: ``max_lr / div_factor`` up to ``max_lr`` over the first ``pct_start``
    of ``total_steps``, then down to ``max_lr / div_factor / final_div_factor``.

    Args:
        step: optimizer steps taken so far (0 for the first step); past the end, the final LR.
        total_steps: steps in the whole cycle (the run).
        max_lr: the peak LR.
        pct_start: share of the steps spent warming up.
        div_factor: the start LR is ``max_lr / div_factor``.
        final_div_factor: the final LR is the start LR divided by this.
        anneal: ``cos`` or ``linear`` interpolation within each phase.
    """
    initial = max_lr / div_factor
    phase, pct = _one_cycle_phase(step, total_steps, pct_start)
    if phase == 0:
        return _anneal(initial, max_lr, pct, anneal)
    return _anneal(max_lr, initial / final_div_factor, pct, anneal)


def one_cycle_momentum(
    step: float,
    total_steps: int,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    pct_start: float = 0.3,
    anneal: str = "cos",
) -> float:
    """The one-cycle momentum: ``max_momentum`` down to ``base_momentum`` while the LR warms up, then back."""
    phase, pct = _one_cycle_phase(step, total_steps, pct_start)
    if phase == 0:
        return _anneal(max_momentum, base_momentum, pct, anneal)
    return _anneal(base_momentum, max_momentum, pct, anneal)


# --------------------------------------------------------------------------------------------
# Pure schedules: SGDR (Loshchilov & Hutter 2017)
# --------------------------------------------------------------------------------------------


def cosine_restarts_lr(step: float, eta_max: float, eta_min: float, t0: float, t_mult: int = 1) -> float:
    """SGDR: cosine annealing from ``eta_max`` to ``eta_min`` over ``t0`` steps, restarting at ``eta_max``
    with each period ``t_mult`` times longer than the last.

    Args:
        step: optimizer steps taken so far (any unit works, as long as ``t0`` uses the same).
        eta_max: the LR right after each restart.
        eta_min: the floor the cosine reaches at the end of each period.
        t0: length of the first period.
        t_mult: growth factor of the period after each restart (an integer ≥ 1, as in the paper).
    """
    if t_mult == 1:
        t_cur, t_i = math.fmod(step, t0), t0
    else:
        t_cur, t_i = step, t0
        while t_cur >= t_i:  # O(log step) iterations: the periods grow geometrically
            t_cur -= t_i
            t_i *= t_mult
    return eta_min + (eta_max - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


# --------------------------------------------------------------------------------------------
# A resolved schedule: plain numbers only, so it is the callback's checkpoint state as it is
# --------------------------------------------------------------------------------------------


@dataclass
class CyclicSchedule:
    """Everything ``CyclicLR`` resolved at train start, in optimizer steps; ``lr(step)`` is the schedule.

    Attributes:
        policy: one of ``POLICIES``.
        base_lr: bottom of the cyclic policies' triangle; the start LR of ``one_cycle``;
            ``eta_min`` of ``cosine_restarts``.
        max_lr: the peak LR (group 0 of optimizer 0).
        ratios: each param group's LR relative to group 0 of optimizer 0, per optimizer.
        step_size: steps in half a cycle (cyclic policies).
        gamma: per-step decay of ``exp_range``.
        total_steps: steps in the one cycle.
        pct_start, final_div_factor, anneal: one-cycle settings (the start LR is ``base_lr``).
        t0, t_mult: SGDR's first period (in steps) and its growth factor.
        cycle_momentum, base_momentum, max_momentum: momentum (or Adam's beta1) cycled inversely.
        source: where ``max_lr`` came from (for the log line).
    """

    policy: str = "triangular"
    base_lr: float = 0.0
    max_lr: float = 0.0
    ratios: list[list[float]] | None = None
    step_size: float = 1.0
    gamma: float = 1.0
    total_steps: int = 1
    pct_start: float = 0.3
    final_div_factor: float = 1e4
    anneal: str = "cos"
    t0: float = 1.0
    t_mult: int = 1
    cycle_momentum: bool = False
    base_momentum: float = 0.85
    max_momentum: float = 0.95
    source: str = ""

    def lr(self, step: float) -> float:
        """The LR of group 0 of optimizer 0 at ``step`` (optimizer steps taken so far)."""
        if self.policy in CYCLIC_MODES:
            return cyclic_lr(step, self.base_lr, self.max_lr, self.step_size, self.policy, self.gamma)
        if self.policy == "one_cycle":
            return one_cycle_lr(step, self.total_steps, self.max_lr, self.pct_start,
                                self.max_lr / self.base_lr, self.final_div_factor, self.anneal)
        return cosine_restarts_lr(step, self.max_lr, self.base_lr, self.t0, self.t_mult)

    def completed_cycles(self, step: float) -> int:
        """How many whole cycles ``step`` optimizer steps complete: the schedule's own boundaries (T60 snapshots).

        A cyclic policy's cycle is ``2 * step_size`` steps; SGDR's periods are ``t0``, ``t0 * t_mult``, ...;
        ``one_cycle`` has one cycle of ``total_steps``.
        """
        if self.policy in CYCLIC_MODES:
            return int(step // (2 * self.step_size))
        if self.policy == "one_cycle":
            return int(step >= self.total_steps)
        if self.t_mult == 1:
            return int(step // self.t0)
        cycles, period, left = 0, self.t0, step
        while left >= period:
            left -= period
            period *= self.t_mult
            cycles += 1
        return cycles

    def momentum(self, step: float) -> Optional[float]:
        """The momentum at ``step``, or ``None`` when it is not cycled (off, or ``cosine_restarts``)."""
        if not self.cycle_momentum:
            return None
        if self.policy in CYCLIC_MODES:
            return cyclic_momentum(step, self.base_momentum, self.max_momentum, self.step_size, self.policy, self.gamma)
        if self.policy == "one_cycle":
            return one_cycle_momentum(step, self.total_steps, self.base_momentum, self.max_momentum,
                                      self.pct_start, self.anneal)
        return None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CyclicSchedule:
        """Rebuild from :func:`dataclasses.asdict` output; missing keys take the defaults."""
        defaults = cls()
        return cls(**{f.name: state.get(f.name, getattr(defaults, f.name)) for f in fields(cls)})
