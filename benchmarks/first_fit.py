"""The first fit on MR: word-vector settings (T23) against accuracy and time to the first training step.

    .venv/bin/python benchmarks/first_fit.py [--seeds 3] [--epochs 10]          # accuracy frontier
    .venv/bin/python benchmarks/first_fit.py --only "5 epochs" "4 epochs"       # a subset, side by side

Bakes the template with the default answers and trains its ``configs/default.yaml`` through the
real CLI (W&B offline), changing only ``Word2VecInit``'s settings (and, for one variant, the
unlabelled corpus). Each variant gets its own empty vector cache, so its first run trains the
vectors and the later seeds load them (the vectors do not depend on the training seed). Seeds
are interleaved (seed 0: every variant, seed 1: every variant, ...).

Reported per variant: best validation accuracy (the number the MR presets table quotes), test
accuracy of the best checkpoint (``test_after_fit``), word2vec training seconds (its own
``word2vec.json``) and the time from the command's start to the first training step (start-up,
corpus, vectors, LR sweep and pre-flight checks), read from a clock callback
(``benchmarks/first_step.py``).

Writes benchmarks/results/first_fit.md, first_fit.json and first_fit.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from cookiecutter.main import cookiecutter
from project_runs import ROOT, fit

RESULTS = ROOT / "benchmarks" / "results"
BENCH = Path(__file__).resolve().parent

PREVIOUS = "skip-gram, 10 epochs, every corpus word (previous default)"
# name -> (Word2VecInit init_args to change, data.unlabelled or None to keep `auto`)
VARIANTS: dict[str, tuple[dict[str, Any], Any]] = {
    PREVIOUS: ({"algorithm": "skipgram", "epochs": 10, "sample": 1e-3, "vocabulary_only": False}, None),
    "skip-gram, 10 epochs, vocabulary words only": ({"algorithm": "skipgram", "epochs": 10, "sample": 1e-3}, None),
    "skip-gram, 5 epochs, vocabulary only, sample 1e-4": ({"algorithm": "skipgram", "epochs": 5, "sample": 1e-4}, None),
    "skip-gram, 4 epochs, vocabulary only, sample 1e-4": ({"algorithm": "skipgram", "epochs": 4, "sample": 1e-4}, None),
    "skip-gram, 3 epochs, vocabulary only, sample 1e-4": ({"algorithm": "skipgram", "epochs": 3, "sample": 1e-4}, None),
    "CBOW, 10 epochs, vocabulary only, sample 1e-4": ({"algorithm": "cbow", "epochs": 10, "sample": 1e-4}, None),
    "CBOW, 5 epochs, vocabulary only, sample 1e-3": ({"algorithm": "cbow", "epochs": 5, "sample": 1e-3}, None),
    "MR-train only (no IMDB), skip-gram 10 epochs": ({"algorithm": "skipgram", "epochs": 10, "sample": 1e-3}, "null"),
}


def variant_config(project: Path, index: int, settings: dict[str, Any], unlabelled: Any, cache: Path) -> list[str]:
    """A config file that replaces default.yaml's callback list with one whose Word2VecInit has ``settings``."""
    config = yaml.safe_load((project / "configs" / "default.yaml").read_text(encoding="utf-8"))
    callbacks = config["trainer"]["callbacks"]
    for callback in callbacks:
        if callback["class_path"].endswith(".Word2VecInit"):
            callback["init_args"] = {**callback.get("init_args", {}), **settings, "cache_dir": str(cache)}
    override: dict[str, Any] = {"trainer": {"callbacks": callbacks}}
    if unlabelled is not None:
        override["data"] = {"unlabelled": None if unlabelled == "null" else unlabelled}
    path = project / "configs" / f"bench_{index}.yaml"
    path.write_text(yaml.safe_dump(override, sort_keys=False), encoding="utf-8")
    return ["--config", str(path.relative_to(project)), "--trainer.callbacks+=first_step.FirstStepClock"]


