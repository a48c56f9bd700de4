"""LR finder (T01) vs Lightning's ``Tuner.lr_find`` vs an oracle LR grid, on three real data sets.

    .venv-bench/bin/python benchmarks/lr_finder.py            # full run (3 seeds, Adam and SGD)
    .venv-bench/bin/python benchmarks/lr_finder.py --quick    # smoke test, written to /tmp

(``.venv-bench``: ``python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0 &&
.venv-bench/bin/pip install -r requirements.txt -r benchmarks/requirements.txt``.)

Data sets (all bundled in packages, see ``bench_data.py``): MR sentences through the template's
``TextClassificationDataModule`` with a text LSTM; a UCR set from ``aeon`` (ItalyPowerDemand) and
sklearn's digits (8×8 images as 8-step sequences), both with an LSTM(64). For every data set,
optimizer (Adam; SGD with momentum 0.9) and seed, interleaved in one run:

- ``callbacks.LRFinder`` (min_lr 1e-7, max_lr 10, 100 steps) in a fit: its default method's
  suggestion trains in that same fit; the other methods are read with ``suggest_lr`` from the
  SAME sweep (``finder.lrs``/``finder.losses``) and each trains separately at its LR;
- Lightning's ``Tuner(trainer).lr_find(min_lr=1e-7, max_lr=10, num_training=100).suggestion()``,
  then a fit at it (a ``None`` suggestion or an exception counts as a failure);
- an oracle grid of 8 log-spaced LRs (half a decade apart), each trained to the same budget.

Every training starts from the same seeded initial weights and runs the same number of epochs,
no schedule; the accuracy is the validation accuracy after the last epoch. Writes
benchmarks/results/lr_finder.md (tables), lr_finder.png (MR/Adam seed 0: the finder's curve with
every suggestion marked, and the grid) and lr_finder.json (every run, to re-render with
``--render``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

os.environ.setdefault("TQDM_DISABLE", "1")  # Tuner.lr_find draws its own progress bar whatever the Trainer says
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lightning.pytorch import Callback, Trainer, seed_everything  # noqa: E402
from lightning.pytorch.tuner import Tuner  # noqa: E402

import bench_data  # noqa: E402
import bench_models  # noqa: E402
from callbacks.lr_finder import LRFinder, suggest_lr  # noqa: E402

METHODS = ("robust", "steep", "valley", "min10")  # "robust" is LRFinder's default
DEFAULT = "robust"
MIN_LR, MAX_LR, NUM_STEPS = 1e-7, 10.0, 100
INITIAL_LR = 1e-3  # the model's configured LR before any finder runs
GRIDS = {"adam": (-4.0, -0.5), "sgd": (-3.0, 0.5)}  # log10 of the grid's ends, 8 points by default
FULL = {"epochs": {"MR": 3, "ucr": 40, "digits": 10}, "seeds": 3, "grid_points": 8}
QUICK = {"epochs": {"MR": 1, "ucr": 20, "digits": 3}, "seeds": 1, "grid_points": 3}
OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "SGD (momentum 0.9)"}


def grid(optimizer: str, points: int) -> list[float]:
    lo, hi = GRIDS[optimizer]
    if points == 1:
        return [10 ** ((lo + hi) / 2)]
    return [10 ** (lo + (hi - lo) * i / (points - 1)) for i in range(points)]


class _SweepTimer(Callback):
    """Wall time from ``on_fit_start`` (put before the finder) to ``on_train_start``: the sweep's cost."""

    def on_fit_start(self, trainer: Trainer, pl_module: Any) -> None:
        self.start = time.perf_counter()

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def _trainer(epochs: int, workdir: str, callbacks: Optional[list[Callback]] = None) -> Trainer:
    return Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks or [], default_root_dir=workdir,
        enable_progress_bar=False, logger=False, enable_checkpointing=False, enable_model_summary=False,
        num_sanity_val_steps=0, check_val_every_n_epoch=epochs,  # validate once, after the last epoch
    )


