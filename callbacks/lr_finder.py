"""LR range test (T01): sweep the learning rate, read a good one off the loss curve.

Smith 2017 ("Cyclical Learning Rates for Training Neural Networks", arXiv 1506.01186) and
fastai's ``lr_find``: train a few steps while the LR grows exponentially, smooth the loss, stop
when it diverges, then pick an LR where the loss still falls fast. The curve analysis is a set of
pure functions of plain numbers (``smooth``, ``suggest_lr``, ``assess_curve``); ``LRFinder`` is the
Lightning adapter that runs the sweep, restores the model exactly and applies the result.

Differences from Lightning 2.6.6's ``lr_find`` that matter in practice: the slope is taken
against log10(LR), not the LR itself (which returns ~1e-7 on noisy curves); the EMA's bias
correction uses the number of points seen, so the first smoothed value equals the first loss
and the divergence stop means what it says; it runs again mid-training (``epochs``); the curve,
the suggestion and its confidence reach the logger.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from lightning.fabric.utilities.data import sized_len
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loops.optimization.automatic import _AutomaticOptimization
from lightning.pytorch.loops.utilities import _block_parallel_sync_behavior
from lightning.pytorch.trainer import call
from lightning.pytorch.trainer.connectors.data_connector import (
    _parse_num_batches,
    _process_dataloader,
    _request_dataloader,
    _resolve_overfit_batches,
)
from lightning.pytorch.trainer.states import RunningStage, TrainerFn
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_helpers import _ModuleMode
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torchmetrics import Metric
from typing_extensions import override

from .fit_start import FitStartStep
from .lr_scaling import scale_learning_rates
from .notices import notice
from .reporting import report_summary, wandb_media
from .wandb_io import find_wandb_logger, run_directory, write_atomically

METHODS = ("robust", "steep", "valley", "min10")
SWEEPS = ("exponential", "linear")
MIN_POINTS = 10  # fewer usable points than this: no suggestion, keep the configured LR
FLAT_DROP = 0.02  # a curve whose smoothed loss never falls 2% below its start holds no descent to read


# ---------------------------------------------------------------------------- pure functions
def exponential_sweep(min_lr: float, max_lr: float, num_steps: int) -> list[float]:
    """``num_steps`` LRs from ``min_lr`` to ``max_lr``, equally spaced in log scale."""
    ratio = (max_lr / min_lr) ** (1.0 / (num_steps - 1))
    return [min_lr * ratio**i for i in range(num_steps)]


def linear_sweep(min_lr: float, max_lr: float, num_steps: int) -> list[float]:
    """``num_steps`` LRs from ``min_lr`` to ``max_lr``, equally spaced."""
    step = (max_lr - min_lr) / (num_steps - 1)
    return [min_lr + step * i for i in range(num_steps)]


def smooth(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected exponential moving average: the i-th value is divided by ``1 - beta**i``.

    With the correction the first smoothed value equals the first loss (an uncorrected EMA
    starts at ``(1 - beta) * loss``; dividing by the wrong power halves it).
    """
    average, out = 0.0, []
    for count, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta**count))
    return out


def divergence_index(smoothed: Sequence[float], factor: float = 4.0, skip: int = 5) -> Optional[int]:
    """First index where the smoothed loss is non-finite or above ``factor`` × its minimum so far."""
    best = math.inf
    for index, value in enumerate(smoothed):
        if not math.isfinite(value):
            return index
        best = min(best, value)
        if index >= skip and value > factor * best:
            return index
    return None


def _usable(lrs: Sequence[float], losses: Sequence[float], beta: float, factor: float) -> tuple[list[float], list[float], list[float]]:
    """Points up to the first non-finite loss and the divergence point, with their smoothed losses."""
    if len(lrs) != len(losses):
        raise ValueError(f"lrs and losses differ in length ({len(lrs)} vs {len(losses)}).")
    end = next((i for i, loss in enumerate(losses) if not math.isfinite(loss)), len(losses))
    lrs, losses = list(lrs[:end]), list(losses[:end])
    smoothed = smooth(losses, beta)
    stop = divergence_index(smoothed, factor)
    if stop is not None:
        lrs, losses, smoothed = lrs[:stop], losses[:stop], smoothed[:stop]
    return lrs, losses, smoothed


def _centered(values: Sequence[float], half_window: int) -> list[float]:
    """Moving average over ±``half_window`` points: smooths without the EMA's lag."""
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half_window), min(len(values), i + half_window + 1)
        out.append(sum(values[lo:hi]) / (hi - lo))
    return out