def one_run(project: Path, extra: list[str], seed: int, epochs: int, clock: Path) -> dict[str, Any]:
    clock.unlink(missing_ok=True)
    started = time.time()
    run, elapsed = fit(project, extra, seed, epochs,
                       env={"PYTHONPATH": f"{project / 'src'}:{BENCH}", "FIRST_STEP_FILE": str(clock)})
    folder = max((project / "runs" / "sentiment-classifier").iterdir(), key=lambda p: p.stat().st_mtime)
    report = json.loads((folder / "word2vec.json").read_text())
    test = run.metric("test/acc")
    return {
        "seed": seed, "val": max(run.metric("val/acc")), "test": test[-1] if test else None,
        "first_step": float(clock.read_text()) - started, "wall": elapsed, "cached": report.get("cached"),
        "w2v_seconds": report.get("train_seconds"), "epochs_run": len(run.metric("val/acc")),
    }


def frontier(args: argparse.Namespace) -> None:
    chosen = {name: v for name, v in VARIANTS.items() if not args.only or any(part in name for part in args.only)}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=tmp))
        extras = {name: variant_config(project, i, s, u, Path(tmp) / f"cache-{i}")
                  for i, (name, (s, u)) in enumerate(chosen.items())}
        for seed in range(args.seeds):
            for name in chosen:
                row = one_run(project, extras[name], seed, args.epochs, Path(tmp) / "clock")
                results[name].append(row)
                print(f"seed {seed} {name}: {row}", flush=True)
    stem = "first_fit" if not args.only else "first_fit_" + "_".join(part.replace(" ", "") for part in args.only)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    lines = [
        f"MR, the default config with only Word2VecInit's settings changed, {args.seeds} seeds, at most {args.epochs} "
        "epochs; word2vec on all cores (2), the classifier on one thread. Word2vec seconds and time to the first "
        "training step are those of each variant's first (cold-cache) run, on a machine running nothing else.",
        "",
        "| word vectors | best val acc (mean ± std) | test acc (mean ± std) | word2vec s | first training step after (s) |",
        "|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        val = [r["val"] for r in rows]
        test = [r["test"] for r in rows if r["test"] is not None]
        cold = rows[0]
        lines.append(
            f"| {name} | {statistics.mean(val):.3f} ± {statistics.pstdev(val):.3f} | "
            f"{statistics.mean(test):.3f} ± {statistics.pstdev(test):.3f} | {cold['w2v_seconds'] or 0:.0f} | "
            f"{cold['first_step']:.0f} |"
        )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    if not args.only:
        plot(results)


def plot(results: dict[str, list[dict[str, Any]]]) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    markers = "osD^v<>"
    for (name, rows), marker in zip(results.items(), markers):
        val = [r["val"] for r in rows]
        ax.errorbar(rows[0]["first_step"], statistics.mean(val), yerr=statistics.pstdev(val), marker=marker,
                    linestyle="none", capsize=3, label=name)
    ax.axvline(60, color="0.5", linestyle=":", linewidth=1, label="60 s to the first step (target)")
    ax.set_xscale("log")
    ax.set_xticks([15, 30, 60, 120, 240])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("seconds from the command to the first training step (first fit, cold cache)")
    ax.set_ylabel("best validation accuracy (mean ± std)")
    ax.set_title("MR: word vectors, accuracy against time to train", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "first_fit.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--replot", action="store_true", help="only redraw first_fit.png from first_fit.json")
    parser.add_argument("--only", nargs="+", help="run only the variants whose names contain one of these "
                        "(e.g. '4 epochs' '5 epochs'); writes first_fit_<parts>.md/.json, side by side in one run")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.replot:
        return plot(json.loads((RESULTS / "first_fit.json").read_text(encoding="utf-8")))
    frontier(args)


if __name__ == "__main__":
    main()