def _model(data: bench_data.BenchData, optimizer: str, seed: int, lr: float) -> bench_models._Classifier:
    seed_everything(seed, verbose=False)  # same initial weights and data order for every variant of a seed
    return bench_models.build(data, lr, optimizer)


def train_at(data: bench_data.BenchData, optimizer: str, seed: int, lr: float, epochs: int, workdir: str) -> dict:
    model = _model(data, optimizer, seed, lr)
    start = time.perf_counter()
    _trainer(epochs, workdir).fit(model, datamodule=data.make())
    return {"acc": model.val_acc[-1], "seconds": time.perf_counter() - start}


def run_ours(data: bench_data.BenchData, optimizer: str, seed: int, epochs: int, workdir: str) -> dict:
    """One fit with ``LRFinder``: the sweep, every method read from it, and training at the default."""
    model = _model(data, optimizer, seed, INITIAL_LR)
    finder = LRFinder(min_lr=MIN_LR, max_lr=MAX_LR, num_steps=NUM_STEPS, method=DEFAULT)
    timer = _SweepTimer()
    start = time.perf_counter()
    _trainer(epochs, workdir, [timer, finder]).fit(model, datamodule=data.make())
    seconds = time.perf_counter() - start
    suggestions: dict[str, Optional[float]] = {}
    errors: dict[str, str] = {}
    for method in METHODS:
        try:
            suggestions[method] = suggest_lr(finder.lrs, finder.losses, method)
        except ValueError as err:
            suggestions[method], errors[method] = None, str(err)
    applied = finder.suggestion  # None: the callback kept the configured LR (no or an unreliable reading)
    return {
        "suggestion": applied, "curve_suggestion": getattr(finder, "curve_suggestion", applied),
        "used_lr": applied if applied is not None else INITIAL_LR, "kept": applied is None,
        "reason": getattr(finder, "reason", ""), "suggestions": suggestions, "errors": errors,
        "confident": bool(finder.confident), "steps": int(finder.steps_run),
        "lrs": list(finder.lrs), "losses": list(finder.losses),
        "acc": model.val_acc[-1],  # the fit as the callback ran it: at its suggestion or the kept LR
        "sweep_seconds": getattr(timer, "seconds", None), "seconds": seconds,
    }


def run_lightning(data: bench_data.BenchData, optimizer: str, seed: int, epochs: int, workdir: str) -> dict:
    """Lightning's own finder on a fresh trainer, then a fit at its suggestion with that trainer."""
    model = _model(data, optimizer, seed, INITIAL_LR)
    trainer = _trainer(epochs, workdir)
    datamodule = data.make()
    out: dict[str, Any] = {"suggestion": None, "acc": None, "steps": 0, "lrs": [], "losses": [], "error": None}
    start = time.perf_counter()
    try:
        result = Tuner(trainer).lr_find(
            model, datamodule=datamodule, min_lr=MIN_LR, max_lr=MAX_LR, num_training=NUM_STEPS
        )
        out["sweep_seconds"] = time.perf_counter() - start
        out["lrs"], out["losses"] = list(result.results["lr"]), list(result.results["loss"])  # losses: its EMA
        out["steps"] = len(out["lrs"])
        out["suggestion"] = result.suggestion()
    except Exception as err:  # noqa: BLE001 - a failing anchor is a result, not a crash
        out["error"] = f"{type(err).__name__}: {err}"
    if out["suggestion"] is None:
        out["error"] = out["error"] or "suggestion() returned None"
        return out
    model.lr = out["suggestion"]  # update_attr already did this; explicit for clarity
    fit_start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    out["acc"] = model.val_acc[-1]
    out["seconds"] = time.perf_counter() - fit_start + out["sweep_seconds"]
    return out


