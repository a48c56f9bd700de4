"""What a study found, for a person: ``report.md`` and ``report.png`` in the study folder, and a W&B summary run.

Per stage and knob: the values tried, the monitor each reached, which was kept, the pruned trials; then the
compute spent and the gain of the kept configuration over the config as it was (stage 1's run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .plan import Decision, key_of

STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


@dataclass
class Row:
    """One trial as the report shows it."""

    number: int
    stage: int
    knob: str
    value: Any
    state: str
    monitor: Optional[float]
    epochs: Optional[int]
    seconds: Optional[float]
    test: dict[str, float]
    command: str
    pruned_at: Optional[int]
    curve: dict[int, float]


def rows_of(trials: list[Any]) -> list[Row]:
    """Every trial that ran (lost and interrupted ones included, marked so), in the order they started."""
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state.name == "WAITING":
            continue
        attrs = trial.user_attrs
        state = STATE_NAMES.get(trial.state.name, trial.state.name.lower())
        if state == "failed" and attrs.get("failure") != "run":
            state = "lost" if attrs.get("lost") else "interrupted"
        rows.append(Row(trial.number, int(attrs.get("stage", 0)), str(attrs.get("knob", "")), attrs.get("value"),
                        state, trial.value if trial.state.name == "COMPLETE" else None, attrs.get("epochs"),
                        attrs.get("seconds"), dict(attrs.get("test") or {}), str(attrs.get("command", "")),
                        attrs.get("pruned_at_epoch"), {int(k): float(v) for k, v in trial.intermediate_values.items()}))
    return rows


def trial_for_key(trials: list[Any], key: str) -> Optional[Any]:
    """The finished trial of a configuration (the stage-1 run stands for its own LR and batch size)."""
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED") and "params" in t.user_attrs]
    for trial in sorted(finished, key=lambda t: t.number):
        if key_of(trial.user_attrs["params"]) == key:
            return trial
    baseline = next((t for t in finished if t.user_attrs["params"] == {}), None)
    facts = baseline.user_attrs.get("facts") if baseline is not None else None
    if facts and key == key_of({"model.lr": float(facts["lr"]), "data.batch_size": int(facts["batch_size"])}):
        return baseline
    return None


def _fmt(value: Optional[float]) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _shown(value: Any) -> str:
    return "config's" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


def study_seconds(trials: list[Any]) -> float:
    """Wall time from the first trial's start to the last one's end."""
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def markdown(name: str, setup: dict[str, Any], trials: list[Any], decisions: list[Decision],
             best: Optional[Any], baseline: Optional[Any], tuned: Optional[Path], figure: Optional[Path],
             reason: str = "") -> str:
    """The report as Markdown."""
    rows = rows_of(trials)
    monitor = setup["monitor"]
    lines = [f"# Tuning report: {name}", "",
             f"{setup['mode']} over `{' '.join(setup['fit_args'])}`; monitor {monitor} "
             f"({'higher' if setup['maximize'] else 'lower'} is better); budget {setup['budget']} trials.", ""]
    preflight = setup.get("preflight_result")
    if preflight:
        lines += [f"Stage 0 (pre-flight checks and the overfit test, T51): {preflight}.", ""]
    if decisions:
        by_key = {}
        for decision in decisions:
            lines += [f"## Stage {decision.stage}: {decision.knob}", "",
                      f"| {decision.knob} | trial | {monitor} | epochs | state | kept |", "|---|---|---|---|---|---|"]
            for value, key in decision.tried:
                trial = trial_for_key(trials, key)
                by_key[key] = trial
                row = next((r for r in rows if trial is not None and r.number == trial.number), None)
                lines.append(f"| {_shown(value)} | {('#%d' % row.number) if row else '—'} | "
                             f"{_fmt(row.monitor) if row else '—'} | {row.epochs if row else '—'} | "
                             f"{(row.state + (f' (epoch {row.pruned_at})' if row.pruned_at is not None else '')) if row else 'not run'} | "
                             f"{'**kept**' if value == decision.kept else ''} |")
            lines.append("")
    else:
        lines += ["## Trials", "", f"| trial | parameters | {monitor} | epochs | state |", "|---|---|---|---|---|"]
        for row, trial in zip(rows, sorted([t for t in trials if t.state.name != "WAITING"], key=lambda t: t.number)):
            params = ", ".join(f"{k.split('.')[-1]}={_shown(v)}" for k, v in trial.user_attrs.get("params", {}).items())
            lines.append(f"| #{row.number} | {params or 'the config as it is'} | {_fmt(row.monitor)} | {row.epochs} | "
                         f"{row.state} |")
        lines.append("")
    if reason == "budget":
        lines += [f"The budget ({setup['budget']} trials) ended the plan; a larger --trials goes on from here.", ""]
    pruned = [r for r in rows if r.state == "pruned"]
    lost = [r for r in rows if r.state in ("lost", "interrupted")]
    epochs = sum(int(r.epochs or 0) for r in rows)
    seconds = sum(float(r.seconds or 0) for r in rows)
    lines += ["## Result", "",
              f"- trials: {len(rows)} run ({len(pruned)} pruned, {sum(r.state == 'failed' for r in rows)} failed, "
              f"{len(lost)} lost or interrupted and run again)",
              f"- compute: {epochs} epochs, {seconds / 60:.1f} trial-minutes; study wall time "
              f"{study_seconds(trials) / 60:.1f} min"]
    if best is not None:
        params = best.user_attrs.get("params", {})
        lines.append(f"- kept: trial #{best.number} ({', '.join(f'{k}={_shown(v)}' for k, v in params.items()) or 'the config as it is'}): "
                     f"{monitor} {_fmt(best.value)}")
        test = best.user_attrs.get("test") or {}
        if baseline is not None and baseline.number == best.number:
            lines.append("- nothing tried beat the config as it was: it is kept")
        elif baseline is not None and baseline.value is not None:
            gain = (best.value - baseline.value) * (1 if setup["maximize"] else -1)
            lines.append(f"- gain over the config as it was (trial #{baseline.number}): {monitor} "
                         f"{_fmt(baseline.value)} -> {_fmt(best.value)} ({'better' if gain > 0 else 'no better'} by "
                         f"{abs(gain):.4f})")
            base_test = baseline.user_attrs.get("test") or {}
            for metric in sorted(set(test) & set(base_test)):
                if metric.endswith(("acc", "f1", "loss")):
                    lines.append(f"- {metric}: {base_test[metric]:.4f} -> {test[metric]:.4f} (selected on validation only)")
    if tuned is not None:
        lines += ["", f"Reproduce the kept trial: `{setup['package']} fit --config {tuned}`"]
    if figure is not None:
        lines += ["", f"![the values tried per knob]({figure.name})"]
    return "\n".join(lines) + "\n"


def figure(path: Path, setup: dict[str, Any], trials: list[Any], decisions: list[Decision]) -> Path:
    """One small plot per knob (autopilot) or the monitor per trial and per parameter (samplers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {r.number: r for r in rows_of(trials)}
    panels = [d for d in decisions if d.stage >= 2] if decisions else None
    count = len(panels) if panels else 1 + len(setup["space"])
    columns = min(4, max(1, count))
    lines = math.ceil(count / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 2.6 * lines), squeeze=False)
    flat = [ax for line in axes for ax in line]
    monitor = setup["monitor"]
    if panels:
        for ax, decision in zip(flat, panels):
            for i, (value, key) in enumerate(decision.tried):
                trial = trial_for_key(trials, key)
                row = rows.get(trial.number) if trial is not None else None
                if row is None:
                    continue
                if row.state == "pruned":
                    y = (max if setup["maximize"] else min)(row.curve.values()) if row.curve else None
                    if y is not None:
                        ax.scatter([i], [y], marker="x", color="grey", label="pruned")
                elif row.monitor is not None:
                    ax.scatter([i], [row.monitor], s=60 if value == decision.kept else 30,
                               marker="*" if value == decision.kept else "o",
                               color="tab:orange" if value == decision.kept else "tab:blue")
            ax.set_xticks(range(len(decision.tried)), [_shown(v) for v, _ in decision.tried], rotation=30, fontsize=7)
            ax.set_title(f"stage {decision.stage}: {decision.knob}", fontsize=9)
            ax.set_ylabel(monitor, fontsize=8)
    else:
        ordered = sorted(rows.values(), key=lambda r: r.number)
        done = [(r.number, r.monitor) for r in ordered if r.monitor is not None]
        ax = flat[0]
        if done:
            ax.scatter([n for n, _ in done], [v for _, v in done], s=15)
            best, line = None, []
            for _, v in done:
                best = v if best is None or (v > best if setup["maximize"] else v < best) else best
                line.append(best)
            ax.step([n for n, _ in done], line, where="post", color="tab:orange")
        ax.set_title("monitor per trial (best so far)", fontsize=9)
        ax.set_xlabel("trial", fontsize=8)
        for ax, arg in zip(flat[1:], setup["space"]):
            points = [(t.user_attrs.get("params", {}).get(arg, setup["defaults"].get(arg)), t.value)
                      for t in trials if t.state.name == "COMPLETE"]
            values = setup["space"][arg]
            ax.scatter([values.index(v) if v in values else -1 for v, _ in points], [y for _, y in points], s=15)
            ax.set_xticks(range(len(values)), [_shown(v) for v in values], rotation=30, fontsize=7)
            ax.set_title(arg, fontsize=9)
    for ax in flat[count:]:
        ax.axis("off")
    fig.suptitle(f"{setup['mode']}: {monitor} of each trial (star: kept, x: pruned)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(trials: list[Any]) -> tuple[list[str], list[list[Any]]]:
    """The trials as a W&B table: columns and rows."""
    columns = ["trial", "stage", "knob", "value", "state", "monitor", "epochs", "seconds", "command"]
    data = [[r.number, r.stage, r.knob, _shown(r.value), r.state, r.monitor, r.epochs, r.seconds, r.command]
            for r in rows_of(trials)]
    return columns, data

