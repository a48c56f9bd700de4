"""Ensembles (T60-T63) and hard-example oversampling against the single default model, on every task, in one run.

Per data set (MR, GunPoint, ItalyPowerDemand, digits), through each baked project's own CLI on one thread:
- the default config, seeds 1-5, with ``presets/blend.yaml`` (texts: in the default config): each run's test accuracy and ECE (the single model),
  the classical model alone and the blend (T63), all read from the run's summary;
- the 5-seed ensemble (T61) of those five runs' best checkpoints: ``test --ensemble`` on their manifest;
- a snapshot ensemble (T60, ``presets/snapshot.yaml``: 5 cosine-restart cycles), seeds 1-3, and its last 3 snapshots;
- EMA of the weights (T62, ``presets/ema.yaml``), seeds 1-3;
- hard-example oversampling: seeds 1-3 retrained with ``--data.oversample`` of that seed's ``train_losses.csv``.
Compute is counted in training epochs (an ensemble: its members' sum). Runs are cached by (set, variant, seed) in
``results/ensembles_runs.jsonl``; ``--fresh`` ignores the cache, ``--sets`` runs some sets, ``--render`` only redraws.

    .venv/bin/python benchmarks/ensembles.py            # ~75 min on one core
    .venv/bin/python benchmarks/ensembles.py --render   # the table and plot from the cached runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from project_runs import ROOT, project_of  # noqa: E402

sys.path.insert(0, str(ROOT))
from callbacks.ensemble import read_manifest, write_manifest  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = RESULTS / "ensembles_runs.jsonl"
BUILD = ROOT / "build" / "bench-ensembles"
SEEDS = (1, 2, 3, 4, 5)
SHORT = (1, 2, 3)
#: name -> (task, data arguments, default max_epochs, snapshot preset's max_epochs)
SETS = {
    "GunPoint": ("sequence_classification", ["--data.dataset", "GunPoint"], 200, 100),
    "ItalyPowerDemand": ("sequence_classification", ["--data.dataset", "ItalyPowerDemand"], 200, 100),
    "digits": ("image_classification", [], 100, 50),
    "MR": ("text_classification", [], 10, 10),
}
VARIANTS = ("single", "blend", "classical", "seed ensemble", "snapshot", "snapshot last 3", "ema", "oversample")


def cli(project: Path, package: str, args: list[str]) -> dict[str, Any]:
    """One CLI command on one thread, W&B offline; the result the CLI wrote for the trial runner, plus seconds."""
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "result.json"
        env = {**os.environ, "PYTHONPATH": str(project / "src"), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
               f"{package.upper()}_TRIAL_RESULT": str(result_file)}
        command = [sys.executable, "-m", package, *args, "--trainer.enable_progress_bar", "false"]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not result_file.is_file():
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        result = json.loads(result_file.read_text())
    result["seconds"] = time.perf_counter() - start
    return result


def summary(run_dir: str) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "summary.json").read_text())


PATHS = ("checkpoint", "run_dir")  # stored relative to the repository, so the cache names no machine's folders


def load_cache() -> dict[tuple[str, str, int], dict[str, Any]]:
    rows = {}
    if CACHE.is_file():
        for line in CACHE.read_text().splitlines():
            row = json.loads(line)
            row.update({key: str(ROOT / row[key]) for key in PATHS if row.get(key)})
            rows[(row["set"], row["variant"], row["seed"])] = row
    return rows


def remember(cache: dict, row: dict[str, Any]) -> dict[str, Any]:
    cache[(row["set"], row["variant"], row["seed"])] = row
    RESULTS.mkdir(parents=True, exist_ok=True)
    stored = {**row, **{key: str(Path(row[key]).resolve().relative_to(ROOT)) for key in PATHS if row.get(key)}}
    with CACHE.open("a") as handle:
        handle.write(json.dumps(stored) + "\n")
    return row


def fit_args(data: list[str], seed: int, epochs: int, *presets: str) -> list[str]:
    """``fit`` with the default config and ``presets``; a preset the project lacks is in its default (texts: blend)."""
    configs = [arg for preset in presets for arg in ("--config", f"configs/presets/{preset}.yaml")]
    return ["fit", "--config", "configs/default.yaml", *configs, *data, f"--seed_everything={seed}",
            "--trainer.max_epochs", str(epochs)]


def ensemble_test(project: Path, package: str, data: list[str], manifest: Path) -> dict[str, Any]:
    return cli(project, package, ["test", "--config", "configs/default.yaml", *data, "--ensemble", str(manifest)])


def measure(name: str, cache: dict) -> None:
    task, data, epochs, snapshot_epochs = SETS[name]
    project, package = project_of(task, BUILD)

    def cached(variant: str, seed: int, run: Any) -> dict[str, Any]:
        key = (name, variant, seed)
        if key not in cache:
            print(f"{name} {variant} seed {seed} ...", flush=True)
            remember(cache, {"set": name, "variant": variant, "seed": seed, **run()})
        return cache[key]

    blend = ("blend",) if (project / "configs" / "presets" / "blend.yaml").is_file() else ()  # texts: in the default

    def single(seed: int) -> dict[str, Any]:
        result = cli(project, package, fit_args(data, seed, epochs, *blend))
        values = summary(result["run_dir"])
        keep = {f"{part}_{score}": values[f"test/{part}_{score}"]
                for part in ("network", "classical", "blend") for score in ("acc", "ece", "nll")}
        return {**keep, "epochs": result["epochs"], "checkpoint": result["checkpoint"], "run_dir": result["run_dir"],
                "blend_weight": values["blend/weight"], "seconds": result["seconds"]}

    singles = [cached("single", seed, lambda seed=seed: single(seed)) for seed in SEEDS]

    def seed_ensemble() -> dict[str, Any]:
        manifest = write_manifest(BUILD / f"{name}-seeds" / "ensemble.yaml", "seed",
                                  [{"checkpoint": r["checkpoint"], "seed": r["seed"]} for r in singles])
        result = ensemble_test(project, package, data, manifest)
        return {"acc": result["ensemble"]["acc"], "ece": result["ensemble"]["ece"], "nll": result["ensemble"]["nll"],
                "epochs": sum(r["epochs"] for r in singles)}

    cached("seed ensemble", 0, seed_ensemble)

    def snapshot(seed: int) -> dict[str, Any]:
        result = cli(project, package, fit_args(data, seed, snapshot_epochs, "snapshot"))
        manifest = Path(result["run_dir"]) / "ensemble.yaml"
        tested = ensemble_test(project, package, data, manifest)
        return {"acc": tested["ensemble"]["acc"], "ece": tested["ensemble"]["ece"], "nll": tested["ensemble"]["nll"],
                "members": len(tested["members"]), "epochs": result["epochs"],
                "best_single_acc": result["test"].get("test/acc")}

    def with_blend_scores(result: dict[str, Any]) -> dict[str, Any]:
        values = summary(result["run_dir"])
        return {"acc": values["test/network_acc"], "ece": values["test/network_ece"], "nll": values["test/network_nll"],
                "epochs": result["epochs"]}

    def ema(seed: int) -> dict[str, Any]:
        return with_blend_scores(cli(project, package, fit_args(data, seed, epochs, "ema", *blend)))

    def oversample(seed: int) -> dict[str, Any]:
        losses = Path(singles[SEEDS.index(seed)]["run_dir"]) / "train_losses.csv"
        args = fit_args(data, seed, epochs, *blend) + ["--data.oversample", str(losses)]
        return with_blend_scores(cli(project, package, args))

    def snapshot_last(seed: int, keep: int = 3) -> dict[str, Any]:
        """The same snapshot run's last ``keep`` members only (Huang et al. average the last few)."""
        import yaml

        def same_run(path: Path) -> bool:  # this set's snapshot run of this seed (sets of a task share a project)
            config = yaml.safe_load((path.parent / "config.yaml").read_text())
            return (yaml.safe_load(path.read_text()).get("kind") == "snapshot" and config["seed_everything"] == seed
                    and all(str(config["data"][key[len("--data."):]]) == value for key, value in zip(data[::2], data[1::2])))

        runs = [path.parent for path in (project / "runs").glob("*/*/ensemble.yaml") if same_run(path)]
        run = max(runs, key=lambda folder: (folder / "ensemble.yaml").stat().st_mtime)  # the newest, after a rerun
        members = read_manifest(run / "ensemble.yaml")[-keep:]
        manifest = write_manifest(BUILD / f"{name}-snapshot-last" / f"seed{seed}.yaml", "snapshot",
                                  [{"checkpoint": m.checkpoint} for m in members])
        tested = ensemble_test(project, package, data, manifest)
        return {"acc": tested["ensemble"]["acc"], "ece": tested["ensemble"]["ece"], "nll": tested["ensemble"]["nll"],
                "members": len(members), "epochs": cache[(name, "snapshot", seed)]["epochs"]}

    for seed in SHORT:
        cached("snapshot", seed, lambda seed=seed: snapshot(seed))
        cached("snapshot last 3", seed, lambda seed=seed: snapshot_last(seed))
        cached("ema", seed, lambda seed=seed: ema(seed))
        cached("oversample", seed, lambda seed=seed: oversample(seed))


