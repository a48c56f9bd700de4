"""Plots of ``lr_finder.py``'s report: the sweeps beside the grid, and every pair's gap to the grid's best."""

from __future__ import annotations

import math
from pathlib import Path


OPTIMIZER_SHORT = {"adam": "Adam", "sgd": "SGD"}


def pyplot():  # noqa: ANN201 - matplotlib.pyplot, headless
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves(report: dict, path: Path, half: str = "report") -> None:
    """One panel per (set, optimizer) of ``half``: seed 0's sweep (smoothed), each finder's pick, the grid's accuracy."""
    from callbacks.lr_curve import smooth

    plt = pyplot()
    names = [n for n, info in report["datasets"].items() if info["half"] == half]
    optimizers = report["config"]["optimizers"]
    if not names:
        return
    fig, axes = plt.subplots(len(optimizers), len(names), figsize=(3.1 * len(names), 2.9 * len(optimizers)),
                             squeeze=False)
    for col, name in enumerate(names):
        for row, optimizer in enumerate(optimizers):
            ax = axes[row][col]
            runs = [r for r in report["runs"] if r["dataset"] == name and r["optimizer"] == optimizer]
            ours = min((r for r in runs if r["variant"] == "ours"), key=lambda r: r["seed"])
            light = next((r for r in runs if r["variant"] == "lightning" and r["seed"] == ours["seed"]), None)
            smoothed = smooth(ours["losses"])
            ax.plot(ours["lrs"], smoothed, color="tab:blue", linewidth=1.4, label="sweep loss (seed 0)")
            finite = [v for v in smoothed if math.isfinite(v)]
            if finite:
                ax.set_ylim(min(finite) * 0.9, smoothed[0] * 1.5)
            ax.set_xscale("log")
            reading = next(r["lr"] for r in runs if r["variant"] == "method" and r["method"] == "robust"
                           and r["seed"] == ours["seed"])
            ax.axvline(reading, color="tab:red", linewidth=1.6, label="ours: the reading (default)")
            ax.axvline(ours["used_lr"], color="tab:blue", linestyle="--", linewidth=1.3, label="ours: check: always")
            if light and light.get("suggestion"):
                ax.axvline(light["suggestion"], color="black", linestyle="-.", linewidth=1.1, label="Lightning")
            acc = ax.twinx()
            by_lr: dict[float, list[float]] = {}
            for r in runs:
                if r["variant"] == "grid":
                    by_lr.setdefault(r["lr"], []).append(r["acc"])
            lrs = sorted(by_lr)
            acc.plot(lrs, [sum(by_lr[lr]) / len(by_lr[lr]) for lr in lrs], marker="o", markersize=3, color="tab:green",
                     linewidth=1, label="grid accuracy")
            acc.set_ylim(0, 1)
            acc.tick_params(labelsize=6)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{name}, {OPTIMIZER_SHORT[optimizer]}", fontsize=8)
            if col == 0:
                ax.set_ylabel("training loss", fontsize=7)
            if col == len(names) - 1:
                acc.set_ylabel("val accuracy", fontsize=7)
            if row == len(optimizers) - 1:
                ax.set_xlabel("learning rate", fontsize=7)
            if row == 0 and col == 0:
                handles = ax.get_legend_handles_labels()
                extra = acc.get_legend_handles_labels()
                ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=6, loc="upper left")
    fig.suptitle(f"{half.capitalize()} half: the sweep, where each finder read it, and the grid's accuracy", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gaps(rows: list[dict], path: Path, ok: float = 1.0) -> None:
    """Gap to the grid's best per (set, optimizer), ours and Lightning, design and report halves side by side."""
    plt = pyplot()
    labels = [f"{r['dataset']} {OPTIMIZER_SHORT[r['optimizer']]}" for r in rows]
    y = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(rows) + 1.2))
    clip = 30.0  # larger misses are drawn at the edge, their value written beside them

    def shown(value: float) -> float:
        return max(-clip, min(clip, value))

    ours = [r["never"]["gap"] for r in rows]
    checked = [r["always"]["gap"] for r in rows]
    light = [r["light_gap"] for r in rows]
    ax.scatter([shown(v) for v in ours], y, color="tab:red", zorder=4, s=24, label="ours: the reading (default)")
    ax.scatter([shown(v) for v in checked], y, facecolors="none", edgecolors="tab:blue", zorder=3, s=34,
               label="ours: check: always")
    ax.scatter([shown(v) for v in light if v is not None], [i for i, v in zip(y, light) if v is not None],
               color="black", marker="D", s=16, zorder=3, label="Lightning lr_find")
    for i, (a, c, b) in enumerate(zip(ours, checked, light)):
        for value, color in ((a, "tab:red"), (c, "tab:blue"), (b, "black")):
            if value is not None and abs(value) > clip:
                ax.annotate(f"{value:+.0f}", (shown(value), i), fontsize=6, color=color, xytext=(3, 2),
                            textcoords="offset points")
    ax.axvspan(-clip, ok, color="tab:green", alpha=0.08, label=f"within {ok:g} point")
    split = next((i for i, r in enumerate(rows) if r["half"] == "report"), None)
    if split:
        ax.axhline(split - 0.5, color="0.5", linewidth=0.8)
        ax.text(clip, split - 0.4, "report half ↓", fontsize=7, ha="right", va="top", color="0.4")
        ax.text(clip, split - 0.6, "design half ↑", fontsize=7, ha="right", va="bottom", color="0.4")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-5, clip + 4)
    ax.set_xlabel("gap to the 8-LR grid's best (accuracy points; lower is better)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
