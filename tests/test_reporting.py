"""Reporting to any logger (callbacks/reporting.py), the task contract (callbacks/contract.py) and the figures.

The run summary and alerts reach W&B as summary values and alerts (read back from the offline run),
another Lightning logger (CSV) as scalars, and always ``summary.json`` and ``alerts.jsonl`` in the run folder.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from torch import nn

from callbacks import ConfusionMatrix, read_offline_run, report_alert, report_summary
from callbacks.contract import ClassificationData, TokenData, classification_data, num_classes
from callbacks.figures import confusion_counts
from callbacks.wandb_io import run_directory
from datamodules import SequenceClassificationDataModule, TextClassificationDataModule

VALUES = {"check/passed": True, "check/rate": 0.25, "check/verdict": "learning", "check/list": ["a", "b"]}


class Report(Callback):
    """Reports once the training ends, as the callbacks do."""

    def on_train_end(self, trainer, pl_module):
        report_summary(trainer, VALUES)
        report_alert(trainer, "Check: stuck", "both losses at ln C", "WARN")


def fit_with(logger, tiny_model_class, root) -> Trainer:
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=200, batch_size=32)
    trainer = Trainer(max_steps=2, logger=logger, callbacks=[Report()], enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                      limit_val_batches=0, default_root_dir=str(root))
    trainer.fit(tiny_model_class(data.vocab_size, data.num_classes), datamodule=data)
    return trainer


def test_another_logger_gets_the_numbers_and_the_run_folder_keeps_everything(tmp_path, tiny_model_class):
    trainer = fit_with(CSVLogger(str(tmp_path), name="csv"), tiny_model_class, tmp_path)
    folder = run_directory(trainer)
    trainer.logger.finalize("success")
    rows = list(csv.DictReader((folder / "metrics.csv").open(encoding="utf-8")))
    logged = {key: float(row[key]) for row in rows for key in row if key.startswith("check/") and row[key]}
    assert logged == {"check/passed": 1.0, "check/rate": 0.25}  # numbers and bools; words go to the file
    assert json.loads((folder / "summary.json").read_text()) == VALUES
    (alert,) = [json.loads(line) for line in (folder / "alerts.jsonl").read_text().splitlines()]
    assert alert["title"] == "Check: stuck" and alert["level"] == "WARN" and alert["step"] == 2


def test_wandb_gets_the_summary_and_the_alert(offline_wandb, tiny_model_class):
    logger = WandbLogger(project="reporting-test", save_dir=str(offline_wandb))
    trainer = fit_with(logger, tiny_model_class, offline_wandb)
    folder = run_directory(trainer)
    path = logger.experiment.dir
    logger.experiment.finish()
    run = read_offline_run(path.rsplit("/files", 1)[0], wait=30.0)
    assert {key: run.summary[key] for key in VALUES} == VALUES
    assert run.alerts == [{"title": "Check: stuck", "text": "both losses at ln C", "level": "WARN"}]
    assert json.loads((folder / "summary.json").read_text()) == VALUES


def test_a_bad_alert_level_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"level must be one of INFO, WARN, ERROR, got 'LOUD'"):
        report_alert(Trainer(logger=False, default_root_dir=str(tmp_path)), "t", "x", "LOUD")


def test_every_tasks_data_module_keeps_the_contract():
    text = TextClassificationDataModule(limit=200)
    series = SequenceClassificationDataModule(dataset="ItalyPowerDemand")
    assert isinstance(text, ClassificationData) and isinstance(text, TokenData)
    assert isinstance(series, ClassificationData) and not isinstance(series, TokenData)
    series.setup("fit")
    assert sum(series.class_counts("train")) == len(series.datasets["train"]) and series.labels == ["1", "2"]
    trainer = Trainer(logger=False)
    assert classification_data(trainer) is None  # no data module attached: nothing to read


class Fixed(LightningModule):
    """Predicts class ``series[:, 0, 0] > 0``: a known confusion matrix."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(1, 1)

    def test_step(self, batch, batch_idx):
        first = batch["series"][:, 0, 0]
        return {"logits": torch.stack([-first, first], dim=1)}


def test_the_confusion_matrix_counts_what_the_test_step_returned(tmp_path):
    """Labels ``1``/``2`` of ItalyPowerDemand's test split against the sign of the first (scaled) value."""
    data = SequenceClassificationDataModule(dataset="ItalyPowerDemand", batch_size=100)
    matrix = ConfusionMatrix()
    trainer = Trainer(logger=CSVLogger(str(tmp_path)), callbacks=[matrix], enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.test(Fixed(), datamodule=data, verbose=False)
    predicted, target = [], []
    for batch in data.test_dataloader():
        predicted.append((batch["series"][:, 0, 0] > 0).long())
        target.append(batch["labels"])
    expected = confusion_counts(torch.cat(predicted), torch.cat(target), 2)
    assert matrix.counts == expected and sum(map(sum, expected)) == 1029
    folder = run_directory(trainer)
    assert json.loads((folder / "confusion_test.json").read_text()) == {"labels": ["1", "2"], "counts": expected}
    assert (folder / "confusion_test.png").stat().st_size > 0
    assert num_classes(trainer, Fixed()) == 2  # from the data module when the model has no hparams


def test_confusion_counts():
    """Rows: true class, columns: predicted."""
    assert confusion_counts(torch.tensor([0, 2, 2, 1]), torch.tensor([0, 2, 1, 1]), 3) == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
