"""LossDiagnosis (T54): the cases provoked on real MR training, read back from the offline W&B run."""

from __future__ import annotations

import math
import random
import re

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from torch import nn

from callbacks.loss_diagnosis import CASES, LossDiagnosis, diagnose, trend
from callbacks.wandb_io import read_offline_run
from datamodules import TextClassificationDataModule


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Runs without a logger write their files into the working directory: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


LN2 = math.log(2)


class ShuffledLabels(TextClassificationDataModule):
    """MR with the training labels permuted: nothing to learn that carries to validation."""

    def setup(self, stage: str) -> None:
        super().setup(stage)
        train = self.datasets["train"]
        labels = list(train.labels)
        random.Random(0).shuffle(labels)
        train.labels = labels


class WideModel(LightningModule):
    """Mean of 64-d word vectors → 256 ReLU units → classes: plenty of capacity for 100 sentences."""

    def __init__(self, vocab_size: int, num_classes: int, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.EmbeddingBag(vocab_size, 64, mode="mean", padding_idx=0)
        self.body = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, num_classes))

    def _loss(self, batch):
        return nn.functional.cross_entropy(self.body(self.embedding(batch["tokens"])), batch["labels"])

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def fit(model, data, diagnosis, *, epochs, logger=False, ckpt_path=None, callbacks=()):
    trainer = Trainer(max_epochs=epochs, callbacks=[diagnosis, *callbacks], logger=logger, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=bool(callbacks), num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def logged(root, model, data, epochs):
    """Fit with an offline W&B logger; the callback and the run read back."""
    diagnosis = LossDiagnosis()
    before = set((root / "wandb").glob("offline-run-*"))
    logger = WandbLogger(project="diagnosis-test", save_dir=str(root))
    try:
        fit(model, data, diagnosis, epochs=epochs, logger=logger)
    finally:
        logger.experiment.finish()
    (run_dir,) = set((root / "wandb").glob("offline-run-*")) - before
    run = read_offline_run(run_dir)
    assert run.exit_code == 0
    return diagnosis, run


def case_index(name: str) -> int:
    return list(CASES).index(name)


def test_far_too_high_lr_is_diverging(offline_wandb, tiny_model_class):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    diagnosis, run = logged(offline_wandb, tiny_model_class(data.vocab_size, data.num_classes, lr=1e4), data, 2)
    assert diagnosis.case == "diverging"  # decided at the first validation, before any trend exists
    assert run.summary["diagnosis/verdict"] == "diverging"
    assert "lower the learning rate" in run.summary["diagnosis/action"]
    (alert,) = run.alerts  # one alert: the case did not change at the second validation
    assert alert["title"] == "Loss diagnosis: diverging" and alert["level"] == "ERROR"
    assert "lower the learning rate" in alert["text"]
    assert run.metric("diagnosis/case") == [case_index("diverging")] * 2


def test_finite_blow_up_is_diverging_at_the_first_validation(offline_wandb, tiny_model_class, notices):
    # Adam's steps are bounded by the LR: at 1e17 the loss jumps to a finite ~1e34 and stays there (no NaN/Inf)
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    model = tiny_model_class(data.vocab_size, data.num_classes, lr=1e17, optimizer="adam")
    diagnosis, run = logged(offline_wandb, model, data, 2)
    assert all(math.isfinite(v) and v > 1e33 for v in diagnosis.train + diagnosis.val)
    assert run.metric("diagnosis/case") == [case_index("diverging")] * 2  # from the first validation on
    (change,) = diagnosis.changes
    assert change["case"] == "diverging" and change["epoch"] == 0
    assert re.search(r"train loss \d\.\d\de\+34 = \d\.\d\de\+34 x ln C; diverging above 1.5 x", change["text"])
    (alert,) = run.alerts
    assert alert["title"] == "Loss diagnosis: diverging" and alert["level"] == "ERROR"
    assert alert["text"] == change["text"] and "gradient_clip_val" in alert["text"]
    assert run.summary["diagnosis/verdict"] == "diverging"
    (line,) = notices(r"^LossDiagnosis: diverging: epoch 0, step \d+: the training loss blew up")  # a warning line
    assert "lower the learning rate (try a tenth)" in line and "max_loss_factor" in line


def test_unknown_number_of_classes_measures_against_the_initial_loss(tiny_model_class):
    # no data module and no hparams: C is unknown; the mean of the first interval is itself ~1e34, the
    # first step's loss (before any update) is ~ln 2, and the blow-up is still diagnosed at the first validation
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    data.setup("fit")
    diagnosis = LossDiagnosis()
    trainer = Trainer(max_epochs=1, callbacks=[diagnosis], logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(tiny_model_class(data.vocab_size, data.num_classes, lr=1e17, optimizer="adam"),
                train_dataloaders=data.train_dataloader(), val_dataloaders=data.val_dataloader())
    assert diagnosis.train[0] > 1e33 and abs(diagnosis.initial - LN2) < 0.1
    assert diagnosis.case == "diverging" and "x the initial loss" in diagnosis.changes[0]["text"]
    assert diagnosis.state_dict()["initial"] == diagnosis.initial


def test_diverging_needs_no_window_on_plain_numbers():
    found = diagnose([1e34], [1e34], LN2, window=3)
    assert found.case == "diverging" and found.train_trend is None
    assert found.detail == "train loss 1e+34 = 1.44e+34 x ln C; diverging above 1.5 x"
    assert diagnose([1e34], [math.inf], LN2).detail == "train loss 1e+34, val loss inf"
    assert diagnose([1e34], [1e34], None) is None  # C unknown: the first interval is no reference for itself
    assert diagnose([1e34], [1e34], None, initial=0.7).detail == "train loss 1e+34 = 1.43e+34 x the initial loss; " \
                                                                "diverging above 1.5 x"
    assert diagnose([0.7], [0.7], LN2) is None  # a healthy first point: wait for the window


def test_shuffled_labels_stay_stuck_at_ln_c_where_true_labels_learn(offline_wandb, tiny_model_class):
    torch.manual_seed(0)
    data = ShuffledLabels(limit=4000, batch_size=32)
    diagnosis, run = logged(offline_wandb, tiny_model_class(data.vocab_size, data.num_classes, lr=0.003,
                                                            optimizer="adam"), data, 3)
    assert all(abs(v - LN2) < 0.05 * LN2 for v in diagnosis.train + diagnosis.val)
    assert run.summary["diagnosis/verdict"] == "stuck"
    assert [a["title"] for a in run.alerts] == ["Loss diagnosis: stuck"]
    assert "check that the labels belong to the inputs" in run.alerts[0]["text"]
    assert run.metric("diagnosis/case") == [case_index("stuck")]  # the first diagnosis needs 3 validations

    # the control: the same model, data and budget with the true labels learns
    torch.manual_seed(0)
    control = LossDiagnosis()
    fit(tiny_model_class(data.vocab_size, data.num_classes, lr=0.003, optimizer="adam"),
        TextClassificationDataModule(limit=4000, batch_size=32), control, epochs=3)
    assert control.case == "learning"
    assert control.val[-1] < control.val[0] and control.train[-1] < control.train[0]


def test_tiny_data_and_a_big_model_overfit(offline_wandb):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=200, batch_size=16)
    diagnosis, run = logged(offline_wandb, WideModel(data.vocab_size, data.num_classes), data, 8)
    assert diagnosis.train[-1] < 0.1 * diagnosis.train[0]  # memorised
    assert diagnosis.val[-1] > min(diagnosis.val)
    assert run.summary["diagnosis/verdict"] == "overfitting"
    assert run.alerts[-1]["title"] == "Loss diagnosis: overfitting"
    assert "more dropout" in run.alerts[-1]["text"]
    assert run.metric("diagnosis/case")[-1] == case_index("overfitting")
    assert run.summary["diagnosis/changes"][-1].endswith(": overfitting")


@pytest.mark.parametrize(
    ("train", "val", "case"),
    [
        ([0.69, 0.60, 0.50], [0.68, 0.62, 0.57], "learning"),
        ([0.60, 0.40, 0.20], [0.55, 0.60, 0.70], "overfitting"),
        ([0.05, 0.05, 0.05], [0.55, 0.60, 0.70], "overfitting"),
        ([0.60, 0.50, 0.40], [0.55, 0.55, 0.551], "underfitting"),
        ([0.40, 0.40, 0.401], [0.50, 0.501, 0.50], "plateau"),
        ([0.40, 0.45, 0.50], [0.50, 0.55, 0.60], "architecture"),
        ([0.40, 0.45, 0.50], [0.60, 0.55, 0.50], "data"),
        ([0.70, 0.69, 0.695], [0.69, 0.70, 0.69], "stuck"),
        ([0.69, 5.0], [0.7, 3.0], "diverging"),
        ([0.69, math.nan], [0.7, 0.7], "diverging"),
        ([0.69, 0.6], [0.7, 0.65], None),  # fewer validations than the window
    ],
)
def test_the_cases_on_plain_numbers(train, val, case):
    found = diagnose(train, val, LN2, window=3)
    assert (found.case if found else None) == case
    if found is not None:
        assert found.action == CASES[case][1]


def test_trend_is_relative_slope():
    assert trend([1.0, 0.9, 0.8]) == pytest.approx(-0.1 / 0.9)
    assert trend([2.0, 2.0]) == 0.0
    with pytest.raises(ValueError, match="a trend needs at least 2 values, got 1."):
        trend([1.0])


def test_resume_keeps_the_history(tmp_path, tiny_model_class):
    def run(epochs, **kwargs):
        torch.manual_seed(0)
        data = TextClassificationDataModule(limit=400, batch_size=32)
        diagnosis = LossDiagnosis(window=2)
        fit(tiny_model_class(data.vocab_size, data.num_classes, optimizer="adam", lr=0.01), data, diagnosis,
            epochs=epochs, **kwargs)
        return diagnosis

    first = run(2, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    resumed = run(3, ckpt_path=str(tmp_path / "last.ckpt"), callbacks=[ModelCheckpoint(dirpath=tmp_path / "b")])
    assert len(resumed.val) == 3 and resumed.val[:2] == first.val and resumed.train[:2] == first.train
    assert resumed.changes[: len(first.changes)] == first.changes
    assert resumed.initial == first.initial  # the first step's loss of the first run, not of the resumed one
    fresh = LossDiagnosis()
    fresh.load_state_dict({})
    assert (fresh.train, fresh.val, fresh.case, fresh.changes, fresh.initial) == ([], [], None, [], None)


def test_missing_metric_warns_with_the_available_ones(tiny_model_class, notices):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=200, batch_size=32)
    fit(tiny_model_class(data.vocab_size, data.num_classes), data, LossDiagnosis(val_loss="val/nope"), epochs=1)
    assert notices(r"did not log `val/nope`.*Available metrics: .*val/loss")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 1}, "window must be an integer >= 2 (validations per trend), got 1."),
        ({"flat_tolerance": 0}, "flat_tolerance must be > 0, got 0."),
        ({"stuck_tolerance": -0.1}, "stuck_tolerance must be > 0, got -0.1."),
        ({"diverge_factor": 1.0}, "diverge_factor must be > 1, got 1.0."),
        ({"num_classes": 1}, "num_classes must be >= 2 or None (read from the model or data), got 1."),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        LossDiagnosis(**kwargs)
    assert str(error.value) == message