def benchmark(args: argparse.Namespace, budget: dict) -> dict:
    datasets = {
        "MR": lambda: bench_data.mr(),
        "ucr": lambda: bench_data.ucr(args.ucr),
        "digits": lambda: bench_data.digits(),
    }
    report: dict[str, Any] = {"config": {**budget, "ucr": args.ucr, "optimizers": args.optimizers,
                                         "datasets": args.datasets, "first_seed": args.first_seed,
                                         "torch_threads": torch.get_num_threads()},
                              "datasets": {}, "runs": []}
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        for key in args.datasets:
            data = datasets[key]()
            epochs = budget["epochs"][key]
            report["datasets"][data.name] = {
                "key": key, "description": data.description, "epochs": epochs, "batch_size": data.batch_size,
                "steps_per_epoch": data.steps_per_epoch, "train_size": data.train_size, "val_size": data.val_size,
            }
            data_start = time.perf_counter()
            for seed in range(args.first_seed, args.first_seed + budget["seeds"]):
                for optimizer in args.optimizers:  # variants interleaved within each seed
                    base = {"dataset": data.name, "optimizer": optimizer, "seed": seed}
                    ours = run_ours(data, optimizer, seed, epochs, workdir)
                    report["runs"].append({**base, "variant": "ours", **ours})
                    light = run_lightning(data, optimizer, seed, epochs, workdir)
                    report["runs"].append({**base, "variant": "lightning", **light})
                    trained: dict[float, float] = {}
                    for method in METHODS:
                        lr = ours["suggestions"][method]
                        if lr is None:
                            acc = None
                        elif math.isclose(lr, ours["used_lr"]):
                            acc = ours["acc"]  # the finder's own fit trained at this LR
                        else:  # another method: a separate fit at its LR, no finder (shared when LRs coincide)
                            if lr not in trained:
                                trained[lr] = train_at(data, optimizer, seed, lr, epochs, workdir)["acc"]
                            acc = trained[lr]
                        report["runs"].append({**base, "variant": "method", "method": method, "lr": lr, "acc": acc,
                                               "steps": ours["steps"], "error": ours["errors"].get(method)})
                    for lr in grid(optimizer, budget["grid_points"]):
                        report["runs"].append({**base, "variant": "grid", "lr": lr,
                                               **train_at(data, optimizer, seed, lr, epochs, workdir)})
                    summary = ", ".join(
                        f"{m} {ours['suggestions'][m]:.2g}" if ours["suggestions"][m] else f"{m} -" for m in METHODS
                    )
                    print(f"[{time.perf_counter() - total_start:6.0f}s] {data.name} {optimizer} seed {seed}: "
                          f"ours acc {ours['acc']} ({summary}; {ours['steps']} steps) | Lightning "
                          f"{light['suggestion']} acc {light['acc']} ({light['steps']} steps)", flush=True)
            report["datasets"][data.name]["seconds"] = time.perf_counter() - data_start
    report["seconds"] = time.perf_counter() - total_start
    return report


# ---------------------------------------------------------------------------- rendering
def _fmt_lr(lr: Optional[float]) -> str:
    return "—" if lr is None else f"{lr:.2g}"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"


