"""Shared fixtures.

Every test runs in its own empty folder (so ``runs/`` lands there) with Weights & Biases
cut off from the user's account: ``HOME`` and ``NETRC`` point into the test folder and every
``WANDB_*`` variable is removed, so runs go offline by themselves, exactly as they do for a
user who has not logged in. The logger is never mocked: tests read the real offline run
back from ``runs/wandb/offline-run-*/``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = PROJECT_ROOT / "configs"
DEFAULT_CONFIG = CONFIGS / "default.yaml"
PRESETS = CONFIGS / "presets"
#: A stratified slice of MR: a fit takes seconds.
LIMIT = 600


def wandb_project() -> str:
    """The W&B project of the default config, which names the folder ``runs/<project>/``."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    return config["trainer"]["logger"]["init_args"]["project"]


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """Train on one CPU thread: as fast for these tiny models, and not slowed 3x by a busy neighbour.

    Also imports the project once here, outside any test's output capture: Lightning's log
    handler keeps the ``sys.stderr`` of the moment it is imported, and a test's capture
    closes when that test ends.
    """
    import torch

    import {{ cookiecutter.package_name }}.cli  # noqa: F401

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stop_wandb_service() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


@pytest.fixture(autouse=True)
def isolated_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in ``tmp_path`` with no W&B credentials, mode or server set.

    wandb starts one background service per process, which keeps the environment and the
    working directory it started with (and resolves the relative ``save_dir: runs`` against
    that directory). It is stopped after each test so the next test's runs get a service
    that started in, and with the environment of, that test.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    for name in list(os.environ):
        if name.startswith("WANDB_"):  # WANDB_API_KEY, WANDB_MODE, WANDB_BASE_URL, WANDB_DIR, ...
            monkeypatch.delenv(name)
    # main() sets WANDB_SILENT with os.environ.setdefault; registering it here undoes that after the test
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    monkeypatch.chdir(tmp_path)
    _stop_wandb_service()
    yield tmp_path
    _stop_wandb_service()


class Workspace:
    """The test's folder: run the CLI in-process and find what the runs wrote."""

    project_root = PROJECT_ROOT
    default_config = DEFAULT_CONFIG
    presets = PRESETS
    limit = LIMIT

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = wandb_project()

    def main(self, *args: Any) -> None:
        """``python -m {{ cookiecutter.package_name }} *args``, in this process."""
        from {{ cookiecutter.package_name }}.cli import main

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", ["{{ cookiecutter.package_name }}"])  # not pytest's arguments
            main([str(arg) for arg in args])

    def error(self, *args: Any) -> tuple[Any, str]:
        """``main(*args)`` that must fail: its exit status and the message it printed on stderr."""
        printed = io.StringIO()
        with contextlib.redirect_stderr(printed), pytest.raises(SystemExit) as exit_info:
            self.main(*args)
        return exit_info.value.code, printed.getvalue()

    def cli(self, *args: Any) -> Any:
        """``ProjectCLI(args, run=False)``: the configured model, data and trainer, nothing run."""
        from {{ cookiecutter.package_name }}.cli import ProjectCLI

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", ["{{ cookiecutter.package_name }}"])
            return ProjectCLI(args=[str(arg) for arg in args], run=False)

    def fit(self, *args: Any, epochs: int = 2, limit: int = LIMIT) -> None:
        """``fit --config configs/default.yaml`` on a small slice of MR, plus ``args``.

        Word2vec trains on that slice alone: with the IMDB reviews (``data.unlabelled``) it takes minutes.
        """
        self.main(
            "fit", "--config", DEFAULT_CONFIG,
            "--data.limit", limit, "--trainer.max_epochs", epochs, "--data.unlabelled", "null",
            *args,
        )

    def run_dirs(self) -> dict[str, Path]:
        """Run id -> ``runs/<project>/<run id>/``."""
        folder = self.root / "runs" / self.project
        if not folder.is_dir():
            return {}
        return {path.name: path for path in folder.iterdir() if path.is_dir()}

    def wandb_dir(self, run_id: str) -> Path:
        """The offline W&B folder of a run: ``runs/wandb/offline-run-<time>-<run id>``."""
        matches = sorted((self.root / "runs" / "wandb").glob(f"offline-run-*-{run_id}"))
        assert len(matches) == 1, f"expected one offline W&B run for {run_id}, found {matches}"
        return matches[0]

    def offline_run(self, run_id: str) -> Any:
        """The offline W&B run read back, once its final ``exit`` record is written."""
        from {{ cookiecutter.package_name }}.callbacks import read_offline_run

        run = read_offline_run(self.wandb_dir(run_id), wait=30.0)
        assert run.exit_code is not None, "the offline run never wrote its exit record"
        return run


@pytest.fixture
def workspace(isolated_wandb: Path) -> Workspace:
    return Workspace(isolated_wandb)
