"""The autopilot's order of work as pure functions: what to run next, given the trials so far.

Nothing here starts a run or touches Optuna: :func:`next_step` replays the finished trials through the stages
(T01 learning rate, T07/T06 batch size, T58 one knob at a time) and returns the first configuration still
needed, ``WAIT`` when every needed one is running, or ``DONE`` with the configuration kept. Any number of
workers can call it on the same study: a configuration already running or queued is never handed out twice.

A trial is named by its parameters, ``{"model.lr": 0.002, "data.batch_size": 128, "model.dropout": 0.2}``,
its ``key`` the canonical JSON of that dict; two stages asking for the same configuration share one trial.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

# trial states as the plan sees them; "failed" is a run that failed by itself (it diverged, bad arguments):
# a trial interrupted or lost with its worker is not a result, and is run again
FINISHED = ("complete", "pruned", "failed")
PENDING = ("running", "waiting")
LR = "model.lr"
BATCH_SIZE = "data.batch_size"
BASELINE = "baseline"


@dataclass(frozen=True)
class Knob:
    """One hyperparameter of stage 3 and the values the notes try for it.

    Args:
        name: shown in the report and as the W&B tag (``dropout``).
        arg: the CLI argument it sets, without ``--`` (``model.dropout``).
        default: its value in the config being tuned (read from it, not from the plan file).
        try_values: values each tried against the configuration kept so far (in parallel with several workers);
            the best of them and the current one is kept.
        ladder: values tried in order while each one improves on the best so far (``0.1`` then, if it helped,
            ``0.2``).
        instead: ladder value -> the value tried once instead when that one did not help
            (``0.2 -> 0.4 -> 0.5, else 0.3`` is ``ladder: [0.2, 0.4, 0.5]``, ``instead: {0.4: 0.3}``).
        options: named values that set several arguments at once (``sgd: [--model.optimizer=..., ...]``);
            the values of such a knob are the names.
    """

    name: str
    arg: str
    default: Any = None
    try_values: tuple[Any, ...] = ()
    ladder: tuple[Any, ...] = ()
    instead: dict[Any, Any] = field(default_factory=dict)
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def values(self) -> list[Any]:
        """Every value the knob can take, the default first (the search space of ``--sampler``)."""
        seen: list[Any] = [self.default]
        for value in (*self.try_values, *self.ladder, *self.instead.values()):
            if value not in seen:
                seen.append(value)
        return seen


@dataclass(frozen=True)
class Plan:
    """The whole order: stage 1 (one run with the LR finder), stage 2 (batch sizes, LR scaled), stage 3 (knobs).

    Args:
        batch_sizes: stage 2's ladder, tried besides the batch size stage 1 ran with.
        min_steps_per_epoch: a batch size leaving fewer training steps per epoch is not tried.
        scale_lr: ``linear`` (T06: the LR grows with the batch) or ``none``.
        knobs: stage 3, in order.
        min_improvement: how much better than the kept value a trial must be to "help".
        maximize: the monitor's direction (``val/acc``: True, ``val/loss``: False).
    """

    batch_sizes: tuple[int, ...] = (64, 128, 256)
    min_steps_per_epoch: int = 10
    scale_lr: str = "linear"
    knobs: tuple[Knob, ...] = ()
    min_improvement: float = 0.0
    maximize: bool = True


@dataclass
class Record:
    """A trial as the plan sees it. ``facts`` holds what stage 1 measured (the LR the finder chose, the batch
    size it trained with, the training examples)."""

    params: dict[str, Any]
    state: str
    value: Optional[float] = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return key_of(self.params)


@dataclass
class Decision:
    """One knob's (or stage's) outcome, for the report."""

    stage: int
    knob: str
    tried: list[tuple[Any, str]]  # (value, key of its trial)
    kept: Any
    kept_key: str


@dataclass
class Step:
    """What to do next: ``kind`` is ``run`` (``params``, with ``stage``/``knob``/``value`` for tags and the
    report), ``wait`` (needed trials are running) or ``done`` (``best``: the kept configuration's key)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    stage: int = 0
    knob: str = ""
    value: Any = None
    best: str = ""
    decisions: list[Decision] = field(default_factory=list)
    reason: str = ""


def key_of(params: dict[str, Any]) -> str:
    """The canonical name of a configuration: its parameters as sorted JSON."""
    return json.dumps(params, sort_keys=True, default=str)


class _Need(Exception):
    """Raised inside the replay: this configuration has no result yet."""

    def __init__(self, step: Step) -> None:
        self.step = step


class _Replay:
    def __init__(self, plan: Plan, records: list[Record], budget: int) -> None:
        self.plan = plan
        self.by_key: dict[str, Record] = {}
        for record in records:  # a finished trial wins over a rerun of it still queued
            known = self.by_key.get(record.key)
            if known is None or (record.state in FINISHED and known.state not in FINISHED):
                self.by_key[record.key] = record
        self.claimed = sum(1 for r in self.by_key.values() if r.state in FINISHED + PENDING)
        self.budget = budget
        self.pending = False
        self.decisions: list[Decision] = []
        self.best_key = ""

    def outcome(self, params: dict[str, Any], stage: int, knob: str, value: Any) -> Optional[Record]:
        """The finished record of ``params``; ``None`` while it runs (the replay goes on without it);
        raises ``_Need`` when nobody has started it."""
        record = self.by_key.get(key_of(params))
        if record is not None and record.state in FINISHED:
            return record
        if record is not None:
            self.pending = True
            return None
        if self.claimed >= self.budget:
            raise _Need(Step("done", reason="budget"))
        raise _Need(Step("run", params=dict(params), stage=stage, knob=knob, value=value))

    def better(self, value: Optional[float], than: Optional[float]) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if than is None:
            return True
        margin = self.plan.min_improvement
        return value > than + margin if self.plan.maximize else value < than - margin


def score(record: Optional[Record]) -> Optional[float]:
    """What a finished trial counts for: its value when complete; a pruned or failed trial never helps."""
    return record.value if record is not None and record.state == "complete" else None


def stage_two_sizes(plan: Plan, used: int, train_size: int) -> list[int]:
    """Stage 2's batch sizes: the ladder, none leaving fewer than ``min_steps_per_epoch`` steps an epoch,
    without the one stage 1 used."""
    largest = max(1, train_size // max(1, plan.min_steps_per_epoch))
    return [size for size in plan.batch_sizes if size != used and size <= largest]


def scaled_lr(plan: Plan, lr: float, used: int, size: int) -> float:
    """T06: the LR for ``size`` when ``lr`` was found at ``used`` (linear rule, Goyal et al. 2017)."""
    return float(f"{lr * size / used:.4g}") if plan.scale_lr == "linear" else lr


def next_step(plan: Plan, records: list[Record], budget: int) -> Step:
    """The first configuration the plan still needs, ``wait`` or ``done``; see the module docstring.

    ``budget`` caps the trials (finished, running and queued); once spent, the plan ends with the best so far."""
    replay = _Replay(plan, records, budget)
    try:
        _walk(replay)
    except _Need as need:
        step = need.step
        if step.kind == "done" and replay.pending:
            step = Step("wait", reason="budget spent; trials still running")
        step.decisions, step.best = replay.decisions, replay.best_key
        return step
    if replay.pending:
        return Step("wait", reason="waiting for running trials", decisions=replay.decisions, best=replay.best_key)
    return Step("done", best=replay.best_key, decisions=replay.decisions)


def _walk(replay: _Replay) -> None:
    plan = replay.plan
    # stage 1: the config as it is, with its LR finder (the project's default; also the benchmark's anchor)
    baseline = replay.outcome({}, 1, BASELINE, None)
    if baseline is None:
        raise _Need(Step("wait"))
    if baseline.state != "complete":
        raise _Need(Step("done", reason=f"the stage-1 run (the config as it is) {baseline.state}"))
    lr, used = float(baseline.facts["lr"]), int(baseline.facts["batch_size"])
    best_params: dict[str, Any] = {LR: lr, BATCH_SIZE: used}
    replay.best_key, best_value = baseline.key, baseline.value
    replay.decisions.append(Decision(1, "lr", [(lr, baseline.key)], lr, baseline.key))
    # the baseline stands for {lr, batch_size} as found: the later trials name both explicitly
    replay.by_key.setdefault(key_of(best_params), baseline)

    # stage 2: batch sizes around the one used, each at its scaled LR (T07 + T06)
    tried, kept = [(used, baseline.key)], used
    try:
        for size in stage_two_sizes(plan, used, int(baseline.facts.get("train_size", 0))):
            params = {LR: scaled_lr(plan, lr, used, size), BATCH_SIZE: size}
            tried.append((size, key_of(params)))
            result = score(replay.outcome(params, 2, "batch_size", size))
            if replay.better(result, best_value):
                best_value, kept, best_params, replay.best_key = result, size, params, key_of(params)
    finally:  # also when the stage is cut short (running trials, the budget): the report shows it so far
        replay.decisions.append(Decision(2, "batch_size", tried, kept, replay.best_key))
    if replay.pending:  # the next stage builds on this one's winner
        raise _Need(Step("wait"))

    # stage 3: one knob at a time (T58), each from the configuration kept so far
    for knob in plan.knobs:
        start = dict(best_params)
        tried, kept = [(knob.default, replay.best_key)], knob.default

        def attempt(value: Any) -> Optional[float]:
            params = {**start, knob.arg: value}
            tried.append((value, key_of(params)))
            return score(replay.outcome(params, 3, knob.name, value))

        def keep(value: Any, result: Optional[float]) -> None:
            nonlocal best_value, kept, best_params
            best_value, kept, best_params = result, value, {**start, knob.arg: value}
            replay.best_key = key_of(best_params)

        try:
            for value, result in [(v, attempt(v)) for v in knob.try_values if v != knob.default]:
                if replay.better(result, best_value):
                    keep(value, result)
            if replay.pending:
                raise _Need(Step("wait"))
            for value in knob.ladder:
                if value == kept:
                    continue
                result = attempt(value)
                if replay.pending:
                    raise _Need(Step("wait"))
                if replay.better(result, best_value):
                    keep(value, result)
                    continue
                fallback = knob.instead.get(value)
                if fallback is not None and fallback != kept:
                    result = attempt(fallback)
                    if replay.pending:
                        raise _Need(Step("wait"))
                    if replay.better(result, best_value):
                        keep(fallback, result)
                break
        finally:  # cut short or not, the knob's trials so far
            replay.decisions.append(Decision(3, knob.name, tried, kept, replay.best_key))
