"""LR finder + schedules on MR through the generated project, side by side in one run.

    .venv/bin/python benchmarks/mr_schedules.py [--seeds 3] [--epochs 7]

Bakes the template, then trains the default model with each LR strategy for the same number of
epochs (early stopping off, so every run gets the whole budget), seeds interleaved: a fixed LR
(the hand-tuned 0.003, with and without halving on plateaus, T04) and the LR finder (T01) feeding
a cyclical schedule (T02/T03); when the finder's curve is unreliable it keeps the configured LR,
which then bounds the cycle. Validation accuracy per epoch is read back from
the offline W&B runs. Writes benchmarks/results/mr_schedules.md and mr_schedules.png.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import yaml
from cookiecutter.main import cookiecutter
from project_runs import PACKAGE, ROOT, fit

RESULTS = ROOT / "benchmarks" / "results"
SCHEDULE_CALLBACKS = ("LRFinder", "CyclicLR", "HalveOnPlateau", "EarlyStopping")
FINDER = {"class_path": f"{PACKAGE}.callbacks.LRFinder", "init_args": {"min_lr": 1e-6, "max_lr": 1.0, "num_steps": 100}}


def cyclic(policy: str, **init_args) -> dict:
    return {"class_path": f"{PACKAGE}.callbacks.CyclicLR", "init_args": {"policy": policy, **init_args}}


VARIANTS = {
    "fixed lr 0.003": [],
    "fixed lr 0.003 + halve on plateau (T04)": [
        {"class_path": f"{PACKAGE}.callbacks.HalveOnPlateau", "init_args": {"monitor": "val/acc", "patience": 1}}
    ],
    "finder + triangular2 (T02, step 2 epochs)": [FINDER, cyclic("triangular2", step_size_epochs=2)],
    "finder + one-cycle (T02)": [FINDER, cyclic("one_cycle")],
    "finder + cosine restarts (T03, 1+2+4 epochs)": [FINDER, cyclic("cosine_restarts", t_0=1, t_mult=2)],
}


def write_variant(project: Path, name: str, extra: list[dict]) -> Path:
    config = yaml.safe_load((project / "configs" / "default.yaml").read_text())
    kept = [c for c in config["trainer"]["callbacks"] if not c["class_path"].endswith(SCHEDULE_CALLBACKS)]
    path = project / f"variant_{abs(hash(name))}.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": kept + extra}}), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=7)
    args = parser.parse_args()

    curves: dict[str, list[list[float]]] = {name: [] for name in VARIANTS}
    found: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=tmp))
        files = {name: write_variant(project, name, extra) for name, extra in VARIANTS.items()}
        for seed in range(args.seeds):
            for name in VARIANTS:
                run, elapsed = fit(project, ["--config", str(files[name])], seed, args.epochs)
                accuracies, summary = run.metric("val/acc"), run.summary
                curves[name].append(accuracies)
                if "lr_finder/applied_lr" in summary:
                    found[name].append(summary["lr_finder/applied_lr"])
                print(f"seed {seed} | {name}: best {max(accuracies):.4f} final {accuracies[-1]:.4f} "
                      f"({elapsed:.0f} s)", flush=True)

    lines = [
        f"MR, LSTM 128 (default config), Adam, {args.epochs} epochs, early stopping off, {args.seeds} seeds.",
        "",
        "| LR strategy | LR used, or cycle max (median) | best val acc (mean ± std) | final val acc (mean) |",
        "|---|---|---|---|",
    ]
    for name in VARIANTS:
        best = [max(c) for c in curves[name]]
        final = [c[-1] for c in curves[name]]
        lr = f"{statistics.median(found[name]):.2g}" if found[name] else "0.003"
        lines.append(f"| {name} | {lr} | {statistics.mean(best):.3f} ± {statistics.pstdev(best):.3f} | "
                     f"{statistics.mean(final):.3f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mr_schedules.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plots import curves as draw_curves

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = range(1, args.epochs + 1)
    draw_curves(ax, {name: (epochs, [statistics.mean(run[e - 1] for run in runs) for e in epochs])
                     for name, runs in curves.items()})
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation accuracy (mean of {args.seeds} seeds)")
    ax.set_title("MR, LSTM: LR strategies at the same budget")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "mr_schedules.png", dpi=120)


if __name__ == "__main__":
    main()
