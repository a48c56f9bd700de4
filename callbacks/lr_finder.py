"""LR range test (T01): sweep the learning rate, read a good one off the loss curve.

Smith 2017 ("Cyclical Learning Rates for Training Neural Networks", arXiv 1506.01186) and
fastai's ``lr_find``: train a few steps while the LR grows exponentially, smooth the loss, stop
when it diverges, then pick an LR where the loss still falls fast. The curve analysis is a set of
pure functions of plain numbers in ``lr_curve.py`` (``smooth``, ``suggest_lr``, ``assess_curve``);
``LRFinder`` is the Lightning adapter that runs the sweep, restores the model exactly and applies the result.

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
from contextlib import contextmanager
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
from .lr_curve import (  # the pure core (lr_curve.py); suggest_lr and assess_curve stay importable from here too
    METHODS,
    SWEEPS,
    CurveCheck,
    assess_curve,
    exponential_sweep,
    linear_sweep,
    plot_curve,
    smooth,
    suggest_lr,
)
from .lr_scaling import scale_learning_rates
from .notices import notice
from .reporting import report_summary, wandb_media
from .wandb_io import find_wandb_logger, run_directory

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


def _sweep_bar(trainer: Trainer, total: int, desc: str) -> Any:
    """A progress bar over the finder's steps on rank zero, off when the trainer shows no progress bar."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False,
                disable=not trainer.is_global_zero or trainer.progress_bar_callback is None)


def _loss_of(output: Any) -> Optional[torch.Tensor]:
    if isinstance(output, dict):
        output = output.get("loss")
    return output if isinstance(output, torch.Tensor) else None


