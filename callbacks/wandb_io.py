"""W&B plumbing shared by the callbacks: find the logger, and read offline runs back.

``read_offline_run`` lets tests (and users without an account) check what a run logged:
an offline run writes ``run-<id>.wandb``, a LevelDB-log framed stream of
``wandb.proto.wandb_internal_pb2.Record`` protobufs, and wandb ships no reader for it.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import WandbLogger

_FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version 0
_RECORD_HEADER = struct.Struct("<IHB")  # crc32, length, type
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def find_wandb_logger(trainer: Trainer) -> Optional[WandbLogger]:
    """The trainer's first ``WandbLogger``, or ``None``."""
    return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)


def run_directory(trainer: Trainer) -> Path:
    """The run's own folder, where ``config.yaml``, ``checkpoints/`` and plots go.

    Same rule as ``ModelCheckpoint``: ``<save_dir>/<name>/<version>`` for a logger with a name
    and version but no log_dir of its own (W&B: ``runs/<project>/<run id>``), else
    ``trainer.log_dir``. Never a folder shared by several runs. Call it on every rank: it
    broadcasts rank zero's answer.
    """
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is not None and logger.name and logger.version is not None and not logger.log_dir:
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        path = Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / version
    elif logger is not None:  # as trainer.log_dir, whose broadcast would pair with nothing on other ranks
        path = Path(logger.log_dir or logger.save_dir or trainer.default_root_dir)
    else:
        path = Path(trainer.default_root_dir)
    # one broadcast on every rank, whatever each rank's logger knows: only rank zero's W&B run has an id
    return Path(trainer.strategy.broadcast(str(path), src=0))


def write_atomically(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write(temporary path)``, then rename it to ``path``: a full or read-only disk, or a
    concurrent run, never sees a half-written file, and a failed write leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_report(trainer: Trainer, folder: Path, name: str, text: str) -> Optional[Path]:
    """Write a report into the run folder atomically (``write_atomically``).

    Nothing is written under ``fast_dev_run``, whose promise is "nothing saved" (its run folder
    would be the working directory). Returns the path written, or ``None``.
    """
    if trainer.fast_dev_run:
        return None
    return write_atomically(folder / name, lambda partial: partial.write_text(text, encoding="utf-8"))


@dataclass
class OfflineRun:
    """What an offline W&B run recorded.

    Attributes:
        config: the run config, nested keys as nested dicts.
        history: one dict per ``log`` call (``_step`` included).
        summary: the final summary values.
        files: paths of files the run saved (relative to its ``files/`` folder).
        alerts: one dict (``title``, ``text``, ``level``) per ``run.alert`` call, in order.
        exit_code: the exit record's code, ``None`` while the run has not finished.
        run_id: the W&B run id (``wandb sync`` uploads into the run of this id).
        preempting: the run said it was preempted (``run.mark_preempting()``).
        group: the run's group (``WANDB_RUN_GROUP`` or the logger's ``group``), ``""`` when none.
        tags: the run's tags.
    """

    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    alerts: list[dict[str, str]] = field(default_factory=list)
    exit_code: Optional[int] = None
    run_id: Optional[str] = None
    preempting: bool = False
    group: str = ""
    tags: list[str] = field(default_factory=list)

    def metric(self, key: str) -> list[Any]:
        """Every logged value of ``key``, in order."""
        return [row[key] for row in self.history if key in row]


def iter_records(path: str | Path) -> list[bytes]:
    """Split a ``.wandb`` file into its record payloads (bytes), checking each CRC."""
    data = Path(path).read_bytes()
    if len(data) < _FILE_HEADER.size:
        return []
    ident, magic, version = _FILE_HEADER.unpack_from(data)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise ValueError(f"{path} is not a W&B run file (header {data[:7]!r}).")
    records, pending, offset = [], b"", _FILE_HEADER.size
    while offset + _RECORD_HEADER.size <= len(data):
        left_in_block = _BLOCK - offset % _BLOCK
        if left_in_block < _RECORD_HEADER.size:  # block trailer padding
            offset += left_in_block
            continue
        crc, length, kind = _RECORD_HEADER.unpack_from(data, offset)
        start = offset + _RECORD_HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or (crc == 0 and length == 0 and kind == 0):
            break  # a record still being written, or zero padding
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
            raise ValueError(f"{path}: corrupt record at byte {offset} (CRC mismatch).")
        offset = start + length
        if kind == _FULL:
            records.append(payload)
        elif kind == _FIRST:
            pending = payload
        elif kind == _MIDDLE:
            pending += payload
        elif kind == _LAST:
            records.append(pending + payload)
            pending = b""
    return records


def _set_nested(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = json.loads(item.value_json)


def read_offline_run(run_dir: str | Path, wait: float = 30.0) -> OfflineRun:
    """Parse an offline run folder (``.../wandb/offline-run-<time>-<id>``).

    Args:
        run_dir: the run folder holding ``run-<id>.wandb``.
        wait: seconds to wait for the final ``exit`` record; ``run.finish()`` may return
            before the file is complete.

    Raises:
        FileNotFoundError: no ``.wandb`` file in ``run_dir``.
    """
    from wandb.proto import wandb_internal_pb2  # imported here: wandb is slow to import

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}.")
    deadline = time.monotonic() + wait
    while True:
        run = OfflineRun()
        for payload in iter_records(files[0]):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.run_id = record.run.run_id
                run.group = record.run.run_group
                run.tags = list(record.run.tags)
                for item in record.run.config.update:
                    _set_nested(run.config, item)
            elif kind == "config":
                for item in record.config.update:
                    _set_nested(run.config, item)
            elif kind == "history":
                row: dict[str, Any] = {}
                for item in record.history.item:
                    _set_nested(row, item)
                run.history.append(row)
            elif kind == "summary":
                for item in record.summary.update:
                    _set_nested(run.summary, item)
            elif kind == "files":
                run.files.extend(f.path for f in record.files.files)
            elif kind == "alert":
                run.alerts.append({"title": record.alert.title, "text": record.alert.text, "level": record.alert.level})
            elif kind == "preempting":
                run.preempting = True
            elif kind == "exit":
                run.exit_code = record.exit.exit_code
        if run.exit_code is not None or time.monotonic() > deadline:
            return run
        time.sleep(0.2)
