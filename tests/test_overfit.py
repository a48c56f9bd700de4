"""OverfitCheck (T51): k fixed, mixed batches; PASS when memorised, FAIL (with the reason) otherwise."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from callbacks.overfit import OverfitCheck
from callbacks.wandb_io import read_offline_run
from datamodules import TextClassificationDataModule


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Runs without a logger write their files into the working directory: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


class Classifier(LightningModule):
    """Mean of word vectors → linear, logging ``train/acc`` per epoch as the project's model does."""

    def __init__(self, vocab_size: int, num_classes: int, lr: float = 0.05) -> None:
        super().__init__()
        self.lr = lr
        self.embedding = nn.EmbeddingBag(vocab_size, 64, mode="mean", padding_idx=0)
        self.head = nn.Linear(64, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")

    def training_step(self, batch, batch_idx):
        logits = self.head(self.embedding(batch["tokens"]))
        self.train_acc(logits, batch["labels"])
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return nn.functional.cross_entropy(logits, batch["labels"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class OneClass(TextClassificationDataModule):
    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.datasets["train"].labels = [0] * len(self.datasets["train"])


class Recorder(Callback):
    def __init__(self) -> None:
        self.batches: dict[int, list] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.setdefault(trainer.current_epoch, []).append(batch)


def fit(check, *, lr=0.05, max_steps=200, data_class=TextClassificationDataModule, logger=False, callbacks=(),
        bucketing=False):
    torch.manual_seed(0)
    data = data_class(limit=600, batch_size=32, bucketing=bucketing)
    trainer = Trainer(max_epochs=-1, max_steps=max_steps, limit_val_batches=0, callbacks=[check, *callbacks],
                      logger=logger, log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False)
    trainer.fit(Classifier(data.vocab_size, data.num_classes, lr=lr), datamodule=data)
    return trainer, data


def test_memorises_four_fixed_mixed_batches_and_passes(offline_wandb, capsys):
    check, recorder = OverfitCheck(num_batches=4), Recorder()
    logger = WandbLogger(project="overfit-test", save_dir=str(offline_wandb))
    try:
        trainer, data = fit(check, logger=logger, callbacks=[recorder])
    finally:
        logger.experiment.finish()
    assert check.passed is True and check.acc == 1.0 and check.loss <= 0.05
    assert trainer.global_step < 200 and trainer.global_step % 4 == 0  # stopped early, after whole epochs
    epochs = list(recorder.batches.values())
    assert all(len(batches) == 4 for batches in epochs)
    for batches in epochs[1:]:  # the same four batches every epoch
        assert all(torch.equal(a["tokens"], b["tokens"]) for a, b in zip(epochs[0], batches))
    assert set(torch.cat([b["labels"] for b in epochs[0]]).tolist()) == {0, 1}
    assert "train_dataloader" not in vars(data)  # the data module is given back unchanged
    assert "Overfit test PASS" in capsys.readouterr().out

    run = read_offline_run(next((offline_wandb / "wandb").glob("offline-run-*")))
    assert run.summary["overfit/passed"] is True and run.summary["overfit/steps"] == trainer.global_step
    assert run.summary["overfit/classes"] == 2 and run.summary["overfit/message"].startswith("Overfit test PASS")


@pytest.mark.parametrize("bucketing", [False, True])
def test_trains_on_the_examples_it_promises_with_or_without_bucketing(bucketing):
    # length bucketing gives the loader a batch sampler and no batch_size: still k batches of batch_size examples
    check, recorder = OverfitCheck(num_batches=4), Recorder()
    trainer, _ = fit(check, callbacks=[recorder], bucketing=bucketing)
    first = recorder.batches[0]
    assert [len(b["labels"]) for b in first] == [32, 32, 32, 32] and check.examples == 128
    rows = {tuple(row.tolist()) for b in first for row in b["tokens"]}
    assert len(rows) > 120  # 128 examples (a few short texts may coincide), not 4 examples of one each
    assert trainer.max_epochs == 50  # ceil(max_steps 200 / 4 batches): the progress bar shows "Epoch i/49"
    assert "(128 examples)" in check.message


def test_fails_when_the_budget_runs_out(capsys):
    check = OverfitCheck()
    fit(check, lr=1e-6, max_steps=12)
    assert check.passed is False and check.loss > 0.05
    out = capsys.readouterr().out
    assert "Overfit test FAIL" in out and "after 12 steps" in out and "raise the LR" in out


def test_fails_at_once_on_a_single_class():
    check = OverfitCheck()
    trainer, _ = fit(check, data_class=OneClass)
    assert check.passed is False and trainer.global_step == 4  # one epoch
    assert "hold one class only ([0])" in check.message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_batches": 0}, "num_batches must be an integer >= 1, got 0."),
        ({"loss_threshold": 0}, "loss_threshold must be > 0, got 0."),
        ({"acc_threshold": 1.5}, "acc_threshold must be in (0, 1], got 1.5."),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        OverfitCheck(**kwargs)
    assert str(error.value) == message
