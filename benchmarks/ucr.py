"""Small UCR/UEA sets through the generated sequence-classification project, and epoch time vs series length.

    .venv/bin/python benchmarks/ucr.py --seeds 3 --part all
    .venv/bin/python benchmarks/ucr.py --render            # redraw the tables and plots from the JSON files

The project is baked fresh (``task=sequence_classification``) into build/ucr/sequence-classifier
and every run goes through its real CLI (``fit --config configs/default.yaml ...``, one thread,
W&B offline, read back from the offline run), as a user would type it.

accuracy: GunPoint, ItalyPowerDemand, ArrowHead (UCR) and BasicMotions (UEA, 6 channels) with
their official train/test splits (the data module carves its stratified, seeded validation split
from the training part), ``--seeds`` seeds, the variants interleaved (A B C A B C ...):

* A, the recommended default, now what default.yaml ships: ``RECOMMENDED`` (``--model.pooling max
  --model.downsample 4``: max over time, the T44 strided Conv1D front-end at stride 4), chosen on the
  best validation loss of one seed on GunPoint, ItalyPowerDemand and ArrowHead among pooling
  last/max/mean, LSTM/GRU, dropout 0.5/0.2, batch 32/16/8 and the front-end off/stride 2/stride 4
  (the test split chose nothing),
* vanilla: default.yaml + configs/presets/vanilla.yaml, nothing else (plain Lightning: the last state, no front-end),
* the default with pooling max only (front-end off) and with the front-end at stride 2,
* vanilla with A's model (``--model.pooling max --model.downsample 4``): the same model without the tricks.

Test accuracy is that of the best-validation checkpoint (``test_after_fit``). The references are
the accuracies aeon ships offline (aeon/testing/example_results_files/classification/accuracy/
InceptionTime_accuracy.csv and HC2_accuracy.csv, column 0 = the default train/test split); they
cover the UCR univariate sets only, so BasicMotions has none. Step time: training seconds per
batch from ``epoch_clock.EpochClock`` (LR sweep and validation excluded), the median over a run's
epochs after the first. Peak memory: the largest resident set of the training process tree, from
``getrusage(RUSAGE_CHILDREN)`` in a fresh forked runner per run.

length: synthetic two-class series (sines of 5 vs 7 periods, random phase, noise), 64 training
+ 16 validation + 16 test series per length (100, 1,000, 10,000 steps) in .npz files in
build/ucr/length/, default.yaml + ``--model.pooling max`` without and with the T44 front-end (stride 2 and 4),
4 epochs each; the LR finder is left out here (its sweep is a start-up cost, capped in time, not
a per-epoch one). Epoch time = the median of epochs 2-4 (training batches only).

Writes benchmarks/results/ucr.{md,json,png} and ucr_length.{md,json,png}.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from project_runs import ROOT, bake, fit, isolated

RESULTS = ROOT / "benchmarks" / "results"
HERE = Path(__file__).resolve().parent
BUILD = ROOT / "build" / "ucr"
PROJECT = BUILD / "sequence-classifier"
PACKAGE = "sequence_classifier"
SETS = ("GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions")
#: train / test series, length, channels, classes of the bundled sets (aeon's files)
SET_INFO = {"GunPoint": (50, 150, 150, 1, 2), "ItalyPowerDemand": (67, 1029, 24, 1, 2),
            "ArrowHead": (36, 175, 251, 1, 3), "BasicMotions": (40, 40, 100, 6, 4)}
#: the overrides of default.yaml recommended for small UCR/UEA sets: max over time, the T44 front-end at stride 4
POOLING = ["--model.pooling", "max"]
RECOMMENDED = [*POOLING, "--model.downsample", "4"]
DEFAULT = "default + pooling max + T44 front-end, stride 4 (recommended)"
VANILLA = "vanilla"
VARIANTS = {
    DEFAULT: RECOMMENDED,
    VANILLA: ["--config", "configs/presets/vanilla.yaml"],
    "default + pooling max, no front-end": [*POOLING, "--model.downsample", "1"],
    "default + pooling max + T44 front-end, stride 2": [*POOLING, "--model.downsample", "2"],
    "vanilla + pooling max + T44 front-end, stride 4 (the recommended model, no tricks)":
        ["--config", "configs/presets/vanilla.yaml", *RECOMMENDED],
}
REFERENCES = ("InceptionTime", "HC2")
LENGTHS = (100, 1000, 10000)
LENGTH_VARIANTS = {
    "no front-end": ["--model.downsample", "1"],
    "T44 front-end, stride 2": ["--model.downsample", "2"],
    "T44 front-end, stride 4": ["--model.downsample", "4"],
}
MACHINE = ("Machine: 2 CPU cores, every run on 1 thread (OMP_NUM_THREADS=1), possibly a busy neighbour on the other "
           "core; timings are ratios between variants measured interleaved in the same run, not absolute speeds.")


# ------------------------------------------------------------------------------------------------ helpers

def train(extra: list[str], seed: int, epochs: int) -> dict:
    """One CLI run with the epoch clock; what the benchmark keeps of its offline W&B run."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = Path(tmp) / "epochs.jsonl"
        env = {"PYTHONPATH": f"{PROJECT / 'src'}:{HERE}", "EPOCH_CLOCK_FILE": str(clock)}
        run, wall = fit(PROJECT, [*extra, "--trainer.callbacks+=epoch_clock.EpochClock"], seed, epochs, env,
                        package=PACKAGE)
        ticks = [json.loads(line) for line in clock.read_text().splitlines()] if clock.exists() else []
    later = ticks[1:] or ticks
    val_loss, val_acc, test = run.metric("val/loss"), run.metric("val/acc"), run.metric("test/acc")
    return {
        "test_acc": test[-1] if test else None,
        "best_val_loss": min(val_loss) if val_loss else None,
        "best_val_acc": max(val_acc) if val_acc else None,
        "epochs": len(ticks),
        "steps": sum(t["batches"] for t in ticks),
        "step_seconds": statistics.median(t["seconds"] / t["batches"] for t in later) if later else None,
        "epoch_seconds": statistics.median(t["seconds"] for t in later) if later else None,
        "epoch_seconds_all": [t["seconds"] for t in ticks],
        "wall_seconds": wall,
        "lr": run.summary.get("lr_finder/applied_lr"),
    }