MIN_STEPS = 20  # fewer sweep steps give no readable curve
CHECK_STEPS = (40, 200)  # a self-check candidate trains one epoch, within these bounds (unless check_steps is set)
CHECKS = ("auto", "always", "never")
CHECK_TIE = 1e-3  # a candidate replaces the reading only when its validation loss is lower by more than this share
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
            says so. The choice is made on rank zero for every rank. The self-check shares the
            budget: its runs are shortened (to at least 10 steps each) to fit ``max_time`` at the
            sweep's measured step time.
        check: the self-check. After the reading, train a short run at it and at ``check_span``
            decades either side, each from the same restored weights on the same batches, and
            apply the one with the lowest validation loss (the reading stays on a tie within
            0.1%). ``never`` (default): apply the reading as it is; ``auto``: check only when the
            curve is not confident; ``always``: check every reading. On the benchmark's design half
            (benchmarks/lr_finder.py) neither check beat the plain reading (mean gap to an 8-LR
            grid 4.4 points plain, 4.7 auto, 6.6 always); on its report half ``always`` bounded
            the worst miss (10.9 points against 24.6) but landed within a point less often (3 of
            10 pairs against 6). A curve with nothing to read keeps the configured LR whatever
            this says.
        check_span: decades between the self-check's candidates (0.5: x0.32, x1, x3.2).
        check_steps: training steps per candidate; ``null`` (default): one epoch, at least 40
            and at most 200 steps.
        check_val_batches: validation batches that score each candidate (at most).

    The outcome is always one console line: the LR applied (or kept), the reading, whether its
    curve is confident and why not, the self-check's candidates with their validation losses and
    what it kept, and where the plot is. The run summary holds the same (``lr_finder/checked``,
    ``lr_finder/check_lrs``, ``lr_finder/check_losses``, ``lr_finder/check_steps``).

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
                check: never       # always / auto: short runs at the reading and half a decade either side
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
        check: str = "never",
        check_span: float = 0.5,
        check_steps: Optional[int] = None,
        check_val_batches: int = 20,
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
        if check not in CHECKS:
            raise ValueError(f"check must be one of {', '.join(CHECKS)}, got {check!r}.")
        if not 0 < check_span <= 2:
            raise ValueError(f"check_span must be in (0, 2] decades (0.5: half a decade either side), got {check_span}.")
        if check_steps is not None and check_steps < 1:
            raise ValueError(f"check_steps must be >= 1 or null (one epoch, 40 to 200 steps), got {check_steps}.")
        if check_val_batches < 1:
            raise ValueError(f"check_val_batches must be >= 1, got {check_val_batches}.")
        self.check, self.check_span, self.check_steps, self.check_val_batches = check, check_span, check_steps, check_val_batches
        self.checked: dict[float, float] = {}  # self-check: candidate LR -> its validation loss
        self.check_steps_run = 0
        self._step_seconds: Optional[float] = None  # a sweep step's wall time, measured when max_time is set
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
            "checked": [[lr, loss] for lr, loss in self.checked.items()],
            "check_steps_run": self.check_steps_run,
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
        self.checked = {float(lr): float(loss) for lr, loss in state_dict.get("checked", [])}
        self.check_steps_run = int(state_dict.get("check_steps_run", 0))

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
        confidence = "confident" if check.confident else f"not confident: {check.reason}"
        applied = False
        readable = suggestion is not None and (check.usable or self.unreliable == "apply")
        self.checked, self.check_steps_run = {}, 0
        if readable and (self.check == "always" or (self.check == "auto" and not check.confident)):
            # the self-check: a short run at the reading and half a decade either side, from the same weights and
            # batches; the lowest validation loss wins. A curve with nothing to read keeps the configured LR
            candidates = [suggestion * 10 ** -self.check_span, suggestion, suggestion * 10 ** self.check_span]
            self.checked = self._check(trainer, pl_module, optimizer, ratios, candidates)
        if self.checked:
            chosen = min(self.checked, key=self.checked.__getitem__)
            if self.checked[candidates[1]] <= self.checked[chosen] * (1 + CHECK_TIE):
                chosen = candidates[1]  # within noise of the best: the reading stays
            said = ", ".join(f"{lr:.3g}: {loss:.4g}" for lr, loss in self.checked.items())
            checked = (f"self-checked over {self.check_steps_run} steps ({self.check_steps_run // len(self.checked)} per LR), "
                       f"validation loss {said}")
            if math.isinf(self.checked[chosen]):
                line = f"kept lr {start_lrs[0]:.3g}: every self-check candidate diverged ({checked})"
            else:
                self.suggestion, applied = chosen, True
                self._apply(trainer, pl_module, optimizer, chosen, ratios)
                moved = "kept the reading" if chosen == candidates[1] else f"moved from the reading {candidates[1]:.3g}"
                line = f"lr {chosen:.3g} applied ({reading}, {confidence}; {checked}; {moved})"
        elif suggestion is None:
            line = (f"kept lr {start_lrs[0]:.3g}: the loss diverged too early to read ({check.reason}; {reading}). "
                    f"Lower min_lr (now {self.min_lr:g})")
        elif not readable:
            line = (f"kept lr {start_lrs[0]:.3g}: nothing to read in the curve ({check.reason}; {reading}); its "
                    f"suggestion {suggestion:.3g} is not used (unreliable: apply would use it)")
        else:
            self.suggestion, applied = suggestion, True
            self._apply(trainer, pl_module, optimizer, suggestion, ratios)
            line = f"lr {suggestion:.3g} applied ({reading}, {confidence})"
        self.done.append(tag)
        path = self._report(trainer, tag, start_lrs[0])
        # one line, always: a confident reading is said, the others (kept LR, doubtful reading) warned
        notice(__name__, f"LRFinder: {line}" + (f"; curve: {path}" if path else "") + ".",
               logging.INFO if applied and (check.usable or self.checked) else logging.WARNING)

    @contextmanager
    def _restored(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> Iterator[None]:
        """Run the body, then put the model, optimizer, precision plugin (GradScaler) and RNG states back exactly.

        The body's training steps run with logging and callbacks muted; SIGTERM (preemption) during the body
        ends the run right after the restore, as Lightning's loops do.
        """
        # the precision plugin's state is GradScaler's scale and growth tracker under 16-mixed: the sweep's
        # overflows at high LRs would otherwise leave training a backed-off scale
        snapshot = (copy.deepcopy(pl_module.state_dict()), copy.deepcopy(optimizer.state_dict()), _collect_rng_states(),
                    copy.deepcopy(trainer.precision_plugin.state_dict()))
        modes = _ModuleMode()
        modes.capture(trainer.model)
        try:
            with _no_logging(pl_module), _callbacks_muted(trainer):
                yield
        finally:
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

    def _sweep(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any, ratios: list[float]) -> tuple[list[float], list[float]]:
        plan = (exponential_sweep if self.mode == "exponential" else linear_sweep)(self.min_lr, self.max_lr, self.num_steps)
        lrs: list[float] = []
        losses: list[float] = []
        smoothed_best, average = math.inf, 0.0
        rank_zero_info(f"LRFinder: sweeping the LR from {self.min_lr:g} to {self.max_lr:g} over at most {len(plan)} "
                       "training steps; the weights are restored afterwards.")
        progress = _sweep_bar(trainer, len(plan), "LR sweep")
        # a private instance: its progress counters are its own, so the trainer's global_step stays at 0
        automatic = _AutomaticOptimization(trainer)
        clock: list[float] = []
        try:
            with self._restored(trainer, pl_module, optimizer):
                train_batches = self._batches(trainer, "train")
                val_batches = list(self._take(self._batches(trainer, "val"), self.val_batches)) if self.val_batches else []
                step = -1
                while step + 1 < len(plan):
                    step += 1
                    lr = plan[step]
                    clock.append(time.perf_counter())
                    if step == _TIMED_STEPS and self.max_time is not None:
                        self._step_seconds = (clock[-1] - clock[1]) / (step - 1)
                        plan = self._within_budget(trainer, plan, step, self._step_seconds)
                        progress.reset(total=len(plan))
                        progress.update(step)
                    progress.update(1)
                    trainer.model.train()
                    self._set_lr(optimizer, lr, ratios)
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
        return lrs, losses

    def _check(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any, ratios: list[float],
               candidates: list[float]) -> dict[float, float]:
        """Train ``check_steps`` steps at each candidate LR from the same weights and batches; validation loss of each.

        Every candidate starts from the restored state (weights, optimizer, RNG: the same batches in the same
        order) and is scored by the mean ``training_step`` loss over the validation batches (at most
        ``check_val_batches``), averaged across ranks; a candidate whose loss turns non-finite scores ``inf``.
        """
        steps, val_count = self._check_length(trainer), self._val_count(trainer)
        scores: dict[float, float] = {}
        progress = _sweep_bar(trainer, steps * len(candidates), "LR self-check")
        try:
            for lr in candidates:
                automatic = _AutomaticOptimization(trainer)
                with self._restored(trainer, pl_module, optimizer):
                    train_batches = self._batches(trainer, "train")
                    self._set_lr(optimizer, lr, ratios)
                    finite = True
                    for step in range(steps):
                        trainer.model.train()
                        loss = self._training_step(trainer, automatic, optimizer, train_batches, step)
                        progress.update(1)
                        finite = loss is not None and math.isfinite(loss)
                        if trainer.strategy.reduce_boolean_decision(not finite or trainer.received_sigterm, all=False):
                            progress.update(steps - 1 - step)
                            finite = False
                            break
                    value = math.inf
                    if finite:
                        batches = self._take(self._batches(trainer, "val"), val_count)
                        value = self._val_loss(trainer, pl_module, list(batches))
                    value = float(trainer.strategy.reduce(torch.tensor(value if math.isfinite(value) else 1e30),
                                                          reduce_op="mean"))
                    scores[lr] = value if value < 1e30 else math.inf
                self.check_steps_run += steps
        finally:
            progress.close()
        return scores

    def _check_length(self, trainer: Trainer) -> int:
        """Steps per candidate: ``check_steps``, or one epoch of optimizer steps kept within ``CHECK_STEPS``.

        Under ``max_time`` the three runs fit the budget at the sweep's step time (at least 10 steps each),
        decided on rank zero.
        """
        if self.check_steps is not None:
            return self.check_steps
        batches = self._epoch_length(trainer, "train")
        epoch = CHECK_STEPS[1] if math.isinf(batches) else int(batches) // trainer.accumulate_grad_batches
        steps = min(max(epoch, CHECK_STEPS[0]), CHECK_STEPS[1])
        if self.max_time is not None and self._step_seconds:
            steps = min(steps, max(10, int(self.max_time / (3 * self._step_seconds))))
        return int(trainer.strategy.broadcast(steps, src=0))

    def _val_count(self, trainer: Trainer) -> int:
        batches = self._epoch_length(trainer, "val")
        return self.check_val_batches if math.isinf(batches) or batches <= 0 else int(min(batches, self.check_val_batches))

    @staticmethod
    def _epoch_length(trainer: Trainer, split: str) -> float:
        """Batches in one pass over the split (``inf``: unsized), without iterating it (no RNG drawn)."""
        combined = LRFinder._loader(trainer, split)
        lengths = combined.limits or [sized_len(dl) or math.inf for dl in combined.flattened]
        return float(max(lengths) if split == "train" else sum(lengths))

    @staticmethod
    def _set_lr(optimizer: Any, lr: float, ratios: list[float]) -> None:
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio

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
    def _loader(trainer: Trainer, split: str) -> CombinedLoader:
        """The split's dataloader(s), prepared as the fit loop prepares its own, with its batch limits.

        ``_request_dataloader`` and ``_process_dataloader`` (lightning/pytorch/trainer/connectors/data_connector.py)
        are what ``FitLoop.setup_data`` and the validation loop use: under DDP every rank gets its own shard
        (a ``DistributedSampler``), as in training.
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
        return combined

    @staticmethod
    def _batches(trainer: Trainer, split: str) -> Iterator[Any]:
        """The split's batches (``_loader``), cycled: a sweep may be longer than an epoch.

        Validation batches come prepared for the step (``_to_device``); training batches are prepared in
        ``_training_step``, one micro-batch at a time.
        """
        combined = LRFinder._loader(trainer, split)
        prepare = split != "train"
        while True:
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
                              "" if self.confident else self.reason, self.checked, self.suggestion)
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
            f"{key}/checked": bool(self.checked),  # True: a self-check chose the LR (not confident, or check: always)
            f"{key}/check_steps": self.check_steps_run,
            f"{key}/check_lrs": list(self.checked),
            f"{key}/check_losses": list(self.checked.values()),
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


__all__ = ["LRFinder", "assess_curve", "suggest_lr"]
