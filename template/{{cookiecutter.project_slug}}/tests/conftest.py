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
{%- if cookiecutter.task == "text_classification" %}
#: A stratified slice of MR, word vectors trained on it alone (the IMDB reviews take minutes): a fit takes seconds.
QUICK = ("--data.limit", 600, "--data.unlabelled", "null")
{%- elif cookiecutter.task == "sequence_classification" %}
#: JapaneseVowels: 270 short training series (7-26 steps) of 12 channels, unequal lengths, 9 classes; seconds a fit.
QUICK = ("--data.dataset", "JapaneseVowels")
{%- elif cookiecutter.task == "image_classification" %}
#: the bundled digits: 1,008 training images of 8x8, 8 batches an epoch; seconds a fit.
QUICK = ("--data.dataset", "digits")
{%- endif %}


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
    quick = QUICK  # the data arguments of a quick fit

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

    def fit(self, *args: Any, epochs: int = 2) -> None:
        """``fit --config configs/default.yaml`` on the quick data (``QUICK``) for ``epochs``, plus ``args``."""
        self.main("fit", "--config", DEFAULT_CONFIG, *QUICK, "--trainer.max_epochs", epochs, *args)

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

    def only_run(self) -> tuple[str, Path]:
        """(run id, run folder) of the one run the test made."""
        runs = self.run_dirs()
        assert len(runs) == 1, f"expected exactly one run, got {sorted(runs)}"
        return next(iter(runs.items()))

    @staticmethod
    def checkpoints(run_dir: Path) -> tuple[Path, Path]:
        """(best, last) checkpoint of a run directory."""
        folder = run_dir / "checkpoints"
        best = sorted(folder.glob("best-*.ckpt"))
        assert len(best) == 1, f"expected one best checkpoint in {folder}, got {sorted(folder.iterdir())}"
        last = folder / "last.ckpt"
        assert last.is_file(), f"no last.ckpt in {folder}"
        return best[0], last

    @staticmethod
    def subprocess_env() -> dict[str, str]:
        """The test's (W&B-isolated) environment, with this package importable in a child process."""
        import {{ cookiecutter.package_name }}

        env = dict(os.environ)
        source = str(Path({{ cookiecutter.package_name }}.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH", "")]))
        env.setdefault("OMP_NUM_THREADS", "1")  # as conftest does in-process: immune to a busy neighbour
        return env


@pytest.fixture
def workspace(isolated_wandb: Path) -> Workspace:
    return Workspace(isolated_wandb)