def measured(extra: list[str], seed: int, epochs: int, tags: dict) -> dict:
    """:func:`train` in a fresh process, with its peak memory; a failed run is kept with its error."""
    try:
        row, rss = isolated(train, extra, seed, epochs)
        row = {**tags, **row, "peak_rss_mib": rss}
    except RuntimeError as error:
        row = {**tags, "error": str(error)}
    print(json.dumps(row), flush=True)
    return row


def references(sets: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Column 0 (the default split) of aeon's bundled accuracy files, per estimator and set (absent: no entry)."""
    spec = importlib.util.find_spec("aeon")
    folder = Path(spec.origin).parent / "testing" / "example_results_files" / "classification" / "accuracy"
    out: dict[str, dict[str, float]] = {}
    for name in REFERENCES:
        with (folder / f"{name}_accuracy.csv").open(newline="") as handle:
            rows = {row[0]: float(row[1]) for row in csv.reader(handle) if row and row[0] in sets}
        out[name] = rows
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


# ------------------------------------------------------------------------------------------------ accuracy

def accuracy(sets: tuple[str, ...], seeds: int, epochs: int) -> list[dict]:
    rows = []
    for seed in range(seeds):
        for dataset in sets:
            for name, extra in VARIANTS.items():
                rows.append(measured([*extra, "--data.dataset", dataset], seed, epochs,
                                     {"variant": name, "dataset": dataset, "seed": seed}))
    return rows


def accuracy_summary(results: dict) -> dict:
    """Per set and variant: test/val means, and the costs per variant relative to vanilla."""
    ok = [r for r in results["runs"] if "error" not in r and r.get("test_acc") is not None]
    table: dict[str, dict[str, dict]] = {}
    for dataset in results["sets"]:
        table[dataset] = {}
        for name in results["variants"]:
            rows = [r for r in ok if r["dataset"] == dataset and r["variant"] == name]
            if rows:
                table[dataset][name] = {
                    "test": mean_std([r["test_acc"] for r in rows]),
                    "val_loss": statistics.mean(r["best_val_loss"] for r in rows),
                    "val_acc": statistics.mean(r["best_val_acc"] for r in rows),
                    "step": statistics.median(r["step_seconds"] for r in rows),
                    "rss": statistics.median(r["peak_rss_mib"] for r in rows),
                    "epochs": statistics.median(r["epochs"] for r in rows),
                    "wall": statistics.median(r["wall_seconds"] for r in rows),
                    "n": len(rows),
                }
    costs = {}
    for name in results["variants"]:
        step_ratios = [table[d][name]["step"] / table[d][VANILLA]["step"] for d in table
                       if name in table[d] and VANILLA in table[d]]
        rss_ratios = [table[d][name]["rss"] / table[d][VANILLA]["rss"] for d in table
                      if name in table[d] and VANILLA in table[d]]
        rows = [r for r in ok if r["variant"] == name]
        if rows:
            costs[name] = {
                "step": statistics.median(r["step_seconds"] for r in rows),
                "step_ratio": statistics.median(step_ratios) if step_ratios else None,
                "step_ratios": step_ratios,
                "rss": statistics.median(r["peak_rss_mib"] for r in rows),
                "rss_ratio": statistics.median(rss_ratios) if rss_ratios else None,
                "epochs": statistics.median(r["epochs"] for r in rows),
                "wall": statistics.median(r["wall_seconds"] for r in rows),
            }
    default, reference = results["variants"][0], results["references"]["InceptionTime"]
    ahead = {d: default in table[d] and VANILLA in table[d] and table[d][default]["test"][0] > table[d][VANILLA]["test"][0]
             for d in table}
    close = {d: d in reference and default in table[d] and table[d][default]["test"][0] >= reference[d] - 0.02
             for d in table}
    margins = {d: table[d][default]["test"][0] - table[d][VANILLA]["test"][0] for d in table
               if default in table[d] and VANILLA in table[d]}
    return {"table": table, "costs": costs, "ahead": ahead, "close": close, "margins": margins,
            "failures": [r for r in results["runs"] if "error" in r]}


def render_accuracy(results: dict) -> str:
    s = accuracy_summary(results)
    table, refs, names = s["table"], results["references"], results["variants"]
    default = names[0]
    lines = [
        "# Small UCR/UEA sets: the generated sequence classifier vs InceptionTime and HC2", "",
        "```", results["command"], "```", "", MACHINE, "",
        (f"Official train/test splits; validation = a stratified, seeded {results['val_fraction']:.0%} of the training "
        f"part (the data module's own split); {results['seeds']} seeds per variant, variants interleaved; at most "
        f"{results['epochs']} epochs (early stopping in the default, none in vanilla). Test accuracy of the "
        f"best-validation checkpoint, mean ± std over seeds. References: aeon {results['aeon']} offline results, "
        "column 0 (the default split) of `aeon/testing/example_results_files/classification/accuracy/"
        "InceptionTime_accuracy.csv` and `HC2_accuracy.csv` (univariate UCR sets only: none for BasicMotions). "
        f"Total runtime {results['total_seconds'] / 60:.0f} min."), "",
        "Variants (exact overrides of configs/default.yaml):", "",
    ]
    short = {name: chr(ord("A") + i) for i, name in enumerate(names)}
    lines += [f"- **{short[name]}**: {name}; overrides `{' '.join(results['variant_args'][name]) or '(none)'}`"
              for name in names]
    lines += ["", "| set (train/test series, length, channels, classes) | "
              + " | ".join(short[n] for n in names)
              + " | InceptionTime | HC2 | A − InceptionTime |",
              "|---" * (len(names) + 4) + "|"]
    for dataset, cells in table.items():
        tr, te, length, channels, classes = SET_INFO.get(dataset, ("?",) * 5)
        row = [f"{dataset} ({tr}/{te}, {length}, {channels}, {classes})"]
        for name in names:
            row.append(f"{cells[name]['test'][0]:.3f} ± {cells[name]['test'][1]:.3f}" if name in cells else "failed")
        for ref in REFERENCES:
            row.append(f"{refs[ref][dataset]:.3f}" if dataset in refs[ref] else "n/a")
        gap = (cells[default]["test"][0] - refs["InceptionTime"][dataset]
               if default in cells and dataset in refs["InceptionTime"] else None)
        row.append(f"{gap * 100:+.1f} points" if gap is not None else "n/a")
        lines.append("| " + " | ".join(row) + " |")
    n_ahead, n_close = sum(s["ahead"].values()), sum(s["close"].values())
    need = max(1, len(table) - 1)
    lines += [
        "",
        (f"Target: A ahead of vanilla on every set: **{'met' if n_ahead == len(table) else 'not met'}** "
        f"({n_ahead} of {len(table)}: {', '.join(d for d, v in s['ahead'].items() if v) or 'none'}; margins "
        f"{', '.join(f'{d} {margin * 100:+.1f}' for d, margin in s['margins'].items())} points). "
        f"A within 2 points of InceptionTime on at least {need} of the {len(table)} sets: "
        f"**{'met' if n_close >= need else 'not met'}** ({n_close}: {', '.join(d for d, v in s['close'].items() if v) or 'none'}; "
        "BasicMotions has no reference here)."),
        "",
        "Validation (what selection may look at): best validation loss / best validation accuracy, mean over seeds.",
        "",
        "| set | " + " | ".join(f"{short[n]}" for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for dataset, cells in table.items():
        lines.append(f"| {dataset} | " + " | ".join(
            f"{cells[n]['val_loss']:.3f} / {cells[n]['val_acc']:.3f}" if n in cells else "failed" for n in names) + " |")
    lines += [
        "", ("Cost per variant (all sets): median training seconds per step (batch; LR sweep and validation "
        "excluded), its ratio to vanilla (median of the per-set ratios; batches differ in size where the "
        "batch size differs), peak RSS of the training process and its ratio to vanilla, epochs run, wall "
        "seconds per run (start-up, LR sweep, validation and test included)."), "",
        "| variant | s / step | step time vs vanilla (per set) | peak RSS MiB | RSS vs vanilla | epochs | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        c = s["costs"].get(name)
        if c is None:
            lines.append(f"| {short[name]}: {name} | failed | | | | | |")
            continue
        per_set = ", ".join(f"{r:.2f}" for r in c["step_ratios"])
        lines.append(f"| {short[name]}: {name} | {c['step'] * 1000:.1f} ms | {c['step_ratio']:.2f}× ({per_set}) | "
                     f"{c['rss']:.0f} | {c['rss_ratio']:.2f}× | {c['epochs']:.0f} | {c['wall']:.0f} |")
    lines += ["", "Per set: median ms per step / epochs run / wall s.", "",
              "| set | " + " | ".join(short[n] for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for dataset, cells in table.items():
        lines.append(f"| {dataset} | " + " | ".join(
            f"{cells[n]['step'] * 1000:.1f} / {cells[n]['epochs']:.0f} / {cells[n]['wall']:.0f}" if n in cells
            else "failed" for n in names) + " |")
    if s["failures"]:
        lines += ["", "Failed runs:", ""] + [f"- {r['variant']}, {r['dataset']}, seed {r['seed']}: "
                                             f"`{r['error'].splitlines()[-1][:300]}`" for r in s["failures"]]
    lines += ["", "![test accuracy per set](ucr.png)", ""]
    return "\n".join(lines)


def plot_accuracy(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from plots import PALETTE

    s = accuracy_summary(results)
    table, refs, names = s["table"], results["references"], results["variants"]
    sets = list(table)
    fig, ax = plt.subplots(figsize=(10, 5.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(sets))]
        means = [table[d][name]["test"][0] if name in table[d] else math.nan for d in sets]
        stds = [table[d][name]["test"][1] if name in table[d] else 0.0 for d in sets]
        ax.bar(xs, means, width * 0.95, yerr=stds, capsize=3, color=PALETTE[i], label=f"{chr(65 + i)}: {name}")
    for ref, style in zip(REFERENCES, ({"color": "black", "marker": "_", "s": 900, "linewidths": 2.5},
                                      {"color": "tab:red", "marker": "_", "s": 600, "linewidths": 1.5})):
        xs = [j for j, d in enumerate(sets) if d in refs[ref]]
        ax.scatter(xs, [refs[ref][sets[j]] for j in xs], zorder=4, label=f"{ref} (aeon results, split 0)", **style)
    ax.set_xticks(range(len(sets)), sets)
    ax.set_ylabel("test accuracy (best-validation checkpoint)")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Test accuracy, {results['seeds']} seeds (mean ± std)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ length

def synthetic(path: Path, length: int, count: int, seed: int) -> None:
    """``count`` two-class series of ``length`` steps: a sine of 5 or 7 periods, random phase, Gaussian noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    t = np.linspace(0.0, 1.0, length)
    phase = rng.uniform(0, 2 * np.pi, size=(count, 1))
    x = np.sin(2 * np.pi * (5 + 2 * labels[:, None]) * t[None, :] + phase) + 0.5 * rng.standard_normal((count, length))
    np.savez(path, X=x.astype("float32"), y=labels)


def no_finder_config(path: Path) -> None:
    """A config stacked after default.yaml: default.yaml's callbacks without the LR finder."""
    import yaml

    config = yaml.safe_load((PROJECT / "configs" / "default.yaml").read_text())
    callbacks = [c for c in config["trainer"]["callbacks"] if not c["class_path"].endswith("LRFinder")]
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}, sort_keys=False))


def length(lengths: tuple[int, ...], count: int, epochs: int) -> list[dict]:
    folder = BUILD / "length"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "no_lr_finder.yaml"
    no_finder_config(config)
    rows = []
    for steps in lengths:
        files = {}
        for part, n, seed in (("train", count, 0), ("val", count // 4, 1), ("test", count // 4, 2)):
            files[part] = folder / f"synthetic_{steps}_{part}.npz"
            synthetic(files[part], steps, n, seed)
        data = ["--data.data_path", str(files["train"]), "--data.val_path", str(files["val"]),
                "--data.test_path", str(files["test"])]
        for name, extra in LENGTH_VARIANTS.items():
            rows.append(measured([*POOLING, "--config", str(config), *extra, *data], 0, epochs,
                                 {"variant": name, "length": steps, "series": count}))
    return rows


def render_length(results: dict) -> str:
    ok = [r for r in results["runs"] if "error" not in r]
    names = list(dict.fromkeys(r["variant"] for r in results["runs"]))
    lengths = sorted({r["length"] for r in results["runs"]})
    cell = {(r["variant"], r["length"]): r for r in ok}
    lines = [
        "# Epoch time vs series length, with and without the T44 strided Conv1D front-end", "",
        "```", results["command"], "```", "", MACHINE, "",
        (f"Synthetic two-class series (sines of 5 vs 7 periods, random phase, noise) in .npz files: "
        f"{results['series']} training + {results['series'] // 4} validation + {results['series'] // 4} test series "
        f"per length. Config: default.yaml + `{' '.join(results['base'])}` + the variant's `--model.downsample`, its "
        f"callbacks without the LR finder, {results['epochs']} epochs per run; epoch time = training batches only, "
        "the median of the epochs after the first (3 values). Peak RSS of the training process. "
        f"Total runtime {results['total_seconds'] / 60:.0f} min."), "",
        "| length | " + " | ".join(f"{n}: epoch s" for n in names) + " | "
        + " | ".join(f"{n}: speed-up" for n in names[1:]) + " | " + " | ".join(f"{n}: peak RSS MiB" for n in names)
        + " |",
        "|---" * (1 + 2 * len(names) + len(names) - 1) + "|",
    ]
    for steps in lengths:
        base = cell.get((names[0], steps))
        row = [f"{steps:,}"]
        row += [f"{cell[(n, steps)]['epoch_seconds']:.2f}" if (n, steps) in cell else "failed" for n in names]
        row += [f"{base['epoch_seconds'] / cell[(n, steps)]['epoch_seconds']:.2f}×" if base and (n, steps) in cell
                else "" for n in names[1:]]
        row += [f"{cell[(n, steps)]['peak_rss_mib']:.0f}" if (n, steps) in cell else "" for n in names]
        lines.append("| " + " | ".join(row) + " |")
    slopes = []
    for n in names:
        points = [(math.log(s), math.log(cell[(n, s)]["epoch_seconds"])) for s in lengths if (n, s) in cell]
        if len(points) >= 2:
            slopes.append(f"{n}: {(points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0]):.2f}")
    lines += ["", "Log-log slope of epoch time vs length, first to last length (1 = linear): " + "; ".join(slopes) + "."]
    failures = [r for r in results["runs"] if "error" in r]
    if failures:
        lines += ["", "Failed runs:", ""] + [f"- {r['variant']}, {r['length']}: `{r['error'].splitlines()[-1][:300]}`"
                                             for r in failures]
    lines += ["", "![epoch time vs length](ucr_length.png)", ""]
    return "\n".join(lines)


def plot_length(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from plots import curves

    ok = [r for r in results["runs"] if "error" not in r]
    names = list(dict.fromkeys(r["variant"] for r in results["runs"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((left, "epoch_seconds", "seconds per epoch (training batches)"),
                           (right, "peak_rss_mib", "peak RSS of the training process (MiB)")):
        series = {}
        for n in names:
            rows = sorted((r for r in ok if r["variant"] == n), key=lambda r: r["length"])
            series[n] = ([r["length"] for r in rows], [r[key] for r in rows])
        curves(ax, {n: xy for n, xy in series.items()}, {n: {"marker": "o"} for n in series})
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("series length (steps)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{results['series']} training series, 1 thread, default + {' '.join(results['base'])} "
                 "+ the front-end's --model.downsample", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ main

def write(stem: str, results: dict, render: Callable[[dict], str], plot: Callable[[dict, Path], None]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    head = json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1)
    runs = ",\n".join("  " + json.dumps(row) for row in results["runs"])  # one run per line
    (RESULTS / f"{stem}.json").write_text(f'{head[:-2]},\n "runs": [\n{runs}\n ]\n}}\n')
    (RESULTS / f"{stem}.md").write_text(render(results))
    plot(results, RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / stem}.md, .json, .png", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--part", choices=("accuracy", "length", "all"), default="all")
    parser.add_argument("--epochs", type=int, default=200, help="max epochs of an accuracy run (default.yaml's 200)")
    parser.add_argument("--length-epochs", type=int, default=4)
    parser.add_argument("--series", type=int, default=64, help="training series per length")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--render", action="store_true", help="only redraw the tables and plots from the JSON files")
    parser.add_argument("--no-bake", action="store_true", help="reuse build/ucr/sequence-classifier as it is")
    args = parser.parse_args()
    parts = ("accuracy", "length") if args.part == "all" else (args.part,)
    if args.render:
        for part in parts:
            stem = "ucr" if part == "accuracy" else "ucr_length"
            path = RESULTS / f"{stem}.json"
            if path.exists():
                write(stem, json.loads(path.read_text()), *((render_accuracy, plot_accuracy) if part == "accuracy"
                                                            else (render_length, plot_length)))
        return
    command = " ".join([".venv/bin/python", "benchmarks/ucr.py", *sys.argv[1:]])
    if not args.no_bake:
        bake("sequence_classification", PROJECT)
    import aeon

    if "accuracy" in parts:
        start = time.perf_counter()
        sets = tuple(args.sets)
        results = {"command": command, "seeds": args.seeds, "sets": list(sets), "epochs": args.epochs,
                   "variants": list(VARIANTS), "variant_args": VARIANTS, "recommended": RECOMMENDED,
                   "val_fraction": 0.2, "aeon": aeon.__version__, "references": references(sets)}
        results["runs"] = accuracy(sets, args.seeds, args.epochs)
        results["total_seconds"] = time.perf_counter() - start
        write("ucr", results, render_accuracy, plot_accuracy)
    if "length" in parts:
        start = time.perf_counter()
        results = {"command": command, "series": args.series, "epochs": args.length_epochs,
                   "base": POOLING, "variant_args": LENGTH_VARIANTS}
        results["runs"] = length(tuple(args.lengths), args.series, args.length_epochs)
        results["total_seconds"] = time.perf_counter() - start
        write("ucr_length", results, render_length, plot_length)


if __name__ == "__main__":
    main()
