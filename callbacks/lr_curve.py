"""The LR range test's curve, read with pure functions of plain numbers (T01): sweeps, smoothing, the reading.

``LRFinder`` (``lr_finder.py``) runs the sweep through the real training step and calls these; they need no
Trainer, so they are unit-tested on synthetic curves. ``suggest_lr(lrs, losses, method=...)`` is the public
reading; ``assess_curve`` says whether a curve can be read at all and how confidently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .wandb_io import write_atomically

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
               beta: float = 0.98, flag: str = "", checked: Optional[dict[float, float]] = None,
               applied: Optional[float] = None) -> Path:
    """Save the raw and smoothed curve with the suggestions marked as a PNG.

    ``flag`` is the reason a reading is not confident (``assess_curve``); it goes into the title,
    so a look at the plot tells a flagged reading from a clear one. ``checked`` (a self-check's
    candidate LR -> validation loss) is drawn on a second axis, ``applied`` (the LR the run trains
    at) as a solid line.
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
    if applied is not None and applied not in suggestions.values():
        ax.axvline(applied, color="k", linewidth=1.4, label=f"applied: {applied:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    if checked:
        twin = ax.twinx()
        shown = {lr: loss for lr, loss in checked.items() if math.isfinite(loss)}
        twin.plot(list(shown), list(shown.values()), "s--", color="tab:brown", markersize=5, linewidth=1,
                  label="self-check: val loss")
        for lr in checked:
            if lr not in shown:
                twin.annotate("diverged", (lr, min(shown.values(), default=1.0)), fontsize=6, color="tab:brown")
        twin.set_ylabel("validation loss after the self-check", fontsize=7, color="tab:brown")
        twin.tick_params(labelsize=7)
        handles, labels = ax.get_legend_handles_labels()
        extra = twin.get_legend_handles_labels()
        ax.legend(handles + extra[0], labels + extra[1], fontsize=7)
    if flag:
        import textwrap

        ax.set_title("\n".join(textwrap.wrap(f"not a confident reading: {flag}", 80)), fontsize=7, color="tab:red")
    if not checked:
        ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        return write_atomically(path, lambda partial: fig.savefig(partial, dpi=110, format="png"))
    finally:
        plt.close(fig)