def table_rows(cache: dict) -> dict[str, dict[str, dict[str, Any]]]:
    """set -> variant -> {acc: [..], ece: [..], epochs: mean}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in SETS:
        singles = [cache[(name, "single", s)] for s in SEEDS if (name, "single", s) in cache]
        if not singles:
            continue
        rows = {
            "single": {"acc": [r["network_acc"] for r in singles], "ece": [r["network_ece"] for r in singles],
                       "epochs": statistics.mean(r["epochs"] for r in singles)},
            "classical": {"acc": [singles[0]["classical_acc"]], "ece": [singles[0]["classical_ece"]], "epochs": 0},
            "blend": {"acc": [r["blend_acc"] for r in singles], "ece": [r["blend_ece"] for r in singles],
                      "epochs": statistics.mean(r["epochs"] for r in singles),
                      "weight": [r["blend_weight"] for r in singles]},
        }
        if (name, "seed ensemble", 0) in cache:
            row = cache[(name, "seed ensemble", 0)]
            rows["seed ensemble"] = {"acc": [row["acc"]], "ece": [row["ece"]], "epochs": row["epochs"]}
        first = {r["seed"]: r["epochs"] for r in singles}  # oversampling needs the first run: its epochs count too
        for variant in ("snapshot", "snapshot last 3", "ema", "oversample"):
            found = [cache[(name, variant, s)] for s in SHORT if (name, variant, s) in cache]
            if found:
                rows[variant] = {"acc": [r["acc"] for r in found], "ece": [r["ece"] for r in found],
                                 "epochs": statistics.mean(r["epochs"] + (first[r["seed"]] if variant == "oversample"
                                                                          else 0) for r in found)}
        out[name] = rows
    return out


def _spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


LABELS = {"single": "single model: the network of the default config (5 seeds)", "seed ensemble": "T61 5-seed ensemble",
          "snapshot": "T60 snapshot ensemble, one run, all 5 cycles (3 seeds)",
          "snapshot last 3": "T60 the same runs' last 3 snapshots", "ema": "T62 EMA of the weights (3 seeds)",
          "blend": "T63 blend with the classical model (5 seeds)", "classical": "classical model alone",
          "oversample": "hard examples oversampled x2 in a second run (3 seeds; epochs: both runs)"}


def render(cache: dict) -> None:
    rows = table_rows(cache)
    lines = ["# Ensembles, weight averaging, the classical blend and hard-example oversampling", "",
             "Command: `.venv/bin/python benchmarks/ensembles.py` (then `--render`). Test accuracy mean ± std over "
             "seeds, expected calibration error (15 bins), compute in training epochs (an ensemble: the sum over its "
             "members). Each set's own test split; every run through the generated project's CLI with the default "
             "config plus the preset named.", ""]
    for name, variants in rows.items():
        single = statistics.mean(variants["single"]["acc"])
        lines += [f"## {name} ({SETS[name][0].replace('_', ' ')})", "",
                  "| variant | test accuracy | vs single | ECE | epochs |", "|---|---:|---:|---:|---:|"]
        for variant in VARIANTS:
            if variant not in variants:
                continue
            row = variants[variant]
            gain = 100 * (statistics.mean(row["acc"]) - single)
            label = LABELS[variant] + (" — the default for texts" if variant == "blend" and name == "MR" else "")
            lines.append(f"| {label} | {_spread(row['acc'])} | {gain:+.1f} | {_spread(row['ece'])} | "
                         f"{row['epochs']:.0f} |")
        if "blend" in variants:
            weights = variants["blend"]["weight"]
            lines += ["", f"Blend weight on the classical model (chosen on validation): "
                          f"{', '.join(f'{w:.2f}' for w in weights)}."]
        lines.append("")
    verdicts = verdict(rows)
    lines += ["## Targets", ""] + [f"- {v}" for v in verdicts] + [""]
    (RESULTS / "ensembles.md").write_text("\n".join(lines))
    (RESULTS / "ensembles.json").write_text(json.dumps(rows, indent=1))
    plot(rows)
    print("\n".join(lines))


def verdict(rows: dict) -> list[str]:
    out = []
    for name, variants in rows.items():
        single = statistics.mean(variants["single"]["acc"])
        ensembles = {v: statistics.mean(variants[v]["acc"]) for v in ("seed ensemble", "snapshot", "snapshot last 3", "ema")
                     if v in variants}
        if ensembles:
            best = max(ensembles, key=ensembles.get)
            out.append(f"{name}: best of the ensembles and EMA is the {best}, {100 * (ensembles[best] - single):+.1f} "
                       "points over the single default model (target: >= +1.0 on MR and on one sequence set).")
        if "blend" in variants:
            parts = max(single, statistics.mean(variants["classical"]["acc"]))
            blend = statistics.mean(variants["blend"]["acc"])
            seeds_below = sum(b < max(n, variants["classical"]["acc"][0]) - 1e-9
                              for b, n in zip(variants["blend"]["acc"], variants["single"]["acc"]))
            out.append(f"{name}: blend {blend:.3f} against the better of its parts {parts:.3f} (mean); below the "
                       f"better part on {seeds_below} of {len(variants['blend']['acc'])} seeds.")
    return out


def plot(rows: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 4.2), squeeze=False)
    colours = {"single": "grey", "seed ensemble": "tab:red", "snapshot": "tab:orange", "snapshot last 3": "gold",
               "ema": "tab:green",
               "blend": "tab:purple", "classical": "tab:brown", "oversample": "tab:blue"}
    for ax, (name, variants) in zip(axes[0], rows.items()):
        for variant, row in variants.items():
            ece = statistics.mean(row["ece"])
            acc = statistics.mean(row["acc"])
            ax.scatter(ece, acc, s=30 + 3 * row["epochs"] ** 0.8, color=colours[variant], label=variant, alpha=0.8)
            if len(row["acc"]) > 1:
                ax.errorbar(ece, acc, yerr=statistics.stdev(row["acc"]), color=colours[variant], alpha=0.5)
        ax.set_title(name)
        ax.set_xlabel("ECE (lower is better calibrated)")
        ax.set_ylabel("test accuracy")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("ensembles: accuracy against calibration (marker size ~ compute in epochs)")
    fig.tight_layout()
    fig.savefig(RESULTS / "ensembles.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    parser.add_argument("--fresh", action="store_true", help="ignore the cached runs")
    parser.add_argument("--render", action="store_true", help="only the table and plot from the cache")
    args = parser.parse_args()
    if args.fresh and CACHE.is_file():
        CACHE.unlink()
    cache = load_cache()
    if not args.render:
        for name in args.sets:
            measure(name, cache)
    render(cache)


if __name__ == "__main__":
    main()