def _slopes(x: Sequence[float], y: Sequence[float], half_window: int) -> list[float]:
    """Least-squares slope of ``y`` against ``x`` over a window of ±``half_window`` points."""
    slopes = []
    for i in range(len(x)):
        lo, hi = max(0, i - half_window), min(len(x), i + half_window + 1)
        xs, ys = x[lo:hi], y[lo:hi]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((a - mx) ** 2 for a in xs)
        slopes.append(sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / var if var > 0 else 0.0)
    return slopes


def _noise(raw: Sequence[float]) -> float:
    """Robust per-point noise of a raw curve: MAD of its step-to-step differences (the trend cancels)."""
    steps = sorted(abs(b - a) for a, b in zip(raw, raw[1:]))
    return 1.4826 * steps[len(steps) // 2] / math.sqrt(2) if steps else 0.0


def _is_flat(raw: Sequence[float], smoothed: Sequence[float], half_window: int) -> bool:
    """The smoothed loss never fell clearly below where it started.

    Clearly: by more than ``FLAT_DROP`` of its start and by more than four standard errors of the
    moving average, so that noise alone (a 3% jitter dips the average ~4% somewhere) is not a descent.
    """
    drop = smoothed[0] - min(smoothed)
    error = _noise(raw) / math.sqrt(2 * half_window + 1)
    return drop <= max(FLAT_DROP * abs(smoothed[0]), 4 * error)


def _lift_off_index(raw: Sequence[float], smoothed: Sequence[float], half_window: int) -> Optional[int]:
    """Where a flat curve starts to rise for good, or None when it never does.

    The flat level is the median of the first half of the raw losses; the curve has lifted off
    where the moving average climbs three standard errors above it and stays there to the end
    (at least three points).
    """
    head = sorted(raw[: len(raw) // 2])
    threshold = head[len(head) // 2] + 3 * _noise(raw) / math.sqrt(2 * half_window + 1)
    index = len(smoothed)
    while index > 0 and smoothed[index - 1] > threshold:
        index -= 1
    return index if len(smoothed) - index >= 3 else None


def _valley_index(values: Sequence[float]) -> int:
    """fastai's ``valley``: the longest decreasing run of the curve, two thirds of the way down it."""
    n = len(values)
    lengths = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if values[i] < values[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
        if lengths[end] < lengths[i]:
            end, start = i, i - lengths[i]
    section = (end - start) / 3
    return min(n - 1, max(0, start + int(section) + int(section / 2)))


def suggest_lr(
    lrs: Sequence[float], losses: Sequence[float], method: str = "robust", beta: float = 0.98, divergence: float = 4.0
) -> float:
    """Pick a learning rate from a range test's *raw* recorded losses.

    The losses are smoothed (bias-corrected EMA) and cut at the first non-finite value or where
    they exceed ``divergence`` × the best so far. Slopes are taken against log10(LR).

    Args:
        lrs: the learning rates of the sweep, in the order they were used.
        losses: the raw training losses recorded at those learning rates.
        method: ``steep`` — steepest descent of the smoothed loss (Smith 2017);
            ``valley`` — fastai's longest-valley rule; ``min10`` — the LR of the minimum ÷ 10;
            ``robust`` (default) — ``min10`` kept inside the swept range, and on a flat curve (a
            model too slow to lower its loss within the sweep) a decade below where the loss starts
            to rise. On MR, digits and a UCR set with Adam and SGD it was the most reliable rule
            (benchmarks/results/lr_finder.md).
        beta: EMA smoothing factor.
        divergence: cut the curve where the smoothed loss exceeds this multiple of its minimum.

    Raises:
        ValueError: unknown method, mismatched lengths, or fewer than 10 usable points.

    Example:
        >>> lrs = exponential_sweep(1e-5, 1.0, 100)
        >>> losses = [1 / (1 + (lr / 1e-2) ** 2) + (lr > 0.3) * 10 for lr in lrs]
        >>> 1e-3 < suggest_lr(lrs, losses) < 1e-1
        True
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    lrs, raw, _ = _usable(lrs, losses, beta, divergence)
    if len(lrs) < MIN_POINTS:
        raise ValueError(f"only {len(lrs)} usable points before the loss diverged; need at least {MIN_POINTS}.")
    # The EMA decides where the curve diverged (online, as during the sweep); reading the curve uses a
    # centred average instead: with beta=0.98 the EMA lags ~50 points, which shifts every feature right.
    half_window = max(2, len(lrs) // 20)
    smoothed = _centered(raw, half_window)
    x = [math.log10(lr) for lr in lrs]
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    if method == "min10":
        return lrs[lowest] / 10
    if method == "robust":
        # A model that learns too slowly to lower its loss within the sweep (e.g. a randomly initialised
        # LSTM on MR) gives a flat curve whose minimum is noise; where the loss starts to rise is still
        # a reading: the largest LR it tolerates. A decade below it, as min10 does below the minimum.
        rise = _lift_off_index(raw, smoothed, half_window) if _is_flat(raw, smoothed, half_window) else None
        best = lrs[rise] if rise is not None else lrs[lowest]
        return min(max(best / 10, lrs[0]), lrs[-1])  # never outside the swept range
    if method == "valley":
        return lrs[_valley_index(smoothed)]
    slopes = _slopes(x, smoothed, 1)
    return lrs[min(range(lowest + 1), key=slopes.__getitem__)]


@dataclass(frozen=True)
class CurveCheck:
    """Whether a range-test curve can be trusted, and why not.

    ``usable`` is False when the curve holds no signal to read (flat to the end, or too short); a noisy
    curve is not ``confident`` but still usable.
    """

    confident: bool
    reason: str
    usable: bool = True


def assess_curve(
    lrs: Sequence[float], losses: Sequence[float], beta: float = 0.98, divergence: float = 4.0
) -> CurveCheck:
    """Flag curves whose suggestion should not be trusted: too short, flat or too noisy."""
    swept = len(lrs)
    lrs, raw, _ = _usable(lrs, losses, beta, divergence)
    diverged = len(lrs) < swept
    if len(lrs) < 20:
        return CurveCheck(False, f"too short: {len(lrs)} usable steps; lower min_lr or raise num_steps", usable=False)
    half_window = max(2, len(lrs) // 20)
    smoothed = _centered(raw, half_window)
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    start = smoothed[0]
    drop = start - smoothed[lowest]
    if _is_flat(raw, smoothed, half_window):
        fell = f"the loss fell {100 * drop / abs(start):.1f}%"
        fell = f"flat: {fell}" if drop <= FLAT_DROP * abs(start) else f"no clear descent: {fell}, within its noise"
        rise = _lift_off_index(raw, smoothed, half_window)
        if rise is not None:
            return CurveCheck(False, f"{fell}, then rose from lr={lrs[rise]:.2g}: the robust reading is a decade "
                                     "below the rise (a model too slow to lower its loss within the sweep)")
        if diverged:
            return CurveCheck(False, f"{fell} and diverged without rising first: raise num_steps", usable=False)
        return CurveCheck(False, f"{fell} before the end of the sweep: raise max_lr", usable=False)
    # step-to-step differences of the raw loss measure its noise without the curve's own trend
    steps = [b - a for a, b in zip(raw[: lowest + 1], raw[1 : lowest + 1])]
    noise = (sum(d * d for d in steps) / max(1, len(steps)) / 2) ** 0.5
    if noise > drop:
        return CurveCheck(False, f"noisy: loss noise {noise:.3g} vs a drop of {drop:.3g}; use more steps or a bigger batch")
    return CurveCheck(True, "ok")


def plot_curve(lrs: Sequence[float], losses: Sequence[float], suggestions: dict[str, float], path: Path,
               beta: float = 0.98, flag: str = "") -> Path:
    """Save the raw and smoothed curve with the suggestions marked as a PNG.

    ``flag`` is the reason a reading is not confident (``assess_curve``); it goes into the title,
    so a look at the plot tells a flagged reading from a clear one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    smoothed = smooth(losses, beta)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(lrs, losses, color="0.75", linewidth=1, label="loss")
    ax.plot(lrs, smoothed, color="tab:blue", label="smoothed")
    for (name, lr), color in zip(suggestions.items(), ("tab:red", "tab:orange", "tab:green", "tab:purple", "k")):
        ax.axvline(lr, color=color, linestyle="--", linewidth=1, label=f"{name}: {lr:.2e}")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) - 0.05 * abs(min(finite)), 1.5 * max(finite[: max(1, len(finite) // 5)]))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    if flag:
        import textwrap

        ax.set_title("\n".join(textwrap.wrap(f"not a confident reading: {flag}", 80)), fontsize=7, color="tab:red")
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        return write_atomically(path, lambda partial: fig.savefig(partial, dpi=110, format="png"))
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------- the callback
@contextmanager
def _no_logging(module: LightningModule) -> Iterator[None]:
    # Sweep steps run outside Lightning's loops (no result collection for the step), where `self.log`
    # raises; their values are not training metrics anyway. Shadow the bound methods on the instance,
    # then remove the shadows.
    module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    module.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        del module.log, module.log_dict


@contextmanager
def _callbacks_muted(trainer: Trainer) -> Iterator[None]:
    """No callback hooks during the sweep; the LightningModule's own hooks still run.

    Lightning's optimization calls ``on_before_zero_grad``, ``on_before_backward``, ``on_after_backward``
    and ``on_before_optimizer_step`` on every callback. The sweep's steps are undone afterwards, but a
    callback's reaction to them is not: ``NanGuard`` would stop the run at the sweep's deliberate
    divergence, ``AutoClip`` would keep the sweep's gradient norms in its history, monitors would count
    steps that never happened. The module's hooks (its ``backward``, ``optimizer_step``,
    ``configure_gradient_clipping``, ``on_after_backward``, ...) are part of the step that trains, and run.
    ``_call_callback_hooks`` reads ``trainer.callbacks`` on every call, so an empty list mutes them; the
    list object itself is put back (a hook loop already iterating it, like ``on_fit_start``'s, is unaffected).
    """
    callbacks = trainer.callbacks
    trainer.callbacks = []
    try:
        yield
    finally:
        trainer.callbacks = callbacks


def _sweep_bar(trainer: Trainer, total: int) -> Any:
    """A progress bar over the sweep's steps on rank zero, off when the trainer shows no progress bar."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="LR sweep", unit="step", leave=False,
                disable=not trainer.is_global_zero or trainer.progress_bar_callback is None)


def _loss_of(output: Any) -> Optional[torch.Tensor]:
    if isinstance(output, dict):
        output = output.get("loss")
    return output if isinstance(output, torch.Tensor) else None


MIN_STEPS = 20  # fewer sweep steps give no readable curve
_TIMED_STEPS = 5  # the sweep's first steps, timed (after the first, which warms up) for max_time


class LRFinder(FitStartStep):
    """Learning-rate range test before training (and, optionally, at given epochs) (T01).

    Sweeps the LR over ``num_steps`` training steps, stops when the smoothed loss diverges,
    restores the model, optimizer, precision (GradScaler) and RNG state exactly, then sets the
    suggested LR on the model's ``lr`` attribute and on every param group (keeping the groups'
    ratios). A cyclical schedule (``CyclicLR``) takes its bounds from ``suggestion``. Skipped on resume.

    A sweep step is the step that trains: Lightning's automatic optimization over
    ``accumulate_grad_batches`` micro-batches (loss divided by it, no DDP gradient sync before the
    last), under the trainer's precision (autocast, GradScaler), with the trainer's gradient
    clipping and the module's hooks, on this rank's shard of the training data. Callbacks' hooks do
    not see the sweep (``_callbacks_muted``).

    Logs to W&B (when a ``WandbLogger`` is present) the curve as a line plot and a PNG, and
    ``lr_finder/suggestion``, ``lr_finder/confident``, ``lr_finder/applied``, ``lr_finder/reason`` to the summary; the
    PNG is also saved in the run directory as ``lr_finder.png``.

    Args:
        min_lr: first LR of the sweep.
        max_lr: last LR of the sweep.
        num_steps: sweep length in optimizer steps (~100; fewer than 20 is refused); each consumes
            ``accumulate_grad_batches`` batches.
        mode: ``exponential`` (default) or ``linear`` LR growth.
        method: how to read the curve: ``robust`` (default), ``steep``, ``valley``, ``min10``.
        beta: EMA factor smoothing the loss.
        divergence: stop when the smoothed loss exceeds this multiple of its best value.
        val_batches: 0 records the training loss (default); N > 0 records the mean loss on N
            validation batches after every step (Smith's original, N extra forwards per step).
        epochs: also run at the start of these epochs (e.g. after unfreezing an embedding).
        before_fit: run at the start of fit.
        unreliable: what to do with a suggestion from a curve with nothing to read (flat to the end
            of the sweep, or too short): ``keep`` the configured LR (default; such a curve's "best"
            point is noise) or ``apply`` it anyway. A flat curve that rises at the end is read a
            decade below the rise and applied, with a warning.
            A merely noisy curve's suggestion is applied, with a warning.
        max_time: a budget in seconds for the sweep (``null``: none). After its first 5 steps the
            sweep measures a step; if ``num_steps`` would take longer than the budget (long
            documents: a step of 64 of them can take seconds), the rest of the sweep is
            re-planned over fewer steps (at least 20) that still reach ``max_lr``, and a line
            says so. The choice is made on rank zero for every rank.

    The outcome is always one console line: the LR applied (or kept), the reading, whether it is
    confident and why not, and where the plot is.

    Raises:
        ValueError: ``min_lr >= max_lr``, non-positive LRs, unknown ``mode``/``method``,
            ``num_steps < 20``, ``beta`` outside [0, 1), ``divergence <= 1``, negative epochs or a
            ``max_time`` that is not positive.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.LRFinder
              init_args:
                min_lr: 1.0e-6
                max_lr: 1.0
                num_steps: 100
                method: robust
                max_time: 120      # seconds; long documents get a shorter sweep
    """

    def __init__(
        self,
        min_lr: float = 1e-7,
        max_lr: float = 10.0,
        num_steps: int = 100,
        mode: str = "exponential",
        method: str = "robust",
        beta: float = 0.98,
        divergence: float = 4.0,
        val_batches: int = 0,
        epochs: Optional[list[int]] = None,
        before_fit: bool = True,
        unreliable: str = "keep",
        max_time: Optional[float] = None,
    ) -> None:
        if not 0 < min_lr < max_lr:
            raise ValueError(f"need 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}.")
        if mode not in SWEEPS:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(SWEEPS)}.")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}.")
        if num_steps < MIN_STEPS:
            raise ValueError(f"num_steps={num_steps} is too few for a usable curve; use at least 20 (about 100 is typical).")
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}.")
        if divergence <= 1:
            raise ValueError(f"divergence must be > 1 (4 stops at 4x the best loss), got {divergence}.")
        if val_batches < 0:
            raise ValueError(f"val_batches must be >= 0, got {val_batches}.")
        if any(epoch < 0 for epoch in epochs or []):
            raise ValueError(f"epochs must be >= 0, got {epochs}.")
        if unreliable not in ("keep", "apply"):
            raise ValueError(f"unreliable must be 'keep' or 'apply', got {unreliable!r}.")
        if max_time is not None and not max_time > 0:
            raise ValueError(f"max_time must be > 0 seconds or null (no budget), got {max_time}.")
        self.max_time = max_time
        self.min_lr, self.max_lr, self.num_steps = min_lr, max_lr, num_steps
        self.mode, self.method, self.beta, self.divergence = mode, method, beta, divergence
        self.val_batches = val_batches
        self.epochs = sorted(set(epochs or []))
        self.before_fit = before_fit
        self.unreliable = unreliable
        self.curve_suggestion: Optional[float] = None  # what the curve says, applied or not
        self.suggestion: Optional[float] = None
        self.confident = False
        self.reason = ""
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.steps_run = 0
        self.done: list[str] = []  # "fit" and/or "epoch <n>"

    @property
    def state_key(self) -> str:
        return self._generate_state_key(min_lr=self.min_lr, max_lr=self.max_lr, epochs=self.epochs)

    # ------------------------------------------------------------------ hooks
    fit_start_order = 30  # after weight and embedding initialisation (see fit_start.py)

    @override
    def fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.before_fit and "fit" not in self.done:
            self._find(trainer, pl_module, "fit")

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        tag = f"epoch {trainer.current_epoch}"
        if trainer.current_epoch in self.epochs and tag not in self.done:
            self._find(trainer, pl_module, tag)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "done": list(self.done),
            "suggestion": self.suggestion,
            "curve_suggestion": self.curve_suggestion,
            "confident": self.confident,
            "reason": self.reason,
            "lrs": list(self.lrs),
            "losses": list(self.losses),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # a resumed run already trains at the found LR (it is in the optimizer's state): no new sweep
        self.done = list(state_dict.get("done", ["fit"]))
        self.suggestion = state_dict.get("suggestion")
        self.curve_suggestion = state_dict.get("curve_suggestion", self.suggestion)
        self.confident = state_dict.get("confident", False)
        self.reason = state_dict.get("reason", "")
        self.lrs = list(state_dict.get("lrs", []))
        self.losses = list(state_dict.get("losses", []))

    # ------------------------------------------------------------------ the sweep
    def _find(self, trainer: Trainer, pl_module: LightningModule, tag: str) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        if len(trainer.optimizers) != 1:
            notice(__name__, f"LRFinder supports one optimizer, found {len(trainer.optimizers)}; skipped.")
            self.done.append(tag)
            return
        optimizer = trainer.optimizers[0]
        start_lrs = [group["lr"] for group in optimizer.param_groups]
        ratios = [lr / start_lrs[0] if start_lrs[0] else 1.0 for lr in start_lrs]
        lrs, losses = self._sweep(trainer, pl_module, optimizer, ratios)
        self.lrs, self.losses, self.steps_run = lrs, losses, len(lrs)

        suggestion: Optional[float] = None
        if trainer.is_global_zero:
            try:
                suggestion = suggest_lr(lrs, losses, self.method, self.beta, self.divergence)
                check = assess_curve(lrs, losses, self.beta, self.divergence)
            except ValueError as err:
                check = CurveCheck(False, f"no suggestion ({err})", usable=False)
        else:
            check = CurveCheck(False, "", usable=False)
        # one decision for every rank: rank zero's
        suggestion, check = trainer.strategy.broadcast((suggestion, check), src=0)
        self.confident, self.reason, self.curve_suggestion = check.confident, check.reason, suggestion
        reading = f"{self.method} reading of {len(lrs)} steps"
        applied = False
        if suggestion is None:
            line = (f"kept lr {start_lrs[0]:.3g}: the loss diverged too early to read ({check.reason}; {reading}). "
                    f"Lower min_lr (now {self.min_lr:g})")
        elif not check.usable and self.unreliable == "keep":
            line = (f"kept lr {start_lrs[0]:.3g}: nothing to read in the curve ({check.reason}; {reading}); its "
                    f"suggestion {suggestion:.3g} is not used (unreliable: apply would use it)")
        else:
            self.suggestion, applied = suggestion, True
            self._apply(trainer, pl_module, optimizer, suggestion, ratios)
            line = f"lr {suggestion:.3g} applied ({reading}, " + (
                "confident)" if check.confident else f"not confident: {check.reason})")
        self.done.append(tag)
        path = self._report(trainer, tag, start_lrs[0])
        # one line, always: a confident reading is said, the others (kept LR, doubtful reading) warned
        notice(__name__, f"LRFinder: {line}" + (f"; curve: {path}" if path else "") + ".",
               logging.INFO if applied and check.usable else logging.WARNING)

    def _sweep(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any, ratios: list[float]) -> tuple[list[float], list[float]]:
        plan = (exponential_sweep if self.mode == "exponential" else linear_sweep)(self.min_lr, self.max_lr, self.num_steps)
        # the precision plugin's state is GradScaler's scale and growth tracker under 16-mixed: the sweep's
        # overflows at high LRs would otherwise leave training a backed-off scale
        snapshot = (copy.deepcopy(pl_module.state_dict()), copy.deepcopy(optimizer.state_dict()), _collect_rng_states(),
                    copy.deepcopy(trainer.precision_plugin.state_dict()))
        modes = _ModuleMode()
        modes.capture(trainer.model)
        lrs: list[float] = []
        losses: list[float] = []
        train_batches = self._batches(trainer, "train")
        val_batches = list(self._take(self._batches(trainer, "val"), self.val_batches)) if self.val_batches else []
        smoothed_best, average = math.inf, 0.0
        rank_zero_info(f"LRFinder: sweeping the LR from {self.min_lr:g} to {self.max_lr:g} over at most {len(plan)} "
                       "training steps; the weights are restored afterwards.")
        progress = _sweep_bar(trainer, len(plan))
        # a private instance: its progress counters are its own, so the trainer's global_step stays at 0
        automatic = _AutomaticOptimization(trainer)
        clock: list[float] = []
        try:
            with _no_logging(pl_module), _callbacks_muted(trainer):
                step = -1
                while step + 1 < len(plan):
                    step += 1
                    lr = plan[step]
                    clock.append(time.perf_counter())
                    if step == _TIMED_STEPS and self.max_time is not None:
                        plan = self._within_budget(trainer, plan, step, (clock[-1] - clock[1]) / (step - 1))
                        progress.reset(total=len(plan))
                        progress.update(step)
                    progress.update(1)
                    trainer.model.train()
                    for group, ratio in zip(optimizer.param_groups, ratios):
                        group["lr"] = lr * ratio
                    loss = self._training_step(trainer, automatic, optimizer, train_batches, step)
                    stop = loss is None or not math.isfinite(loss)
                    if not stop:
                        value = loss if not val_batches else self._val_loss(trainer, pl_module, val_batches)
                        lrs.append(lr)
                        losses.append(value)
                        # smooth() and divergence_index(), one point at a time, to stop the sweep as it diverges
                        average = self.beta * average + (1 - self.beta) * value
                        smoothed = average / (1 - self.beta ** len(losses))
                        smoothed_best = min(smoothed_best, smoothed)
                        stop = not math.isfinite(smoothed) or (step >= 5 and smoothed > self.divergence * smoothed_best)
                    # every rank stops at the same step: under DDP a rank that left the loop would leave the
                    # others waiting in the next step's gradient all-reduce. SIGTERM (preemption) stops it too
                    if trainer.strategy.reduce_boolean_decision(stop or trainer.received_sigterm, all=False):
                        break
        finally:
            progress.close()
            pl_module.load_state_dict(snapshot[0])
            optimizer.load_state_dict(snapshot[1])
            _set_rng_states(snapshot[2])
            trainer.precision_plugin.load_state_dict(snapshot[3])
            optimizer.zero_grad()
            for module in pl_module.modules():
                if isinstance(module, Metric):
                    module.reset()
            modes.restore(trainer.model)
        if trainer.strategy.reduce_boolean_decision(trainer.received_sigterm, all=False):
            raise SIGTERMException()  # end the run now, as Lightning's loops do, not after the sweep and a step
        return lrs, losses

    def _within_budget(self, trainer: Trainer, plan: list[float], step: int, seconds: float) -> list[float]:
        """``plan``, its steps from ``step`` on re-planned to fit ``max_time`` at ``seconds`` per step (rank zero's)."""
        assert self.max_time is not None
        steps = max(MIN_STEPS, int(self.max_time / seconds)) if seconds > 0 else len(plan)
        steps = trainer.strategy.broadcast(steps, src=0)
        if steps >= len(plan):
            return plan
        rest = (exponential_sweep if self.mode == "exponential" else linear_sweep)(plan[step], self.max_lr, steps - step)
        notice(__name__, f"LRFinder: a sweep step takes {seconds:.2g} s, so {len(plan)} steps would take "
                         f"{len(plan) * seconds / 60:.1f} min (max_time {self.max_time:g} s): sweeping over {steps} "
                         f"steps instead.", logging.INFO)
        return plan[:step] + rest

    def _training_step(self, trainer: Trainer, automatic: _AutomaticOptimization, optimizer: Any,
                       batches: Iterator[Any], step: int) -> Optional[float]:
        """One sweep step: one optimizer step over ``accumulate_grad_batches`` micro-batches, run by Lightning.

        The body of ``_AutomaticOptimization.run`` (lightning/pytorch/loops/optimization/automatic.py), with
        "is this the last micro-batch" decided here instead of by the fit loop's batch counters (which the
        sweep must not advance). Lightning's closure does the rest: ``strategy.training_step`` (the precision
        plugin's autocast, the DDP-wrapped forward), zero_grad on the first micro-batch, the loss divided by
        ``accumulate_grad_batches``, ``strategy.backward`` (GradScaler, the backward hooks); the module's
        ``optimizer_step`` then runs the precision plugin's step (unscale, ``configure_gradient_clipping`` with
        the trainer's ``gradient_clip_val``, ``scaler.step``/``update``). Non-final micro-batches run without
        the DDP gradient all-reduce (``_block_parallel_sync_behavior``), as in training.

        Returns the loss of the step, the sum of the micro-batches' divided losses (their mean, as Lightning
        reports it), or None when the ``training_step`` returned None.
        """
        accumulate = trainer.accumulate_grad_batches
        total: Optional[torch.Tensor] = None
        for micro in range(accumulate):
            batch_idx = step * accumulate + micro  # zero_grad runs where batch_idx % accumulate == 0
            batch = self._to_device(trainer, next(batches))
            kwargs = trainer.fit_loop.epoch_loop._build_kwargs(OrderedDict(), batch, batch_idx)
            closure = automatic._make_closure(kwargs, optimizer, batch_idx)
            if micro < accumulate - 1 and not trainer.strategy.handles_gradient_accumulation:
                with _block_parallel_sync_behavior(trainer.strategy, block=True):
                    closure()
            else:
                automatic._optimizer_step(batch_idx, closure)
            result = closure.consume_result()
            if result.loss is None:
                return None
            total = result.loss if total is None else total + result.loss
        return None if total is None else float(total)

    def _val_loss(self, trainer: Trainer, pl_module: LightningModule, batches: list[Any]) -> float:
        trainer.model.eval()
        # the training_step's loss on held-out batches, under the precision plugin's evaluation context
        # (autocast under *-mixed), on the unwrapped module: no gradients, nothing for DDP to synchronise
        with torch.no_grad(), trainer.precision_plugin.val_step_context():
            values = [_loss_of(pl_module.training_step(batch, 0)) for batch in batches]
        return float(sum(v.item() for v in values if v is not None) / max(1, len(values)))

    @staticmethod
    def _batches(trainer: Trainer, split: str) -> Iterator[Any]:
        """The split's batches, cycled, from a fresh dataloader prepared as the fit loop prepares its own.

        ``_request_dataloader`` and ``_process_dataloader`` (lightning/pytorch/trainer/connectors/data_connector.py)
        are what ``FitLoop.setup_data`` and the validation loop use: under DDP every rank gets its own shard
        (a ``DistributedSampler``), as in training. Validation batches come prepared for the step
        (``_to_device``): the sweep takes a few once and reuses them; training batches are prepared in
        ``_training_step``, one micro-batch at a time.
        """
        if split == "train":
            source, stage, mode = trainer.fit_loop._data_source, RunningStage.TRAINING, "max_size_cycle"
            limit = trainer.limit_train_batches
        else:
            source, stage, mode = trainer.fit_loop.epoch_loop.val_loop._data_source, RunningStage.VALIDATING, "sequential"
            limit = trainer.limit_val_batches
        loaders = _request_dataloader(source)
        combined = loaders if isinstance(loaders, CombinedLoader) else CombinedLoader(loaders, mode)
        if trainer.overfit_batches > 0:  # the same fixed batches as training (overfit_batches sets the limits)
            _resolve_overfit_batches(combined, mode=stage)
        combined.flattened = [_process_dataloader(trainer, TrainerFn.FITTING, stage, dl) for dl in combined.flattened]
        # the fit loop's limits (limit_*_batches, overfit_batches) without its has_len_all_ranks (a collective, and
        # warnings the fit loop gives anyway); a limit of 0 (no training, or no validation) would leave the sweep
        # nothing: it then sweeps the whole loader
        limits = [_parse_num_batches(stage, sized_len(dl) or math.inf, limit) for dl in combined.flattened]
        if all(limits):
            combined.limits = limits
        prepare = split != "train"
        while True:  # cycle: a sweep may be longer than an epoch
            empty = True
            epoch = iter(combined)
            length = sized_len(combined)  # with the limits: the fit loop's max_batches, where its epoch ends
            for batch, _, _ in itertools.islice(epoch, None if length is None or math.isinf(length) else int(length)):
                empty = False
                yield LRFinder._to_device(trainer, batch) if prepare else batch
            if empty:
                raise ValueError(f"LRFinder: the {split} dataloader is empty.")

    @staticmethod
    def _take(batches: Iterator[Any], count: int) -> Iterator[Any]:
        for _ in range(count):
            yield next(batches)

    @staticmethod
    def _to_device(trainer: Trainer, batch: Any) -> Any:
        # what TrainingEpochLoop.advance does to a batch before the step
        batch = trainer.precision_plugin.convert_input(batch)
        batch = trainer.lightning_module._on_before_batch_transfer(batch, dataloader_idx=0)
        return call._call_strategy_hook(trainer, "batch_to_device", batch, dataloader_idx=0)

    @staticmethod
    def _apply(trainer: Trainer, pl_module: LightningModule, optimizer: Any, lr: float, ratios: list[float]) -> None:
        # the sweep restored group 0 to its starting LR; scaling every LR the run holds by one factor
        # puts group 0 at `lr` and keeps the groups' ratios, the schedulers' lists and `model.lr` in step
        start = optimizer.param_groups[0]["lr"]
        if start > 0:  # an LR of 0 cannot be scaled; the exact values are set below either way
            scale_learning_rates(trainer, pl_module, lr / start)
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio  # exactly, not lr / start * start
        if hasattr(pl_module, "lr"):
            pl_module.lr = lr
        if "lr" in getattr(pl_module, "hparams", {}):
            pl_module.hparams["lr"] = lr

    def _report(self, trainer: Trainer, tag: str, configured: float) -> Optional[Path]:
        """Plot the curve into the run directory and send it to W&B; the plot's path (rank zero) or None."""
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if not trainer.is_global_zero or not self.lrs:
            return None
        suggestions = {self.method: self.curve_suggestion} if self.curve_suggestion else {}
        name = "lr_finder.png" if tag == "fit" else f"lr_finder_{tag.replace(' ', '_')}.png"
        try:
            path = plot_curve(self.lrs, self.losses, suggestions, folder / name, self.beta,
                              "" if self.confident else self.reason)
        except ImportError:
            notice(__name__, "LRFinder: matplotlib is not installed, no plot saved (pip install matplotlib).")
            path = None
        key = "lr_finder" if tag == "fit" else f"lr_finder/{tag.replace(' ', '_')}"
        report_summary(trainer, {
            f"{key}/suggestion": self.curve_suggestion,
            f"{key}/applied_lr": self.suggestion if self.suggestion is not None else configured,
            f"{key}/confident": self.confident,
            f"{key}/applied": self.suggestion is not None,  # False: the configured LR was kept
            f"{key}/reason": self.reason,
            f"{key}/steps": self.steps_run,
        }, folder)
        if find_wandb_logger(trainer) is None:
            return path
        import wandb

        table = wandb.Table(
            columns=["log10_lr", "loss", "smoothed"],
            data=[[math.log10(lr), loss, s] for lr, loss, s in zip(self.lrs, self.losses, smooth(self.losses, self.beta))],
        )
        payload: dict[str, Any] = {f"{key}/curve": wandb.plot.line(table, "log10_lr", "smoothed", title=f"LR range test ({tag})")}
        if path is not None:
            payload[f"{key}/plot"] = wandb.Image(str(path))
        wandb_media(trainer, payload)
        return path
