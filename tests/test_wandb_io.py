"""Reading offline W&B runs back: the records a run wrote, framing and corruption."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
import wandb
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from callbacks import find_wandb_logger, read_offline_run
from callbacks.wandb_io import iter_records


def offline_run(root: Path, config: dict, rows: list[dict], summary: dict) -> Path:
    run = wandb.init(project="reader-test", dir=str(root), config=config)
    for row in rows:
        run.log(row)
    for key, value in summary.items():
        run.summary[key] = value
    run.finish()
    run_dir = Path(glob.glob(str(root / "wandb" / "offline-run-*"))[0])
    assert read_offline_run(run_dir).exit_code == 0  # finish() may return before the file is complete
    return run_dir


def test_reads_config_history_summary_files_and_exit(offline_wandb):
    big = "x" * 70_000  # a record longer than two 32 KiB blocks: FIRST, MIDDLE and LAST fragments
    rows = [{"loss": 1.0 / (i + 1), "val/acc": i / 100} for i in range(300)]
    run_dir = offline_run(offline_wandb, {"lr": 0.01, "model": {"hidden": 128}, "blob": big}, rows, {"best": 0.9})
    run = read_offline_run(run_dir)
    assert run.config["lr"] == 0.01 and run.config["model"] == {"hidden": 128} and run.config["blob"] == big
    assert run.metric("loss") == pytest.approx([row["loss"] for row in rows])
    assert run.metric("val/acc") == pytest.approx([row["val/acc"] for row in rows])
    assert run.summary["best"] == 0.9
    assert "requirements.txt" in run.files
    assert run.exit_code == 0


def test_corrupt_record_is_detected(offline_wandb):
    run_dir = offline_run(offline_wandb, {"lr": 0.1}, [{"loss": 1.0}], {})
    path = next(run_dir.glob("run-*.wandb"))
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt record at byte 7 \\(CRC mismatch\\)"):
        iter_records(path)


def test_not_a_wandb_file(tmp_path):
    path = tmp_path / "run-x.wandb"
    path.write_bytes(b"PK\x03\x04 not a run at all")
    with pytest.raises(ValueError, match="is not a W&B run file"):
        iter_records(path)
    with pytest.raises(FileNotFoundError, match="no run-\\*.wandb file in"):
        read_offline_run(tmp_path / "empty")


def test_unfinished_run_has_no_exit_code(offline_wandb):
    run_dir = offline_run(offline_wandb, {}, [{"loss": 1.0}], {})
    path = next(run_dir.glob("run-*.wandb"))
    records = iter_records(path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) - len(records[-1]) - 3])  # cut the tail
    run = read_offline_run(run_dir, wait=0.5)
    assert run.exit_code is None


def test_find_wandb_logger(offline_wandb):
    assert find_wandb_logger(Trainer(logger=CSVLogger(str(offline_wandb)))) is None
    logger = WandbLogger(project="find-test", save_dir=str(offline_wandb))
    assert find_wandb_logger(Trainer(logger=[CSVLogger(str(offline_wandb)), logger])) is logger
