"""Train a baked project through its real CLI and read the offline W&B run back (shared by benchmarks)."""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from callbacks import OfflineRun, read_offline_run  # noqa: E402

PACKAGE = "sentiment_classifier"  # the package of a project baked with the default answers


def bake(task: str, project: Path) -> None:
    """A fresh project of ``task`` at ``project`` (its folder name is the default slug; old runs removed)."""
    from cookiecutter.main import cookiecutter

    shutil.rmtree(project, ignore_errors=True)
    cookiecutter(str(ROOT), no_input=True, output_dir=str(project.parent), overwrite_if_exists=True,
                 extra_context={"task": task})


#: task -> (the folder and the package of a project baked with the default answers)
PROJECTS = {"text_classification": ("sentiment-classifier", "sentiment_classifier"),
            "sequence_classification": ("sequence-classifier", "sequence_classifier"),
            "image_classification": ("image-classifier", "image_classifier")}


def project_of(task: str, build: Path) -> tuple[Path, str]:
    """The project of ``task`` under ``build`` (baked on first use) and its package name."""
    slug, package = PROJECTS[task]
    project = build / task / slug
    if not (project / "pyproject.toml").is_file():
        bake(task, project)
    return project, package


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


def isolated(function: Callable[..., dict], *args: Any) -> tuple[dict, float]:
    """``function(*args)`` in a forked child; returns its result and the peak RSS (MiB) of the processes it ran."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def target() -> None:
        try:
            result = function(*args)
            send.send(("ok", result, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            send.send(("error", f"{type(error).__name__}: {error}"[-3000:], 0.0))

    process = context.Process(target=target)
    process.start()
    status, result, rss = receive.recv()
    process.join()
    if status != "ok":
        raise RuntimeError(result)
    return result, rss
