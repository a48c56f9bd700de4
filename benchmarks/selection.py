"""Model selection on a small validation split: which choice of epochs is steadiest on the test split?

    .venv/bin/python benchmarks/selection.py [--seeds 3] [--epochs 10] [--limit 4000]

MR cut to ``--limit`` sentences (stratified), so the validation split is small (4,000: 2,520 train /
280 val / 1,200 test), as a user's own data often is. Through the real CLI, per seed, interleaved:
the default config (val 10%, val/acc, ``min_delta: auto``), the same with ``min_delta: 0.001``
(the previous default), with a validation share of 20%, and selecting on val/loss. Test accuracy is
that of the checkpoint each chose (``test_after_fit``); "gap" is its best val acc minus test acc.
Writes benchmarks/results/selection.md.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter
from project_runs import ROOT, fit

RESULTS = ROOT / "benchmarks" / "results"


def val_loss_config(project: Path) -> Path:
    """default.yaml selecting on val/loss: the anchored monitor and every ``mode: max`` flipped."""
    text = (project / "configs" / "default.yaml").read_text(encoding="utf-8")
    text = text.replace("monitor: &monitor val/acc", "monitor: &monitor val/loss")
    text = re.sub(r"mode: max(\s)", r"mode: min\1", text)
    path = project / "configs" / "select_on_val_loss.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=4000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=tmp))
        loss_config = val_loss_config(project)
        variants = {
            "default: val 10%, val/acc, min_delta auto": [],
            "val/acc, min_delta 0.001": None,  # a config file: set per project below
            "val 20%": ["--data.val_fraction", "0.2"],
            "val/loss": ["--config", str(loss_config)],
        }
        for seed in range(args.seeds):
            for name, extra in variants.items():
                if extra is None:
                    extra = ["--config", str(min_delta_config(project))]
                run, _ = fit(project, [*extra, "--data.limit", str(args.limit)], seed, args.epochs)
                val = run.metric("val/acc")
                rows.append({"variant": name, "seed": seed, "test_acc": run.metric("test/acc")[-1],
                             "best_val_acc": max(val), "epochs": len(val)})
                print(json.dumps(rows[-1]), flush=True)
    lines = [f"MR cut to {args.limit:,} sentences (val 10%: 280 sentences), {args.seeds} seeds, at most {args.epochs} "
             "epochs, test accuracy of the checkpoint each selection kept.", "",
             "| selection | test acc (mean ± std) | best val acc − test acc | epochs run |", "|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        group = [r for r in rows if r["variant"] == name]
        test = [r["test_acc"] for r in group]
        gap = [r["best_val_acc"] - r["test_acc"] for r in group]
        lines.append(f"| {name} | {statistics.mean(test):.3f} ± {statistics.pstdev(test):.3f} | "
                     f"{statistics.mean(gap):+.3f} | {statistics.mean(r['epochs'] for r in group):.1f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "selection.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    (RESULTS / "selection.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def min_delta_config(project: Path) -> Path:
    """default.yaml with EarlyStopping's previous fixed ``min_delta: 0.001``."""
    text = (project / "configs" / "default.yaml").read_text(encoding="utf-8")
    text = re.sub(r"min_delta: auto", "min_delta: 0.001", text)
    path = project / "configs" / "min_delta_fixed.yaml"
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    main()