def _rows(report: dict, dataset: str, optimizer: str) -> tuple[list[dict], dict]:
    runs = [r for r in report["runs"] if r["dataset"] == dataset and r["optimizer"] == optimizer]
    seeds = sorted({r["seed"] for r in runs})
    steps_per_epoch = report["datasets"][dataset]["steps_per_epoch"]
    grid_runs = [r for r in runs if r["variant"] == "grid"]
    by_lr: dict[float, list[float]] = {}
    for r in grid_runs:
        by_lr.setdefault(r["lr"], []).append(r["acc"])
    grid_means = {lr: statistics.mean(accs) for lr, accs in sorted(by_lr.items())}
    best_lr = max(grid_means, key=grid_means.get)
    best = grid_means[best_lr]
    ours = [r for r in runs if r["variant"] == "ours"]
    kept = sum(r.get("kept", False) for r in ours)
    rows = [{"name": f"**ours: the callback as shipped** (`{DEFAULT}`, unreliable='keep')",
             "lrs": [r.get("used_lr", r["suggestion"]) for r in ours], "accs": [r["acc"] for r in ours if r["acc"] is not None],
             "failures": sum(r["acc"] is None for r in ours), "n": len(seeds), "steps": [r["steps"] for r in ours],
             "sweep_s": [r["sweep_seconds"] for r in ours if r.get("sweep_seconds")], "method": "callback",
             "note": (f"kept the configured lr={INITIAL_LR:g} on {kept} seed(s) (curve not confident)" if kept else "")}]
    for method in METHODS:
        mruns = [r for r in runs if r["variant"] == "method" and r["method"] == method]
        lrs = [r["lr"] for r in mruns if r["lr"] is not None]
        accs = [r["acc"] for r in mruns if r["acc"] is not None]
        name = f"ours: `{method}` read from the same sweep, applied"
        unsure = sum(not r["confident"] for r in ours)
        extra = f"curve not confident on {unsure} seed(s)" if unsure and method == DEFAULT else ""
        rows.append({"name": name, "lrs": lrs, "accs": accs, "failures": len(mruns) - len(accs), "n": len(seeds),
                     "steps": [r["steps"] for r in ours], "sweep_s": [r["sweep_seconds"] for r in ours if r.get("sweep_seconds")],
                     "note": extra, "method": method})
    light = [r for r in runs if r["variant"] == "lightning"]
    errors = sorted({r["error"] for r in light if r["error"]})
    epoch_cap = report["datasets"][dataset]["epochs"] * steps_per_epoch
    capped = sum(0 < r["steps"] < NUM_STEPS and r["steps"] == epoch_cap for r in light)
    if capped:  # Tuner.lr_find runs inside the fit loop: max_epochs caps the sweep
        errors.append(f"{capped} sweep(s) cut at max_epochs ({epoch_cap} steps)")
    rows.append({"name": "Lightning `lr_find().suggestion()`", "lrs": [r["suggestion"] for r in light if r["suggestion"]],
                 "accs": [r["acc"] for r in light if r["acc"] is not None],
                 "failures": sum(r["acc"] is None for r in light), "n": len(seeds), "steps": [r["steps"] for r in light],
                 "sweep_s": [r["sweep_seconds"] for r in light if r.get("sweep_seconds")], "note": "; ".join(errors),
                 "method": "lightning"})
    for row in rows:
        row["lr"] = statistics.median(row["lrs"]) if row["lrs"] else None
        row["acc"] = statistics.mean(row["accs"]) if row["accs"] else None
        row["gap"] = None if row["acc"] is None else 100 * (best - row["acc"])
        row["median_steps"] = statistics.median(row["steps"]) if row["steps"] else None
        row["fraction"] = None if row["median_steps"] is None else row["median_steps"] / steps_per_epoch
    grid_info = {"means": grid_means, "best_lr": best_lr, "best": best,
                 "best_std": statistics.pstdev(by_lr[best_lr]) if len(by_lr[best_lr]) > 1 else 0.0,
                 "epoch_s": statistics.median(r["seconds"] for r in grid_runs) / report["datasets"][dataset]["epochs"]}
    return rows, grid_info


