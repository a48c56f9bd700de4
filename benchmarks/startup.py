"""Generation time and CLI start-up, measured side by side in one run.

    .venv/bin/python benchmarks/startup.py [--repeats 7]

Bakes the template with default answers (timed), then alternates ``python -c "import lightning"``
(the anchor: nothing can start faster than its own framework) with the generated project's
``python -m <package> --help`` and reports medians. Writes benchmarks/results/startup.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bake_times = []
        for i in range(args.repeats):
            start = time.perf_counter()
            project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=str(Path(tmp) / f"b{i}")))
            bake_times.append(time.perf_counter() - start)
        command_times = [
            timed([sys.executable, "-m", "cookiecutter", str(ROOT), "--no-input", "-o", str(Path(tmp) / f"c{i}")],
                  dict(os.environ), ROOT)
            for i in range(args.repeats)
        ]
        env = {**os.environ, "PYTHONPATH": str(project / "src")}
        package = "sentiment_classifier"
        anchor, ours = [], []
        timed([sys.executable, "-m", package, "--help"], env, project)  # warm the file cache once
        for _ in range(args.repeats):  # interleaved: A B A B ...
            anchor.append(timed([sys.executable, "-c", "import lightning"], env, project))
            ours.append(timed([sys.executable, "-m", package, "--help"], env, project))

    bake, a, o = statistics.median(bake_times), statistics.median(anchor), statistics.median(ours)
    table = "\n".join(
        [
            f"Medians of {args.repeats} interleaved runs.",
            "",
            "| measurement | median (s) |",
            "|---|---|",
            f"| generation (`cookiecutter --no-input`, in-process) | {bake:.3f} |",
            f"| generation (the `cookiecutter` command, Python start-up included) | {statistics.median(command_times):.2f} |",
            f'| `python -c "import lightning"` (anchor) | {a:.2f} |',
            f"| `python -m {package} --help` | {o:.2f} |",
            f"| start-up added by the CLI | {o - a:+.2f} ({o / a:.2f}x) |",
            "",
        ]
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
