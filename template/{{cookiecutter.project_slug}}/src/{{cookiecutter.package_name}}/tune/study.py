"""The study on Optuna's storages: which storage for which URL, one claim at a time, and lost trials retried.

* A path (the default, ``<study folder>/study.journal``): Optuna's journal file, safe for several processes on
  one machine (SQLite is not, for parallel writers). A worker that dies leaves its trial ``RUNNING``; the next
  worker on that machine finds the process gone, fails the trial and queues it again.
* ``postgresql://...`` or ``mysql://...``: Optuna's RDB storage, with heartbeats: a trial whose worker stops
  beating for ``grace`` seconds (a machine lost, a process killed) is failed and queued again by every
  other worker (``RetryHeartbeatStaleTrialCallback``).

Workers claim trials one at a time under a lock (a file lock next to the journal, an advisory lock in
PostgreSQL, ``GET_LOCK`` in MySQL), so two workers never take the same configuration.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import threading
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from .plan import Record

MAX_RETRY = 2  # a trial lost with its worker runs again at most twice
RDB_SCHEMES = ("postgresql", "mysql", "sqlite")


def is_rdb(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in RDB_SCHEMES


def open_storage(url: str, heartbeat: Optional[int] = 10, grace: Optional[int] = None) -> Any:
    """The storage behind ``url``: an RDB URL (with heartbeats every ``heartbeat`` seconds unless ``None``),
    or a journal file path."""
    if is_rdb(url) and heartbeat is None:
        return optuna.storages.RDBStorage(url)
    if is_rdb(url):
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9; they are what we need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=grace or 3 * heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
    path = Path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


_ENGINES: dict[str, Any] = {}


@contextlib.contextmanager
def claim_lock(url: str, study_name: str) -> Iterator[None]:
    """One worker at a time decides and creates the next trial."""
    if not is_rdb(url) or url.startswith("sqlite"):
        lock_path = Path(url.split("///", 1)[-1] if url.startswith("sqlite") else url).with_suffix(".lock")
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    import sqlalchemy

    key = int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:7], "big")
    if url not in _ENGINES:  # a connection of our own for the lock, beside Optuna's
        _ENGINES[url] = sqlalchemy.create_engine(url, pool_pre_ping=True)
    with _ENGINES[url].connect() as connection:
        if url.startswith("postgresql"):
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            unlock = ("SELECT pg_advisory_unlock(:key)", {"key": key})
        else:
            connection.execute(sqlalchemy.text("SELECT GET_LOCK(:name, -1)"), {"name": f"tune-{key}"})
            unlock = ("SELECT RELEASE_LOCK(:name)", {"name": f"tune-{key}"})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text(unlock[0]), unlock[1])
            connection.commit()


def worker_id() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_lost_trials(study: optuna.Study, url: str) -> list[int]:
    """Fail the running trials whose worker is gone and queue each again; returns their numbers.

    RDB: Optuna's heartbeat check (any machine). Journal: a trial of a worker on this machine whose process no
    longer exists (killed, or a ``tune`` interrupted and run again)."""
    if is_rdb(url):
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():  # "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        return sorted(before - after)
    lost = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        if worker.get("host") == host and not _alive(int(worker.get("pid", 0))):
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                study._storage.set_trial_user_attr(trial._trial_id, "lost", True)
                RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, study._storage.get_trial(trial._trial_id))
                lost.append(trial.number)
    return lost


class Heartbeat:
    """Beat for a running trial (RDB storages only) until the trial ends."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None

    def __enter__(self) -> "Heartbeat":
        if self.interval:
            self._storage.record_heartbeat(self._trial_id)
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self._storage.record_heartbeat(self._trial_id)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.RUNNING: "running",
          TrialState.WAITING: "waiting"}


def state_of(trial: FrozenTrial) -> Optional[str]:
    """The plan's name for a trial's state; ``None`` for a trial interrupted or lost (to be run again)."""
    if trial.state == TrialState.FAIL:
        return "failed" if trial.user_attrs.get("failure") == "run" else None
    return STATES.get(trial.state)


def records(study: optuna.Study) -> list[Record]:
    """The study's trials as the plan sees them (interrupted and lost ones left out)."""
    found = []
    for trial in study.get_trials(deepcopy=False):
        state = state_of(trial)
        if state is None or "params" not in trial.user_attrs:
            continue
        found.append(Record(dict(trial.user_attrs["params"]), state,
                            trial.value if trial.state == TrialState.COMPLETE else None,
                            dict(trial.user_attrs.get("facts") or {})))
    return found


def make_pruner(settings: dict[str, Any]) -> optuna.pruners.BasePruner:
    """Optuna's ``PercentilePruner``: a trial whose best value so far is in the bottom of the trials at the same
    epoch stops (``keep_percentile`` 75: the worst quarter), never before ``warmup_epochs`` and ``startup_trials``."""
    if not settings.get("enabled", True):
        return optuna.pruners.NopPruner()
    return optuna.pruners.PercentilePruner(
        float(settings.get("keep_percentile", 75.0)), n_startup_trials=int(settings.get("startup_trials", 3)),
        n_warmup_steps=int(settings.get("warmup_epochs", 3)), n_min_trials=int(settings.get("startup_trials", 3)))
