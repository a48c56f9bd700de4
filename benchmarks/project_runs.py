"""Train a baked project through its real CLI and read the offline W&B run back (shared by benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from callbacks import OfflineRun, read_offline_run  # noqa: E402

PACKAGE = "sentiment_classifier"  # the package of a project baked with the default answers


def run_cli(project: Path, extra: list[str], seed: int, epochs: int, env: dict[str, str] | None = None,
            package: str = PACKAGE) -> float:
    """``fit --config configs/default.yaml <extra>`` on one thread with W&B offline; returns its wall seconds.

    ``env`` adds to (or overrides) the environment, e.g. a longer ``PYTHONPATH``; ``package`` is the
    project's package (``python -m <package>``).
    """
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
           **(env or {})}
    command = [
        sys.executable, "-m", package, "fit", "--config", "configs/default.yaml", *extra,
        "--seed_everything", str(seed), "--trainer.max_epochs", str(epochs), "--trainer.enable_progress_bar", "false",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def fit(project: Path, extra: list[str], seed: int, epochs: int, env: dict[str, str] | None = None,
        package: str = PACKAGE) -> tuple[OfflineRun, float]:
    """:func:`run_cli`, then the offline W&B run it wrote, read back; returns the run and seconds."""
    runs = project / "runs" / "wandb"
    before = set(runs.glob("offline-run-*"))
    elapsed = run_cli(project, extra, seed, epochs, env, package)
    return read_offline_run(next(iter(set(runs.glob("offline-run-*")) - before))), elapsed
