"""The tuning autopilot against Optuna's TPE and random search over the same space, and the untuned default.

Equal budgets: every study gets the same number of trials (``--trials``, stage 0 left out) and the same max epochs
per trial (set per data set in ``SETS``); trial 0 of every study is the config as it is (LR finder on), which is also the
"default" row. For each set and repeat (``--seed_everything`` 1, 2): the best validation score a study found, the
test score of the configuration it chose (its trial's test after fit; selection saw validation only), the
epochs and trial-minutes spent, the study's wall time. Then the same random-search study with 1 and 2 workers,
interleaved, for the wall-time ratio.

    .venv/bin/python benchmarks/tune.py                 # everything (hours on 2 cores; cached per study)
    .venv/bin/python benchmarks/tune.py --sets JapaneseVowels digits --no-workers &   # two at a time on 2 cores
    .venv/bin/python benchmarks/tune.py --sets MR --no-workers; wait
    .venv/bin/python benchmarks/tune.py --workers-only --trials 6   # alone: it needs both cores
    .venv/bin/python benchmarks/tune.py --render        # the table and plot from the cache

Writes ``benchmarks/results/tune.md``, ``tune.json`` and ``tune.png``; raw rows in ``tune_runs.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from project_runs import PROJECTS, ROOT, project_of  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = RESULTS / "tune_runs.jsonl"
BUILD = ROOT / "build" / "bench-tune"
#: name -> (task, data arguments, max epochs per trial: a trial's start-up, ~15 s, is most of a small set's trial)
# sequences: JapaneseVowels (UEA, 9 classes, 54 validation series); ItalyPowerDemand's 14 validation series reach
# a validation loss of 0.001 at the default config, which leaves nothing to choose by
SETS = {"JapaneseVowels": ("sequence_classification", ["--data.dataset", "JapaneseVowels"], 60),
        "digits": ("image_classification", [], 20),
        "MR": ("text_classification", [], 5)}
METHODS = ("autopilot", "tpe", "random")
REPEATS = (1, 2)
WORKER_SET = "JapaneseVowels"


def load_cache() -> dict[tuple, dict[str, Any]]:
    rows = {}
    if CACHE.is_file():
        for line in CACHE.read_text().splitlines():
            row = json.loads(line)
            rows[tuple(row["key"])] = row
    return rows


def remember(cache: dict, row: dict[str, Any]) -> None:
    cache[tuple(row["key"])] = row
    RESULTS.mkdir(parents=True, exist_ok=True)
    with CACHE.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def run_study(name: str, method: str, seed: int, trials: int, workers: int, tag: str) -> dict[str, Any]:
    """One ``tune`` study through the project's CLI; what it found, read back from its journal."""
    import optuna

    task, data, epochs = SETS[name]
    project, package = project_of(task, BUILD)
    study = f"bench-{tag}"
    folder = project / "runs" / PROJECTS[task][0] / study
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", package, "tune", "--config", "configs/default.yaml", *data,
               "--trainer.max_epochs", str(epochs), f"--seed_everything={seed}", "--trainer.enable_progress_bar=false",
               "--sampler", method, "--trials", str(trials), "--workers", str(workers), "--study", study,
               "--skip_preflight", "--sampler_seed", str(seed), "--tuned", str(folder / "tuned.yaml")]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    sys.path.insert(0, str(project / "src"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    found = optuna.load_study(study_name=study, storage=JournalStorage(JournalFileBackend(str(folder / "study.journal"))))
    trials_ = found.get_trials()
    best, _, _ = importlib.import_module(f"{package}.tune.command").kept(found, found.user_attrs["setup"])
    default = next(t for t in trials_ if t.user_attrs.get("params") == {})
    return {"key": [name, method, seed, workers], "set": name, "method": method, "seed": seed, "workers": workers,
            "max_epochs": epochs,
            "best_val": best.value, "best_test": (best.user_attrs.get("test") or {}).get("test/acc"),
            "best_params": best.user_attrs.get("params"), "default_val": default.value,
            "default_test": (default.user_attrs.get("test") or {}).get("test/acc"),
            "monitor": found.user_attrs["setup"]["monitor"], "trials": len(trials_),
            "pruned": sum(t.state.name == "PRUNED" for t in trials_),
            "epochs": sum(int(t.user_attrs.get("epochs") or 0) for t in trials_),
            "trial_minutes": sum(float(t.user_attrs.get("seconds") or 0) for t in trials_) / 60, "wall_s": seconds,
            "span_s": trial_span(trials_)}


def trial_span(trials: list[Any]) -> float:
    """Seconds from the first trial's start to the last one's end: the study without the command's set-up and
    results (reading the config, tuned.yaml, the W&B summary run), which do not run in parallel."""
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()


def study_span(name: str, tag: str) -> float:
    """:func:`trial_span` of a finished study, read from its journal (rows cached before the span was stored)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    task = SETS[name][0]
    folder = BUILD / task / PROJECTS[task][0] / "runs" / PROJECTS[task][0] / f"bench-{tag}"
    storage = JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    return trial_span(optuna.load_study(study_name=f"bench-{tag}", storage=storage).get_trials())


def measure(sets: list[str], trials: int, cache: dict, workers_check: bool, studies: bool) -> None:
    for seed in REPEATS if studies else ():
        for name in sets:
            for method in METHODS:
                cache.update(load_cache())  # another process (another --sets) may have run it meanwhile
                if (name, method, seed, 1) in cache:
                    continue
                print(f"{name} {method} seed {seed} ...", flush=True)
                remember(cache, run_study(name, method, seed, trials, 1, f"{name}-{method}-{seed}"))
    if workers_check:
        for seed in REPEATS:  # interleaved: 1 worker, 2 workers, 1, 2
            for workers in (1, 2):
                key = (WORKER_SET, "random-workers", seed, workers)
                if key in cache:
                    continue
                print(f"workers {workers} seed {seed} ...", flush=True)
                row = run_study(WORKER_SET, "random", seed, trials, workers, f"workers-{workers}-{seed}")
                row["key"], row["method"] = list(key), "random-workers"
                remember(cache, row)


def _mean(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return f"{statistics.mean(values):.{digits}f}" + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def render(cache: dict) -> None:
    rows = list(cache.values())
    sets = [name for name in SETS if any(r["set"] == name for r in rows)]
    lines = ["| set | method | best validation (monitor) | test acc of the choice | epochs | trial-min | study wall s |",
             "|---|---|---|---|---|---|---|"]
    summary: dict[str, Any] = {}
    for name in sets:
        mine = [r for r in rows if r["set"] == name and r["workers"] == 1 and r["method"] in METHODS]
        if not mine:
            continue
        monitor = mine[0]["monitor"]
        lines.append(f"| {name} | default config (trial 0) | {_mean([r['default_val'] for r in mine])} ({monitor}) | "
                     f"{_mean([r['default_test'] for r in mine])} | | | |")
        for method in METHODS:
            these = [r for r in mine if r["method"] == method]
            summary[f"{name}/{method}"] = {k: [r[k] for r in these] for k in ("best_val", "best_test", "default_test",
                                                                             "epochs", "wall_s")}
            lines.append(f"| {name} | {method} | {_mean([r['best_val'] for r in these])} | "
                         f"{_mean([r['best_test'] for r in these])} | {_mean([r['epochs'] for r in these], 0)} | "
                         f"{_mean([r['trial_minutes'] for r in these], 1)} | {_mean([r['wall_s'] for r in these], 0)} |")
    timed = [r for r in rows if r["method"] == "random-workers"]
    for row in timed:
        row.setdefault("span_s", study_span(WORKER_SET, f"workers-{row['workers']}-{row['seed']}"))
    walls = {w: [r["wall_s"] for r in timed if r["workers"] == w] for w in (1, 2)}
    spans = {w: [r["span_s"] for r in timed if r["workers"] == w] for w in (1, 2)}
    if walls[1] and walls[2]:
        ratio = statistics.median(walls[1]) / statistics.median(walls[2])
        span_ratio = statistics.median(spans[1]) / statistics.median(spans[2])
        summary["workers"] = {"wall_s": walls, "span_s": spans, "speed-up": ratio, "speed-up of the trials": span_ratio}
        lines += ["", f"Random search on {WORKER_SET}, {timed[0]['trials']} trials, medians of {len(walls[1])} "
                      f"interleaved repeats: the command {statistics.median(walls[1]):.0f} s with 1 worker, "
                      f"{statistics.median(walls[2]):.0f} s with 2 ({ratio:.2f}x); first trial start to last trial end "
                      f"{statistics.median(spans[1]):.0f} s and {statistics.median(spans[2]):.0f} s ({span_ratio:.2f}x)."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in sets:  # one report per set, as a study writes it: the autopilot's, the first repeat still on disk
        task = SETS[name][0]
        folders = [BUILD / task / PROJECTS[task][0] / "runs" / PROJECTS[task][0] / f"bench-{name}-autopilot-{seed}"
                   for seed in REPEATS]
        folder = next((f for f in folders if (f / "report.md").is_file()), None)
        if folder is not None:
            shutil.copyfile(folder / "report.png", RESULTS / f"tune_report_{name}.png")
            text = (folder / "report.md").read_text().replace("(report.png)", f"(tune_report_{name}.png)")
            text = text.replace(f"{ROOT}/", "")  # paths relative to the repository, as a user there would type them
            (RESULTS / f"tune_report_{name}.md").write_text(text)
    (RESULTS / "tune.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "tune.json").write_text(json.dumps(summary, indent=1))
    plot(rows, sets)
    print("\n".join(lines))


def plot(rows: list[dict[str, Any]], sets: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(1, len(sets)), figsize=(4 * max(1, len(sets)), 3), squeeze=False)
    for ax, name in zip(axes[0], sets):
        mine = [r for r in rows if r["set"] == name and r["workers"] == 1 and r["method"] in METHODS]
        labels = ["default", *METHODS]
        for i, label in enumerate(labels):
            values = [r["default_test"] for r in mine] if label == "default" else \
                [r["best_test"] for r in mine if r["method"] == label]
            ax.scatter([i] * len(values), values, color="tab:orange" if label == "autopilot" else "tab:blue")
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_title(f"{name}: test accuracy of the choice", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "tune.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--no-workers", dest="workers", action="store_false", help="skip the 1 vs 2 workers timing")
    parser.add_argument("--workers-only", dest="studies", action="store_false",
                        help="only the 1 vs 2 workers timing (run it alone: it needs both cores)")
    parser.add_argument("--render", action="store_true", help="only the table and plot from the cache")
    options = parser.parse_args()
    cache = load_cache()
    if not options.render:
        measure(options.sets, options.trials, cache, options.workers, options.studies)
    render(cache)


if __name__ == "__main__":
    main()
