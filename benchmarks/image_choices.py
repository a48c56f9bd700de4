"""How the image task's defaults were chosen: variants of default.yaml on the digits, read on the validation split.

    .venv/bin/python benchmarks/image_choices.py --seeds 2

Reuses the project benchmarks/images.py bakes (build/images/image-classifier; run that first, or
``--bake``). Every run goes through the project's CLI (one thread, W&B offline, read back); each seed is
also the split's seed. Variants: the default (HalveOnPlateau, T04, on), the default with a constant LR
(HalveOnPlateau removed from the callbacks), ``--model.width 64`` and stronger augmentation (translate
0.15, 15 degrees, zoom 0.15). The choice is made on the best validation loss (val/acc reaches 1.0 on
the 250 validation images in most runs and cannot tell them apart); test accuracy is shown, never used.

Writes benchmarks/results/image_choices.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from images import PROJECT, RESULTS
from project_runs import bake, fit

PACKAGE = "image_classifier"


def constant_lr_config(folder: Path) -> Path:
    """default.yaml without HalveOnPlateau: the same run at a constant LR (after the LR finder's choice)."""
    config = yaml.safe_load((PROJECT / "configs" / "default.yaml").read_text(encoding="utf-8"))
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"]
                                      if not c["class_path"].endswith(".HalveOnPlateau")]
    path = folder / "constant_lr.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--bake", action="store_true", help="bake build/images/image-classifier first")
    args = parser.parse_args()
    if args.bake or not PROJECT.is_dir():
        bake("image_classification", PROJECT)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "default (HalveOnPlateau)": [],
            "constant LR": ["--config", str(constant_lr_config(Path(tmp)))],
            "width 64": ["--model.width", "64"],
            "stronger augmentation": ["--data.translate", "0.15", "--data.degrees", "15", "--data.zoom", "0.15"],
        }
        for seed in range(args.seeds):
            for name, extra in variants.items():
                run, wall = fit(PROJECT, [*extra, "--data.seed", str(seed)], seed, 100, package=PACKAGE)
                rows.append({"variant": name, "seed": seed, "best_val_loss": min(run.metric("val/loss")),
                             "best_val_acc": max(run.metric("val/acc")), "test_acc": run.metric("test/acc")[-1],
                             "epochs": len(run.metric("val/acc")), "wall_seconds": round(wall, 1)})
                print(json.dumps(rows[-1]), flush=True)
    results = {"command": " ".join([".venv/bin/python", "benchmarks/image_choices.py", *sys.argv[1:]]),
               "seeds": args.seeds, "variants": list(variants), "runs": rows,
               "total_seconds": time.perf_counter() - start}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "image_choices.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["# Image task: choosing the defaults on the digits' validation split", "",
             f"Command: `{results['command']}` ({args.seeds} seeds, each also the split's seed; "
             f"{results['total_seconds'] / 60:.0f} min). Chosen on the best validation loss; test accuracy shown, not used.",
             "", "| variant | best val loss (mean) | per seed | best val acc (mean) | test acc (mean) | epochs (mean) |",
             "|---|---|---|---|---|---|"]
    for name in variants:
        mine = [r for r in rows if r["variant"] == name]
        lines.append(f"| {name} | {statistics.mean(r['best_val_loss'] for r in mine):.4f} | "
                     + ", ".join(f"{r['best_val_loss']:.4f}" for r in mine)
                     + f" | {statistics.mean(r['best_val_acc'] for r in mine):.3f} | "
                     f"{statistics.mean(r['test_acc'] for r in mine):.3f} | {statistics.mean(r['epochs'] for r in mine):.0f} |")
    (RESULTS / "image_choices.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'image_choices'}.md, .json", flush=True)


if __name__ == "__main__":
    main()
