"""The trial runner: many runs of this project's own CLI, each a subprocess a user could have typed.

A seed ensemble (T61, ``{{ cookiecutter.package_name }} ensemble``) is a list of :class:`Trial`
(``fit --config ... --seed_everything=3``) run one after another, or ``workers`` at a time as
separate processes; the tuner (``{{ cookiecutter.package_name }} tune``) runs one trial at a time per worker. Each trial's output goes to its own log file; when a run ends, the CLI writes
what it produced (run folder, best checkpoint, monitor, test metrics) as JSON to the file named by
``{{ cookiecutter.package_name | upper }}_TRIAL_RESULT`` in its environment, and the runner reads it back.
W&B groups the runs through ``WANDB_RUN_GROUP`` and tags them through ``WANDB_TAGS``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

RESULT_VARIABLE = "{{ cookiecutter.package_name | upper }}_TRIAL_RESULT"
TUNE_VARIABLE = "{{ cookiecutter.package_name | upper }}_TUNE_TRIAL"  # a tune trial: its study and trial id (JSON)
PACKAGE = "{{ cookiecutter.package_name }}"


@dataclass
class Trial:
    """One run: the CLI arguments after ``python -m {{ cookiecutter.package_name }}`` and extra environment."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class TrialResult:
    """How a trial ended: its exit status, what the run reported (``None`` if it wrote nothing) and its log."""

    trial: Trial
    returncode: int
    result: Optional[dict[str, Any]]
    log: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.result is not None


def write_result(values: dict[str, Any]) -> None:
    """In a run started by the runner: write ``values`` where it reads them (nothing otherwise)."""
    path = os.environ.get(RESULT_VARIABLE)
    if not path:
        return
    partial = Path(f"{path}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(values, indent=1, default=str), encoding="utf-8")
    partial.replace(path)


def command(trial: Trial) -> list[str]:
    """The command line of ``trial``."""
    return [sys.executable, "-m", PACKAGE, *trial.args]


def _parent_death_signal() -> None:
    """In the child, before it runs: SIGTERM when the process that started it dies (Linux), so that a trial
    never outlives a killed worker (it ends as a preempted run: a checkpoint saved, exit 143)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the child outlives a killed parent, as without this
        pass


def start(trial: Trial, log: Path, result_file: Path, threads: Optional[int] = None) -> tuple[subprocess.Popen, Any]:
    """Start ``trial`` with its output in ``log``; returns the process and the open log file."""
    env = {**os.environ, **trial.env, RESULT_VARIABLE: str(result_file)}
    if threads is not None:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    handle = log.open("w", encoding="utf-8")
    handle.write(" ".join(command(trial)) + "\n")
    handle.flush()
    process = subprocess.Popen(command(trial), env=env, stdout=handle, stderr=subprocess.STDOUT,
                               preexec_fn=_parent_death_signal)
    return process, handle


def _finish(trial: Trial, process: subprocess.Popen, result_file: Path, log: Path, started: float) -> TrialResult:
    result = json.loads(result_file.read_text(encoding="utf-8")) if result_file.is_file() else None
    if result_file.is_file():
        result_file.unlink()
    return TrialResult(trial, process.returncode, result, log, time.monotonic() - started)


def run_trial(trial: Trial, log_dir: Path, threads: Optional[int] = None) -> TrialResult:
    """Run one trial to its end (no progress bar: the caller shows progress). Ctrl+C waits for the run to stop
    and raises ``KeyboardInterrupt``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{trial.name}.log"
    result_file = log_dir / f".{trial.name}.{os.getpid()}.json"
    started = time.monotonic()
    process, handle = start(trial, log, result_file, threads)
    try:
        while process.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        process.wait()
        raise
    finally:
        handle.close()
    return _finish(trial, process, result_file, log, started)


def run_trials(trials: list[Trial], log_dir: Path, workers: int = 1, description: str = "trials") -> list[TrialResult]:
    """Run ``trials``, at most ``workers`` at a time, with a progress bar; results in the order of ``trials``.

    With several workers each process gets ``cores / workers`` threads (``OMP_NUM_THREADS``), so the
    processes do not fight over the cores. Ctrl+C reaches the runs too (they stop as a run stopped by
    Ctrl+C does); the runner waits for them and raises ``KeyboardInterrupt``.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    log_dir.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    pending = list(enumerate(trials))
    running: dict[int, tuple[subprocess.Popen, Path, Any, float]] = {}
    results: dict[int, TrialResult] = {}
    scratch = Path(tempfile.mkdtemp(prefix="trials-"))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, transient=False) as progress:
            bar = progress.add_task(description, total=len(trials))
            while pending or running:
                while pending and len(running) < workers:
                    index, trial = pending.pop(0)
                    result_file = scratch / f"{index}.json"
                    process, handle = start(trial, log_dir / f"{trial.name}.log", result_file, threads)
                    running[index] = (process, result_file, handle, time.monotonic())
                for index in [i for i, (p, *_) in running.items() if p.poll() is not None]:
                    process, result_file, handle, started = running.pop(index)
                    handle.close()
                    results[index] = _finish(trials[index], process, result_file,
                                             log_dir / f"{trials[index].name}.log", started)
                    progress.advance(bar)
                time.sleep(0.2)
    except KeyboardInterrupt:
        for process, *_ in running.values():
            process.wait()
        raise
    finally:
        for _, _, handle, _ in running.values():
            handle.close()
        for file in scratch.glob("*"):
            file.unlink()
        scratch.rmdir()
    return [results[i] for i in range(len(trials))]


def config_files(args: list[str]) -> list[str]:
    """The ``--config`` files among CLI arguments (``--config a.yaml`` and ``--config=a.yaml``), in order."""
    return [value for arg, value in zip(args, args[1:]) if arg == "--config"] + \
        [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]


def refuse(args: list[str], taken: tuple[str, ...], why: str) -> None:
    """Raise ``ValueError("<arg> <why>")`` for the first of ``taken`` among ``args`` (``--x v`` or ``--x=v``)."""
    for name in taken:
        if any(arg == name or arg.startswith(name + "=") for arg in args):
            raise ValueError(f"{name} {why}")


def fail(message: str) -> None:
    """A run-time failure of a many-runs command: one line, exit status 1 (as a failed run's)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def run_root(args: list[str], default_save_dir: str, default_project: str) -> Path:
    """Where the runs of these CLI arguments put their folders, ``<save_dir>/<project>``, read from the ``--config``
    files and ``--trainer.logger.init_args.save_dir``/``project`` overrides, without building the run."""
    values = {"save_dir": default_save_dir, "project": default_project}
    i = 0
    while i < len(args):
        key, _, value = args[i].partition("=")
        if not value and i + 1 < len(args) and args[i].startswith("--"):
            value = args[i + 1]
            i += 1
        if key == "--config" and Path(value).is_file():
            logger = ((yaml.safe_load(Path(value).read_text(encoding="utf-8")) or {}).get("trainer") or {}).get("logger")
            if isinstance(logger, list):  # several loggers: the first names the run folders, as in the CLI
                logger = logger[0] if logger else None
            init_args = logger.get("init_args") if isinstance(logger, dict) else None
            for name in values:
                if isinstance(init_args, dict) and init_args.get(name):
                    values[name] = str(init_args[name])
        for name in values:
            if key == f"--trainer.logger.init_args.{name}":
                values[name] = value
        i += 1
    return Path(values["save_dir"]) / values["project"]
