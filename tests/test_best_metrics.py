"""BestMetrics (T57): the W&B summary holds the best checkpoint's epoch, the last epoch under final/."""

from __future__ import annotations

import glob
import json

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from callbacks import BestMetrics, read_offline_run
from callbacks.best_metrics import summary_values
from callbacks.wandb_io import run_directory
from datamodules import TextClassificationDataModule


class ValLosses(Callback):
    def __init__(self):
        self.values = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.values.append(float(trainer.callback_metrics["val/loss"]))


def test_summary_holds_the_best_epoch_and_the_final_one(offline_wandb, tiny_model_class):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    logger = WandbLogger(project="best-metrics-test", save_dir=str(offline_wandb))
    losses, best = ValLosses(), BestMetrics()
    checkpoint = ModelCheckpoint(monitor="val/loss", mode="min", save_top_k=1)
    trainer = Trainer(max_epochs=6, logger=logger, callbacks=[checkpoint, best, losses], enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(tiny_model_class(data.vocab_size, data.num_classes, lr=20.0), datamodule=data)  # noisy: not monotonic
    folder = run_directory(trainer)
    logger.experiment.finish()

    best_epoch = min(range(len(losses.values)), key=losses.values.__getitem__)
    assert best_epoch < len(losses.values) - 1, "the test needs a run whose best epoch is not its last"
    run = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    assert run.metric("val/loss") == pytest.approx(losses.values)  # the history keeps every epoch
    assert run.summary["val/loss"] == pytest.approx(losses.values[best_epoch])  # the summary: the checkpoint's epoch
    assert run.summary["val/loss"] == pytest.approx(float(checkpoint.best_model_score))
    assert run.summary["final/val/loss"] == pytest.approx(losses.values[-1])
    assert run.summary["best/epoch"] == best_epoch
    assert json.loads((folder / "best_metrics.json").read_text())["best/epoch"] == best_epoch


def _fit(tiny_model_class, tmp_path, callbacks, epochs, ckpt_path=None):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    trainer = Trainer(max_epochs=epochs, logger=False, callbacks=callbacks, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    trainer.fit(tiny_model_class(data.vocab_size, data.num_classes, lr=20.0), datamodule=data, ckpt_path=ckpt_path)
    return trainer


def test_resume_keeps_the_history_of_the_epochs_before_the_stop(tmp_path, tiny_model_class):
    first = BestMetrics()
    _fit(tiny_model_class, tmp_path / "a", [ModelCheckpoint(monitor="val/loss", save_top_k=1),
                                            ModelCheckpoint(filename="last"), first], 3)
    best, resumed = ModelCheckpoint(monitor="val/loss", save_top_k=1), BestMetrics()
    _fit(tiny_model_class, tmp_path / "b", [best, ModelCheckpoint(filename="last"), resumed], 6,
         ckpt_path=str(next((tmp_path / "a").rglob("last.ckpt"))))
    assert [epoch for epoch, _ in resumed.history] == list(range(6))
    assert resumed.history[:3] == first.history  # the epochs before the stop came back from the checkpoint
    # the best epoch may be one of them: it is found either way, with the checkpoint's own score
    assert resumed.history[resumed.best_epoch][1]["val/loss"] == pytest.approx(float(best.best_model_score))
    assert resumed.best == resumed.history[resumed.best_epoch][1]


def test_without_a_monitored_checkpoint_it_writes_nothing(tmp_path, tiny_model_class):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=200, batch_size=32)
    best = BestMetrics()
    trainer = Trainer(max_epochs=1, logger=False, callbacks=[best], enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(tiny_model_class(data.vocab_size, data.num_classes), datamodule=data)
    assert best.best == {} and not list(tmp_path.rglob("best_metrics.json"))


def test_summary_values_is_a_pure_function():
    assert summary_values({"val/acc": 0.8, "train/loss_epoch": 0.3}, {"val/acc": 0.7}, 2) == {
        "val/acc": 0.8, "train/loss_epoch": 0.3, "final/val/acc": 0.7, "best/epoch": 2}
    assert summary_values({}, {}, None) == {}
