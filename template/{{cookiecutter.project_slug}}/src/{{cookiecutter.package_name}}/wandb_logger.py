"""A WandbLogger that never makes training fail or hang because W&B is unreachable.

- Not logged in (no ``WANDB_API_KEY``, no netrc entry) and ``WANDB_MODE`` unset: the run
  goes offline by itself and says so.
- Logged in but the server does not answer within ``init_timeout`` seconds: it warns and
  goes offline instead of failing.
- Offline runs end with the exact commands that upload them later (``wandb login``, then
  ``wandb sync <run folder>``).
- A resumed fit continues the interrupted run's id (``resume``): online, W&B resumes that run;
  offline, a new folder holds records of the same id, which ``wandb sync`` adds to that run.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only


def wandb_logged_in() -> bool:
    """Whether wandb has credentials: ``WANDB_API_KEY`` or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _say(message: str) -> None:
    print(f"[wandb] {message}", file=sys.stderr, flush=True)


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger``, made safe to use with no account and no network.

    Args:
        init_timeout: seconds to wait for the W&B server before going offline.
        *args, **kwargs: as for ``lightning.pytorch.loggers.WandbLogger``.

    Example::

        trainer:
          logger:
            class_path: my_project.wandb_logger.WandbLogger
            init_args:
              project: my-project
              save_dir: runs
    """

    def __init__(self, *args: Any, init_timeout: float = 30.0, **kwargs: Any) -> None:
        if init_timeout <= 0:
            raise ValueError(f"init_timeout must be > 0 seconds, got {init_timeout}.")
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:  # Lightning always passes it; wandb warns it is deprecated
            self._wandb_init.pop("anonymous", None)
        self._init_timeout = init_timeout
        self._went_offline = False

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        import wandb

        if not self._offline and "WANDB_MODE" not in os.environ and not wandb_logged_in():
            _say("not logged in (no WANDB_API_KEY, no netrc entry): logging this run offline.")
            self._wandb_init["mode"] = "offline"
        settings = self._wandb_init.get("settings")  # LightningCLI passes settings=None explicitly
        if settings is None:
            settings = wandb.Settings(init_timeout=self._init_timeout)
        elif isinstance(settings, dict):
            settings = wandb.Settings(**{"init_timeout": self._init_timeout, **settings})
        self._wandb_init["settings"] = settings
        if self._wandb_init.get("dir"):
            # wandb's background service resolves relative paths against the folder *it* started in
            self._wandb_init["dir"] = os.path.abspath(self._wandb_init["dir"])
        try:
            return super().experiment
        except Exception as err:  # wandb raises CommError, UsageError, TimeoutError, ...
            if self._wandb_init.get("mode") == "offline" or os.environ.get("WANDB_MODE") in ("offline", "dryrun"):
                raise
            _say(f"could not reach W&B ({type(err).__name__}: {err}); logging this run offline instead.")
            self._wandb_init["mode"] = "offline"
            self._experiment = None
            return super().experiment

    def resume(self, run_id: str) -> None:
        """Log into the run ``run_id`` (a resumed fit) instead of a new one; call before the run starts."""
        if self._experiment is not None:
            raise RuntimeError("WandbLogger.resume must be called before the W&B run starts.")
        self._id = self._wandb_init["id"] = run_id
        self._wandb_init["resume"] = "allow"

    @property
    def run_dir(self) -> Optional[Path]:
        """The local folder of the W&B run (``.../wandb/offline-run-<time>-<id>``)."""
        experiment = self.experiment
        return Path(experiment.dir).resolve().parent if getattr(experiment, "dir", None) else None

    def finish_lines(self) -> list[str]:
        """Where the run is and, for an offline run, the two commands that upload it."""
        if self._experiment is None:
            return []
        run_dir, url = self.run_dir, getattr(self._experiment, "url", None)
        if self._experiment.settings.mode in ("offline", "dryrun") and run_dir is not None:
            shown = _relative(run_dir)
            return [f"W&B run:     offline, in {shown}", f"  to upload it: wandb login, then wandb sync {shown}"]
        return [f"W&B run:     {url}"] if url else []

    @rank_zero_only
    def finish(self, quiet: bool = False, exit_code: Optional[int] = None) -> None:
        """Close the W&B run; unless ``quiet``, print where it is (and how to upload an offline run)."""
        if self._experiment is None:
            return
        lines = self.finish_lines()
        self._experiment.finish(exit_code=exit_code)
        if not quiet:
            for line in lines:
                _say(line)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