def render(report: dict) -> str:
    cfg = report["config"]
    lines = [
        "# LR finder (T01): ours vs Lightning's `Tuner.lr_find` vs an oracle grid",
        "",
        "Reproduce: `.venv-bench/bin/python benchmarks/lr_finder.py"
        + (f" --first-seed {cfg['first_seed']}" if cfg.get("first_seed") else "") + f"` (total {report['seconds'] / 60:.1f} min on "
        f"{cfg['torch_threads']} CPU thread). {cfg['seeds']} seeds × {{Adam, SGD momentum 0.9}} per data set; "
        f"every finder sweeps {MIN_LR:g} → {MAX_LR:g} over at most {NUM_STEPS} steps from the model's seeded initial "
        "weights; every training (at a finder's suggestion or a grid LR) runs the same epochs with no schedule, and "
        "the accuracy is the validation accuracy after the last epoch. The model's configured LR before any finder "
        f"is {INITIAL_LR:g} (the template's default): the callback keeps it when it judges its curve unreliable "
        "(`unreliable='keep'`), so *the callback as shipped* trains at that LR on such seeds, while the method rows "
        "apply each reading of the same sweep regardless.",
        "",
        "Columns: *LR* — suggested LR, median over seeds; *val acc* — mean ± std over seeds of training at it; "
        "*gap* — the grid's best mean accuracy minus this one, in accuracy points (negative: better than the grid); "
        "*fails* — seeds without a suggestion (or a fit); *steps* — finder steps run (median; it stops early on "
        "divergence); *of an epoch* — those steps as a fraction of one training epoch; *sweep s* — the sweep's wall "
        "time (median).",
        "",
    ]
    summary = []
    for dataset, info in report["datasets"].items():
        lines += [f"## {dataset}", "", f"{info['description']}; batch {info['batch_size']} "
                  f"({info['steps_per_epoch']} steps/epoch), {info['epochs']} epochs per training.", ""]
        for optimizer in cfg["optimizers"]:
            rows, g = _rows(report, dataset, optimizer)
            lines += [
                f"**{OPTIMIZER_NAMES[optimizer]}** — grid best {g['best']:.3f} ± {g['best_std']:.3f} at LR "
                f"{g['best_lr']:.2g}; one epoch ≈ {g['epoch_s']:.2f} s",
                "",
                "| method | LR | val acc | gap (points) | fails | steps | of an epoch | sweep s | note |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for row in rows:
                gap = "—" if row["gap"] is None else f"{row['gap']:+.1f}"
                steps = "—" if row["median_steps"] is None else f"{row['median_steps']:.0f}"
                frac = "—" if row["fraction"] is None else f"{row['fraction']:.2f}"
                sweep = f"{statistics.median(row['sweep_s']):.2f}" if row["sweep_s"] else "—"
                lines.append(f"| {row['name']} | {_fmt_lr(row['lr'])} | {_mean_std(row['accs'])} | {gap} | "
                             f"{row['failures']}/{row['n']} | {steps} | {frac} | {sweep} | {row['note']} |")
            lines.append("")
            default = rows[0]
            light = rows[-1]
            ok = default["gap"] is not None and default["gap"] <= 1.0 and default["failures"] == 0 and \
                max(default["steps"]) <= NUM_STEPS
            summary.append((dataset, optimizer, default, light, g, ok))
    lines += ["## Grid (mean val acc over seeds per LR)", ""]
    for optimizer in cfg["optimizers"]:
        lrs = grid(optimizer, cfg["grid_points"])
        lines += [f"**{OPTIMIZER_NAMES[optimizer]}**", "",
                  "| data set | " + " | ".join(f"{lr:.2g}" for lr in lrs) + " |",
                  "|---|" + "---|" * len(lrs)]
        for dataset in report["datasets"]:
            _, g = _rows(report, dataset, optimizer)
            cells = [(f"**{g['means'][lr]:.3f}**" if lr == g["best_lr"] else f"{g['means'][lr]:.3f}") for lr in lrs]
            lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Target: our default within 1 accuracy point of the grid's best, at ≤ 100 steps", "",
              "| data set | optimizer | ours (default) | Lightning | grid best | ours: gap / steps | Lightning: gap | met |",
              "|---|---|---|---|---|---|---|---|"]
    for dataset, optimizer, default, light, g, ok in summary:
        lgap = "failed" if light["gap"] is None else f"{light['gap']:+.1f}"
        dgap = "failed" if default["gap"] is None else f"{default['gap']:+.1f}"
        lines.append(f"| {dataset} | {OPTIMIZER_NAMES[optimizer]} | {_mean_std(default['accs'])} | "
                     f"{_mean_std(light['accs'])} | {g['best']:.3f} | {dgap} / {default['median_steps']:.0f} | {lgap} | "
                     f"{'yes' if ok else 'no'} |")
    met = sum(s[-1] for s in summary)
    lines += ["", f"Met on {met} of {len(summary)} data set × optimizer pairs.", ""]
    # every method against the same bar, from the same sweeps
    pairs = [(dataset, optimizer) for dataset in report["datasets"] for optimizer in cfg["optimizers"]]
    table = {pair: _rows(report, *pair)[0] for pair in pairs}
    names = [row["name"] for row in table[pairs[0]]]
    lines += ["## Every method's gap to the grid's best (accuracy points; ✓ within 1)", "",
              "| method | " + " | ".join(f"{d} {OPTIMIZER_NAMES[o].split()[0]}" for d, o in pairs) + " | within 1 |",
              "|---|" + "---|" * (len(pairs) + 1)]
    for i, name in enumerate(names):
        gaps = [table[pair][i]["gap"] for pair in pairs]
        cells = ["failed" if g is None else f"{g:+.1f}{' ✓' if g <= 1.0 else ''}" for g in gaps]
        within = sum(g is not None and g <= 1.0 for g in gaps)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {within}/{len(pairs)} |")
    lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path, dataset: str = "MR", optimizer: str = "adam", seed: Optional[int] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        from callbacks.lr_curve import smooth
    except ImportError:  # the same bias-corrected EMA
        def smooth(values: list[float], beta: float = 0.98) -> list[float]:
            avg, out = 0.0, []
            for i, v in enumerate(values, 1):
                avg = beta * avg + (1 - beta) * v
                out.append(avg / (1 - beta**i))
            return out

    if dataset not in report["datasets"]:
        dataset = next(iter(report["datasets"]))
    if optimizer not in report["config"]["optimizers"]:
        optimizer = report["config"]["optimizers"][0]
    runs = [r for r in report["runs"] if r["dataset"] == dataset and r["optimizer"] == optimizer]
    seed = min(r["seed"] for r in runs) if seed is None else seed
    ours = next(r for r in runs if r["variant"] == "ours" and r["seed"] == seed)
    light = next(r for r in runs if r["variant"] == "lightning" and r["seed"] == seed)
    colors = {"callback": "tab:brown", "robust": "tab:red", "steep": "tab:orange", "valley": "tab:green", "min10": "tab:purple",
              "lightning": "black"}

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    lrs, losses = ours["lrs"], ours["losses"]
    smoothed = smooth(losses)
    left.plot(lrs, losses, color="tab:blue", alpha=0.35, linewidth=1, label="ours: raw loss")
    left.plot(lrs, smoothed, color="tab:blue", linewidth=2, label="ours: smoothed (EMA 0.98)")
    if light["lrs"]:
        left.plot(light["lrs"], light["losses"], color="gray", linestyle="--", linewidth=1.2,
                  label="Lightning's sweep (its EMA)")
    same_lr: dict[float, list[str]] = {}  # readings that agree share one line and one legend entry
    for method in METHODS:
        lr = ours["suggestions"][method]
        if lr is not None:
            same_lr.setdefault(lr, []).append(method)
    for lr, methods in same_lr.items():
        names = []
        for method in methods:
            note = ""
            if method == DEFAULT:
                note = f" (default; not applied, kept {INITIAL_LR:g})" if ours.get("kept") else " (default, applied)"
            names.append(f"{method}{note}")
        first = DEFAULT if DEFAULT in methods else methods[0]
        left.axvline(lr, color=colors[first], linestyle="-" if DEFAULT in methods else ":", linewidth=1.6,
                     label=f"{' = '.join(names)}: {lr:.2g}")
    if light["suggestion"] is not None:
        left.axvline(light["suggestion"], color=colors["lightning"], linestyle="-.", linewidth=1.4,
                     label=f"Lightning: {light['suggestion']:.2g}")
    finite = [v for v in losses + smoothed if math.isfinite(v)]
    top = max(smoothed[0], losses[0]) * 1.6
    left.set_ylim(min(finite) * 0.9, top)
    left.set_xscale("log")
    left.set_xlabel("learning rate")
    left.set_ylabel("training loss")
    left.set_title(f"{dataset}, {OPTIMIZER_NAMES[optimizer]}, seed {seed}: one sweep, {ours['steps']} steps")
    left.legend(fontsize=7, loc="upper left")

    rows, g = _rows(report, dataset, optimizer)
    short = {"callback": "ours: callback as shipped", "lightning": "Lightning suggestion()",
             **{m: f"ours: {m} (applied)" for m in METHODS}}
    right.plot(list(g["means"]), list(g["means"].values()), marker="o", color="tab:blue",
               label="grid (mean over seeds)")
    points: dict[tuple[float, float], list[str]] = {}  # finders that landed on the same point share one marker
    for row in rows:
        if row["lr"] is not None and row["acc"] is not None:
            points.setdefault((row["lr"], row["acc"]), []).append(row["method"])
    for (lr, acc), methods in points.items():
        right.scatter([lr], [acc], color=colors[methods[0]], zorder=3, s=40,
                      marker="D" if methods == ["lightning"] else "s",
                      label=" = ".join(short.get(method, method) for method in methods))
    right.set_xscale("log")
    right.set_xlabel("learning rate (finders: median suggestion)")
    right.set_ylabel(f"val accuracy after {report['datasets'][dataset]['epochs']} epochs")
    right.set_title(f"{dataset}, {OPTIMIZER_NAMES[optimizer]}: accuracy at each LR")
    right.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 3 grid LRs, short trainings (MR 1 epoch), output to /tmp")
    parser.add_argument("--seeds", type=int, help="seeds per data set and optimizer (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here (e.g. 3 for held-out seeds)")
    parser.add_argument("--grid-points", type=int, help="LRs in the oracle grid (default 8)")
    parser.add_argument("--datasets", nargs="+", default=["MR", "ucr", "digits"], choices=["MR", "ucr", "digits"])
    parser.add_argument("--optimizers", nargs="+", default=["adam", "sgd"], choices=list(GRIDS))
    parser.add_argument("--ucr", default="ItalyPowerDemand", choices=list(bench_data.UCR_LOADERS))
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results; /tmp/... with --quick)")
    parser.add_argument("--render", type=Path, help="only re-render the tables and plot from a saved lr_finder.json")
    args = parser.parse_args()

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # dataloader-worker hints, finder confidence warnings (recorded instead)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)

    out = args.out or (Path(tempfile.gettempdir()) / "lr_finder_quick" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        report = json.loads(args.render.read_text(encoding="utf-8"))
    else:
        budget = dict(QUICK if args.quick else FULL)
        budget["epochs"] = dict(budget["epochs"])
        if args.seeds:
            budget["seeds"] = args.seeds
        if args.grid_points:
            budget["grid_points"] = args.grid_points
        report = benchmark(args, budget)
        (out / "lr_finder.json").write_text(json.dumps(report), encoding="utf-8")
    text = render(report)
    (out / "lr_finder.md").write_text(text, encoding="utf-8")
    plot(report, out / "lr_finder.png")
    print(text)
    print(f"wrote {out / 'lr_finder.md'}, {out / 'lr_finder.png'}, {out / 'lr_finder.json'}")


if __name__ == "__main__":
    main()
