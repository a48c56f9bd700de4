"""Read the train and validation loss curves and say what they mean (T54).

The practitioners' table: train falls and validation falls — still learning; train falls and
validation rises — overfitting; train falls and validation is flat — underfitting; both flat —
a bottleneck (stuck at ln C: NaN/Inf or no learning, lower the init scale and the LR); train
rises and validation rises — an architecture problem; train rises and validation falls — a data
problem. Two cases read levels, not trends: ``diverging`` (the training loss far above ln C, e.g. a
finite 1e34 from a far too high LR, or NaN/Inf) is decided at the first validation, and
``saturated`` (the training loss near 0: the model fits its training data, where a relative trend
of a near-zero loss means nothing). ``diagnose`` applies the table to plain numbers;
``LossDiagnosis`` is the Lightning adapter.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.trainer.states import TrainerFn
from typing_extensions import override

from .contract import num_classes
from .notices import notice
from .reporting import report_alert, report_summary
from .wandb_io import run_directory, write_report

#: case -> (what the curves show, what to do). The first six are T54's table.
CASES: dict[str, tuple[str, str]] = {
    "learning": ("train and validation loss both falling: still learning",
                 "keep training; nothing to change yet"),
    "overfitting": ("train loss falling or flat while validation loss rises: overfitting",
                    "regularise: more dropout (T30), weight decay, early stopping (T35), more data or a smaller model"),
    "underfitting": ("train loss falling, validation loss flat: what is learned does not carry over",
                     "train longer or add capacity/features; check that train and validation data come from the "
                     "same distribution"),
    "plateau": ("both losses flat: a bottleneck",
                "lower the LR (halve it, T04) or add capacity; if the loss never moved, raise the LR"),
    "architecture": ("train loss rising while validation does not fall: an architecture or optimisation problem",
                     "check the model and the loss function, lower the LR, check the LR schedule"),
    "data": ("train loss rising while validation loss falls: a data problem",
             "check the data: validation may be easier than training or leak training examples, or the training "
             "data is noisier (augmentation, label noise) than validation"),
    "stuck": ("both losses stay at ln C: the model predicts chance",
              "check for NaN/Inf, lower the init scale and the LR, check that the labels belong to the inputs"),
    "diverging": ("the training loss blew up (far above ln C, or NaN/Inf)",
                  "lower the learning rate (try a tenth), check that gradients are clipped (trainer.gradient_clip_val: "
                  "5, T10), use a smaller init scale; NaNGuard's max_loss_factor (T55) stops such a run at once"),
    "saturated": ("the training loss is near zero: the model fits its training data",
                  "more epochs only memorise it: keep the best epoch by the validation metric (early stopping, T35); "
                  "for a better validation score regularise (dropout T30, weight decay T32) or add data"),
}
#: (train trend, validation trend) -> case
TRENDS = {
    ("down", "down"): "learning", ("flat", "down"): "learning",
    ("down", "up"): "overfitting", ("flat", "up"): "overfitting",
    ("down", "flat"): "underfitting",
    ("flat", "flat"): "plateau",
    ("up", "up"): "architecture", ("up", "flat"): "architecture",
    ("up", "down"): "data",
}


@dataclass
class Diagnosis:
    """The case, with the relative trends it was read from (``None`` when not enough points).

    ``detail`` names the numbers behind a case decided without trends (``diverging``: the loss and
    how far above ln C it is).
    """

    case: str
    train_trend: Optional[float]
    val_trend: Optional[float]
    detail: Optional[str] = None

    @property
    def summary(self) -> str:
        return CASES[self.case][0]

    @property
    def action(self) -> str:
        return CASES[self.case][1]


def trend(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` per point, relative to their mean magnitude (0.05 = +5% per point)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a trend needs at least 2 values, got {n}.")
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    slope = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / sum((i - mean_x) ** 2 for i in range(n))
    scale = sum(abs(v) for v in values) / n
    return slope / scale if scale > 0 else 0.0


def _direction(value: float, tolerance: float) -> str:
    return "up" if value > tolerance else "down" if value < -tolerance else "flat"


def diagnose(
    train: Sequence[float],
    val: Sequence[float],
    ln_classes: Optional[float] = None,
    window: int = 3,
    flat_tolerance: float = 0.02,
    stuck_tolerance: float = 0.05,
    diverge_factor: float = 1.5,
    initial: Optional[float] = None,
    saturated_share: float = 0.05,
) -> Optional[Diagnosis]:
    """The T54 case of the loss curves so far, ``None`` while there are too few points.

    ``diverging`` needs no trend: it is decided from the latest point alone, so at the first
    validation after the loss blew up, before ``window`` validations exist.

    Args:
        train: mean training loss of each interval between validations.
        val: validation loss at each validation.
        ln_classes: ln C, the loss of a model that predicts chance; ``None`` when unknown.
        window: how many recent validations the trends are read from.
        flat_tolerance: a relative trend within ±this per validation counts as flat.
        stuck_tolerance: "stuck" when the last ``window`` losses are all within this share of ln C.
        diverge_factor: "diverging" when the latest training loss exceeds this times ln C (or times the
            initial loss when ln C is unknown), or any latest loss is NaN/Inf.
        initial: the loss of the first training step, before any update: the reference when ln C is
            unknown (T53: it is about ln C); ``None``: the first interval's mean, ``train[0]``, which
            misses a blow-up inside the first interval.
        saturated_share: "saturated" when the latest training loss is below this share of the
            reference (ln C, else the initial loss): 0.05 × ln 2 = 0.035, a mean probability of
            ~0.97 on the right class.
    """
    if not train or not val:
        return None
    latest_train, latest_val = train[-1], val[-1]
    if not (math.isfinite(latest_train) and math.isfinite(latest_val)):
        return Diagnosis("diverging", None, None, f"train loss {latest_train:.3g}, val loss {latest_val:.3g}")
    reference, unit = ((ln_classes, "ln C") if ln_classes else (initial, "the initial loss") if initial
                       else (train[0], "the first interval's loss"))
    if reference > 0 and latest_train > diverge_factor * reference:
        return Diagnosis("diverging", None, None, f"train loss {latest_train:.3g} = {latest_train / reference:.3g} x "
                                                  f"{unit}; diverging above {diverge_factor:g} x")
    if len(train) < window or len(val) < window:
        return None
    recent_train, recent_val = list(train[-window:]), list(val[-window:])
    train_trend, val_trend = trend(recent_train), trend(recent_val)
    if ln_classes and all(abs(v - ln_classes) <= stuck_tolerance * ln_classes for v in recent_train + recent_val):
        return Diagnosis("stuck", train_trend, val_trend)
    case = TRENDS[(_direction(train_trend, flat_tolerance), _direction(val_trend, flat_tolerance))]
    if reference > 0 and latest_train < saturated_share * reference:
        # a near-zero loss's relative trend is noise: only a rising validation loss (overfitting) still reads
        level = f"train loss {latest_train:.3g} = {latest_train / reference:.1%} of {unit}"
        if case == "overfitting":
            return Diagnosis(case, train_trend, val_trend, level)
        return Diagnosis("saturated", train_trend, val_trend, f"{level}; validation loss {latest_val:.3g}")
    return Diagnosis(case, train_trend, val_trend)


def final_action(case: Optional[str], monitor: str, patience: int, stopped_epoch: int, action: str) -> str:
    """The final advice for a run early stopping ended at ``stopped_epoch``, consistent with that decision.

    Example:
        >>> final_action("learning", "val/acc", 3, 7, "keep training")[:52]
        'early stopping ended the run at epoch 7: val/acc did'
    """
    ended = (f"early stopping ended the run at epoch {stopped_epoch}: {monitor} did not improve for {patience} "
             "validations")
    if case == "learning":
        return (f"{ended}, although the losses still fell: the model grows more confident without getting more "
                f"right. The best epoch's weights are kept; to train on, raise patience")
    if case is None:
        return f"{ended}, before the loss curves said anything. The best epoch's weights are kept"
    return f"{ended}, as the curves suggest ({case}). The best epoch's weights are kept; {action}"


def _loss_of(outputs: Any) -> Optional[torch.Tensor]:
    if isinstance(outputs, Mapping):
        outputs = outputs.get("loss")
    return outputs if isinstance(outputs, torch.Tensor) else None


class LossDiagnosis(Callback):
    r"""Classify the recent train/validation loss trends at each validation and say what to do (T54).

    The training loss of an interval is the mean of the step losses since the previous validation
    (read from ``training_step``'s output, so nothing needs to be logged); the validation loss is
    the ``val_loss`` metric. After each validation, :func:`diagnose` reads the last ``window``
    points into one of the nine cases of :data:`CASES`: the six of T54 (learning,
    overfitting, underfitting, plateau, architecture, data) plus ``stuck`` (at ln C),
    ``diverging`` and ``saturated`` (the training loss below ``saturated_share`` × ln C: trends of
    a near-zero loss are noise, so it is its own case). When the case changes, a console notice (a
    warning for every case but ``learning``) and a W&B alert name the case and the action;
    ``diagnosis/case`` (the case's index in :data:`CASES`), ``diagnosis/train_trend`` and
    ``diagnosis/val_trend`` are logged at each validation. When training ends, one console line
    gives the final verdict, agreeing with early stopping when it ended the run (``final_action``);
    the summary gets ``diagnosis/verdict`` and ``diagnosis/action``, and ``loss_diagnosis.json`` in
    the run directory lists every change.

    ``diverging`` waits for no trend: a training loss above ``diverge_factor`` × ln C, NaN or Inf
    is diagnosed at the first validation after it happened, and the notice names the loss and its
    multiple of ln C (a far too high LR can hold the loss at a finite 1e34 = 1.4e34 × ln 2). When
    C is unknown the reference is the loss of the first training step, before any update (T53:
    about ln C). To stop such a run at the step it blows up rather than report it, use
    ``NaNGuard``'s ``max_loss_factor`` (T55).

    Args:
        val_loss: the validation loss metric, as logged with ``self.log``.
        window: validations the trends are read from (at least 2).
        flat_tolerance: relative change per validation below which a trend counts as flat.
        stuck_tolerance: share of ln C within which losses count as stuck at chance.
        diverge_factor: a training loss above this times ln C counts as diverging, at once.
        saturated_share: a training loss below this share of ln C counts as saturated.
        num_classes: C; by default the model's ``hparams.num_classes`` or the data module's ``num_classes``.

    Raises:
        ValueError: ``window`` < 2, a tolerance that is not positive, or ``diverge_factor`` <= 1.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.LossDiagnosis   # T54
              init_args:
                window: 3              # validations per trend
                flat_tolerance: 0.02   # |change| < 2% per validation = flat
                diverge_factor: 1.5    # train loss above 1.5 x ln C (or NaN/Inf) = diverging, at the first validation
    """

    def __init__(
        self,
        val_loss: str = "val/loss",
        window: int = 3,
        flat_tolerance: float = 0.02,
        stuck_tolerance: float = 0.05,
        diverge_factor: float = 1.5,
        saturated_share: float = 0.05,
        num_classes: Optional[int] = None,
    ) -> None:
        if not (isinstance(window, int) and window >= 2):
            raise ValueError(f"window must be an integer >= 2 (validations per trend), got {window}.")
        for name, value in (("flat_tolerance", flat_tolerance), ("stuck_tolerance", stuck_tolerance)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}.")
        if not diverge_factor > 1:
            raise ValueError(f"diverge_factor must be > 1, got {diverge_factor}.")
        if not 0 < saturated_share < 1:
            raise ValueError(f"saturated_share must be in (0, 1), got {saturated_share}.")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 or None (read from the model or data), got {num_classes}.")
        self.val_loss = val_loss
        self.window = window
        self.flat_tolerance = flat_tolerance
        self.stuck_tolerance = stuck_tolerance
        self.diverge_factor = diverge_factor
        self.saturated_share = saturated_share
        self.num_classes = num_classes
        self.train: list[float] = []
        self.val: list[float] = []
        self.case: Optional[str] = None
        self.changes: list[dict[str, Any]] = []
        self.initial: Optional[float] = None  # the first training step's loss: the reference when C is unknown
        self._first: Optional[torch.Tensor] = None
        self._sum: Optional[torch.Tensor] = None
        self._count = 0
        self._warned = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(val_loss=self.val_loss)

    def _ln_classes(self, trainer: Trainer, pl_module: LightningModule) -> Optional[float]:
        classes = num_classes(trainer, pl_module, self.num_classes)
        return math.log(classes) if classes and classes > 1 else None

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = _loss_of(outputs)
        if loss is None:
            return
        loss = loss.detach().float()  # summed on the device: no synchronisation per step
        if self.initial is None and self._first is None:
            self._first = loss
        self._sum = loss if self._sum is None else self._sum.to(loss.device) + loss  # restored on the CPU
        self._count += 1

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or not self._count:
            return
        value = trainer.callback_metrics.get(self.val_loss)
        if value is None:
            if not self._warned:
                self._warned = True
                available = ", ".join(sorted(trainer.callback_metrics)) or "none"
                notice(__name__, f"LossDiagnosis: the validation did not log `{self.val_loss}`, so the loss curves are "
                                 f"not diagnosed. Available metrics: {available}.")
            return
        assert self._sum is not None
        points = [self._sum / self._count, torch.as_tensor(float(value), device=self._sum.device)]
        if self._first is not None:
            points.append(self._first.to(self._sum.device))  # restored on the CPU after a resume
        # one reduction, one decision for all ranks
        train_loss, val_loss, *first = trainer.strategy.reduce(torch.stack(points), reduce_op="mean").tolist()
        if first:
            self.initial, self._first = first[0], None
        self._sum, self._count = None, 0
        self.train.append(train_loss)
        self.val.append(val_loss)
        found = diagnose(self.train, self.val, self._ln_classes(trainer, pl_module), self.window,
                         self.flat_tolerance, self.stuck_tolerance, self.diverge_factor, self.initial,
                         self.saturated_share)
        if found is None:
            return
        pl_module.log("diagnosis/case", float(list(CASES).index(found.case)), on_step=False, on_epoch=True)
        for name in ("train_trend", "val_trend"):
            if getattr(found, name) is not None:
                pl_module.log(f"diagnosis/{name}", float(getattr(found, name)), on_step=False, on_epoch=True)
        if found.case != self.case:
            self.case = found.case
            self._announce(trainer, found)

    def _announce(self, trainer: Trainer, found: Diagnosis) -> None:
        trends = "" if found.train_trend is None else (
            f" (train {found.train_trend:+.1%}, val {found.val_trend:+.1%} per validation)")
        detail = f" ({found.detail})" if found.detail else ""
        text = (f"epoch {trainer.current_epoch}, step {trainer.global_step}: {found.summary}{detail}{trends}. "
                f"Action: {found.action}.")
        self.changes.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "case": found.case,
                             "text": text})
        notice(__name__, f"LossDiagnosis: {found.case}: {text}",
               logging.INFO if found.case == "learning" else logging.WARNING)
        level = "INFO" if found.case == "learning" else "ERROR" if found.case == "diverging" else "WARN"
        report_alert(trainer, f"Loss diagnosis: {found.case}", text, level)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:  # a smoke test: nothing written
            return
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if not trainer.is_global_zero:
            return
        verdict = self.case or "undecided"
        action = CASES[self.case][1] if self.case else f"fewer than {self.window} validations: no diagnosis"
        stopped = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping) and c.stopped_epoch), None)
        if stopped is not None:  # the verdict must not say "keep training" about a run early stopping just ended
            action = final_action(self.case, stopped.monitor, stopped.patience, stopped.stopped_epoch, action)
        notice(__name__, f"LossDiagnosis: final verdict: {verdict}. {action}.", logging.INFO)
        write_report(trainer, folder, "loss_diagnosis.json", json.dumps(
            {"verdict": verdict, "action": action, "train": self.train, "val": self.val, "changes": self.changes},
            indent=1))
        report_summary(trainer, {"diagnosis/verdict": verdict, "diagnosis/action": action,
                                 "diagnosis/changes": [f"{c['step']}: {c['case']}" for c in self.changes]}, folder)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"train": list(self.train), "val": list(self.val), "case": self.case, "changes": list(self.changes),
                "initial": self.initial, "interval": [float(self._sum) if self._sum is not None else None, self._count],
                "first": float(self._first) if self._first is not None else None}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train = list(state_dict.get("train", []))
        self.val = list(state_dict.get("val", []))
        self.case = state_dict.get("case")
        self.changes = list(state_dict.get("changes", []))
        self.initial = state_dict.get("initial")
        total, self._count = state_dict.get("interval", (None, 0))  # the steps since the last validation
        self._sum = torch.tensor(total, dtype=torch.float32) if total is not None else None
        first = state_dict.get("first")  # the first step's loss, until the first validation uses it
        self._first = torch.tensor(first, dtype=torch.float32) if first is not None else None
