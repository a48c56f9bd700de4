"""A new user's first hour, timed: ``make demo`` from a fresh clone, then the generated project's tests.

    .venv/bin/python benchmarks/demo.py [--runs 3]

Each run clones this repository (its committed ``HEAD``) into an empty folder and runs
``make demo`` there with an empty ``HOME`` (no word-vector cache, no W&B login) but pip's own
cache kept warm (``PIP_CACHE_DIR``), as for someone who has installed these packages before.
Every output line is time-stamped; a clock callback (``benchmarks/first_step.py``) stamps the
first training step. Reported per run: the whole ``make demo`` wall time, the time from the fit
command's start to its first training step (start-up, word vectors, LR sweep and pre-flight
checks), and the best validation and test accuracy the demo prints. After the first run the
generated project's own test suite (``pytest`` in the project, as its README says) is timed, and the
default config is trained on a 200-row CSV of MR sentences given as the user's own file.

Writes benchmarks/results/demo.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROJECT = Path("build/demo/sentiment-classifier")


def timed_lines(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, list[tuple[float, str]]]:
    start = time.time()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append((time.time() - start, line.rstrip("\n")))
    return process.wait(), lines


def one_demo(tmp: Path, index: int) -> dict[str, float]:
    clone = tmp / f"clone-{index}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    home = tmp / f"home-{index}"
    home.mkdir()
    clock = tmp / f"first-step-{index}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "VIRTUAL_ENV", "PYTHON"))},
        "HOME": str(home),
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        "PYTHONPATH": str(ROOT / "benchmarks"), "FIRST_STEP_FILE": str(clock),
    }
    started = time.time()
    code, lines = timed_lines(["make", "demo", "FIT_ARGS=--trainer.callbacks+=first_step.FirstStepClock"], clone, env)
    wall = time.time() - started
    text = "\n".join(line for _, line in lines)
    if code != 0:
        raise RuntimeError(f"make demo failed ({code}):\n{text[-4000:]}")
    fit_start = next(t for t, line in lines if " fit " in line and "sentiment_classifier" in line)
    first_step = float(clock.read_text()) - started
    found = re.search(r"best val/acc: (0\.\d+)\s+test/acc: (0\.\d+)", text)
    assert found, text[-3000:]
    (run_dir,) = [p for p in (clone / PROJECT / "runs" / "sentiment-classifier").iterdir() if p.is_dir()]
    size = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file())
    row = {"wall": wall, "fit_to_first_step": first_step - fit_start, "install_and_bake": fit_start,
           "val": float(found.group(1)), "test": float(found.group(2)), "run_folder_mb": size / 1e6}
    print(f"run {index}: {row}", flush=True)
    return row


def project_tests(tmp: Path) -> float:
    clone = tmp / "clone-0"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "PYTHON"))}, "HOME": str(tmp / "home-0")}
    start = time.perf_counter()
    result = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-m", "pytest", "-q"], cwd=clone / PROJECT,
                            env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-4000:])
    print(f"generated project's tests: {seconds:.0f} s; {result.stdout.strip().splitlines()[-1]}", flush=True)
    return seconds


def own_csv(tmp: Path, repeats: int) -> tuple[float, str]:
    """``fit --config configs/default.yaml --data.data_path own.csv`` on 200 rows, cold cache: median wall s, corpus."""
    import csv

    from movie_reviews_rows import sample_rows

    clone = tmp / "clone-0"
    path = tmp / "own.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(sample_rows(200))
    walls, corpus = [], ""
    for repeat in range(repeats):
        home = tmp / f"home-own-{repeat}"
        home.mkdir()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "PYTHON"))}, "HOME": str(home)}
        start = time.perf_counter()
        result = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-m", "sentiment_classifier", "fit",
                                 "--config", "configs/default.yaml", "--data.data_path", str(path)],
                                cwd=clone / PROJECT, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-4000:])
        report = max((clone / PROJECT / "runs" / "sentiment-classifier").glob("*/word2vec.json"), key=lambda p: p.stat().st_mtime)
        corpus = json.loads(report.read_text())["corpus"]
        print(f"own 200-row CSV, default config: {walls[-1]:.0f} s, word vectors on {corpus}", flush=True)
    return statistics.median(walls), corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = [one_demo(tmp, i) for i in range(args.runs)]
        tests = project_tests(tmp)
        own_seconds, own_corpus = own_csv(tmp, args.runs)
    lines = [
        f"`make demo` from a fresh clone, {args.runs} runs, empty HOME (cold word-vector cache, no W&B login), "
        "pip's cache warm; 2-core machine running nothing else.",
        "",
        "| run | make demo (min:s) | install + bake (s) | fit command to first training step (s) | best val acc | test acc | run folder (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rows):
        lines.append(f"| {i + 1} | {int(row['wall'] // 60)}:{row['wall'] % 60:04.1f} | {row['install_and_bake']:.0f} | "
                     f"{row['fit_to_first_step']:.0f} | {row['val']:.4f} | {row['test']:.4f} | {row['run_folder_mb']:.1f} |")
    median = statistics.median(r["wall"] for r in rows)
    lines += [
        f"| median | {int(median // 60)}:{median % 60:04.1f} | {statistics.median(r['install_and_bake'] for r in rows):.0f} | "
        f"{statistics.median(r['fit_to_first_step'] for r in rows):.0f} | "
        f"{statistics.median(r['val'] for r in rows):.4f} | {statistics.median(r['test'] for r in rows):.4f} | "
        f"{statistics.median(r['run_folder_mb'] for r in rows):.1f} |",
        "",
        f"The generated project's own tests (`pytest` in `{PROJECT}`, all of them): {tests:.0f} s.",
        "",
        f"A 200-row CSV of one's own (`fit --config configs/default.yaml --data.data_path own.csv`, cold cache, "
        f"median of {args.runs}): {own_seconds:.0f} s from the command to the end of training and testing; word vectors "
        f"on {own_corpus}.",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
