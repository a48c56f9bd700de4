"""Plot helpers shared by the benchmarks: every series visible in its plot and in the legend.

Two variants that did the same thing (a trick that never engaged) draw the same curve; drawn
plainly, the second hides the first and its legend entry points at nothing. ``curves`` gives
each series its own colour (no two reds, black kept for the anchor), draws a repeated curve
with markers over a dashed line and names the curve it repeats in the legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# tab10 without red and grey, then tab20's darker shades; red and black are kept for emphasis
PALETTE = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
           "#393b79", "#637939", "#8c6d31", "#7b4173", "#3182bd"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def curves(ax: Any, series: dict[str, tuple[Sequence[float], Sequence[float]]], styles: dict[str, dict] | None = None,
           tolerance: float = 1e-9) -> None:
    """Draw ``name -> (x, y)`` on ``ax``; ``styles`` overrides a series' matplotlib keywords."""
    styles = styles or {}
    drawn: list[tuple[str, Sequence[float], Sequence[float]]] = []
    colours = iter(PALETTE * 3)
    repeats = 0
    for name, (x, y) in series.items():
        style = {"linewidth": 1.5, **styles.get(name, {})}
        if "color" not in style:
            style["color"] = next(colours)
        same = next((other for other, ox, oy in drawn if len(ox) == len(x) and len(oy) == len(y)
                     and all(abs(a - b) <= tolerance for a, b in zip(oy, y))), None)
        label = name
        if same is not None:  # visible on top of the curve it repeats, and said so
            style.update(marker=MARKERS[repeats % len(MARKERS)], markersize=6, linestyle="--", linewidth=1,
                         markerfacecolor="none", zorder=3)
            label = f"{name} (same curve as {same})"
            repeats += 1
        ax.plot(list(x), list(y), label=label, **style)
        drawn.append((name, x, y))


def target_line(ax: Any, value: float, what: str) -> None:
    """A dotted horizontal line at ``value`` with a legend entry saying what it is."""
    ax.axhline(value, color="0.4", linestyle=":", linewidth=1, label=f"{what} ({value:g})")
