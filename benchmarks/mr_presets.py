"""The generated project on MR: default config (wired tricks) vs the vanilla preset, side by side.

    .venv/bin/python benchmarks/mr_presets.py [--seeds 3] [--epochs 10] [--rows default vanilla ...] [--name mr_presets]

Bakes the template with default answers, then trains both configurations for each seed,
interleaved (default, vanilla, default, vanilla, ...), through the real CLI with offline W&B
runs, and reads validation accuracy per epoch back from those runs. Writes
benchmarks/results/mr_presets.md and mr_presets.png.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter
from project_runs import ROOT, fit

RESULTS = ROOT / "benchmarks" / "results"

PRESETS = {
    "default (every trick in default.yaml)": [],
    "vanilla (plain Lightning)": ["--config", "configs/presets/vanilla.yaml"],
    "default, pooling last": ["--model.pooling", "last"],
    "default, pooling max": ["--model.pooling", "max"],
}
ROWS = {"default": "default (every trick in default.yaml)", "vanilla": "vanilla (plain Lightning)",
        "default, pooling last": "default, pooling last", "default, pooling max": "default, pooling max"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=["default", "vanilla"])
    parser.add_argument("--name", default="mr_presets", help="results file stem: <name>.md and <name>.png")
    args = parser.parse_args()
    presets = {ROWS[row]: PRESETS[ROWS[row]] for row in args.rows}

    curves: dict[str, list[list[float]]] = {name: [] for name in presets}
    seconds: dict[str, list[float]] = {name: [] for name in presets}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=tmp))
        for seed in range(args.seeds):
            for name, extra in presets.items():
                run, elapsed = fit(project, extra, seed, args.epochs)
                accuracies = run.metric("val/acc")
                curves[name].append(accuracies)
                seconds[name].append(elapsed / len(accuracies))
                print(f"seed {seed} {name}: best {max(accuracies):.4f} after {len(accuracies)} epochs", flush=True)

    lines = [
        f"MR (8,530 sentences; 5,372 train / 598 val), LSTM 128, {args.seeds} seeds, at most {args.epochs} epochs.",
        "",
        "| configuration | best val acc (mean ± std) | val acc after epoch 3 | epochs run | wall s / epoch, start-up included (median) |",
        "|---|---|---|---|---|",
    ]
    for name in presets:
        best = [max(c) for c in curves[name]]
        third = [c[min(2, len(c) - 1)] for c in curves[name]]
        lines.append(
            f"| {name} | {statistics.mean(best):.3f} ± {statistics.pstdev(best):.3f} | "
            f"{statistics.mean(third):.3f} | {statistics.mean(len(c) for c in curves[name]):.1f} | "
            f"{statistics.median(seconds[name]):.1f} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (name, runs), color in zip(curves.items(), ("tab:blue", "tab:gray", "tab:orange", "tab:green")):
        for i, run in enumerate(runs):
            ax.plot(range(1, len(run) + 1), run, color=color, alpha=0.8, label=name if i == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("MR, LSTM: generated project, one line per seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=120)


if __name__ == "__main__":
    main()
