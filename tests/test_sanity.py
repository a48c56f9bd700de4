"""SanityChecks (T50, T52, T53): each check provoked on real MR batches, the findings read back from W&B."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from callbacks.sanity import SanityChecks, split_batch
from callbacks.wandb_io import read_offline_run
from datamodules import TextClassificationDataModule
from datamodules.text import pad_collate


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Runs without a logger write their files into the working directory: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


class Batches(TextClassificationDataModule):
    """MR, with the training loader passed through ``transform`` (a broken pipeline, on purpose)."""

    def __init__(self, transform=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.transform = transform

    def train_dataloader(self):
        loader = super().train_dataloader()
        return self.transform(self, loader) if self.transform else loader


class Replay:
    """An iterable over fixed batches (a list would be read as several dataloaders)."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def fit(model, data, checks, *, logger=False, epochs=1, ckpt_path=None, callbacks=(), **trainer_args):
    trainer = Trainer(max_epochs=epochs, callbacks=[checks, *callbacks], logger=logger, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=bool(callbacks), num_sanity_val_steps=0,
                      limit_val_batches=0, **trainer_args)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def logged(root, model, data, checks=None):
    """Fit one epoch with an offline W&B logger; the run's ``sanity/*`` summary and the callback."""
    checks = checks or SanityChecks()
    before = set((root / "wandb").glob("offline-run-*"))
    logger = WandbLogger(project="sanity-test", save_dir=str(root))
    try:
        fit(model, data, checks, logger=logger)
    finally:
        logger.experiment.finish()
    (run_dir,) = set((root / "wandb").glob("offline-run-*")) - before
    run = read_offline_run(run_dir)
    assert run.exit_code == 0
    return run.summary, checks


def statuses(checks):
    return {f.check: f.status for f in checks.findings}


def mr(transform=None, limit=400, **kwargs):
    torch.manual_seed(0)
    return Batches(transform, limit=limit, batch_size=32, **kwargs)


def test_clean_data_passes_and_reaches_wandb(offline_wandb, tiny_model_class, capsys):
    data = mr()
    summary, checks = logged(offline_wandb, tiny_model_class(data.vocab_size, data.num_classes), data)
    assert statuses(checks) == {"params": "ok", "shapes": "ok", "nonfinite_inputs": "ok", "zero_inputs": "ok",
                                "identical_batches": "ok", "labels": "ok", "single_class": "ok", "label_mix": "ok", "padding": "ok",
                                "first_loss": "ok"}
    assert summary["sanity/warnings"] == summary["sanity/failures"] == 0
    params = summary["sanity/params"]["value"]
    assert params["train_examples"] == len(data.datasets["train"]) and params["params"] == 16 * data.vocab_size + 34
    assert params["dense_params"] == 34
    first = summary["sanity/first_loss"]["value"]
    assert first["expected"] == pytest.approx(math.log(2))
    assert abs(first["first_loss"] - math.log(2)) < 0.25 * math.log(2)
    assert set(summary["sanity/labels"]["value"]) == set(data.labels)
    shapes = summary["sanity/shapes"]["value"]
    assert shapes["tokens"][0][0] == 32 and shapes["labels"] == [[32], "int64"]
    assert "SanityChecks" in capsys.readouterr().out  # the rich table


def test_all_zero_inputs_fail(offline_wandb, tiny_model_class):
    def zeros(data, loader):
        return Replay([{**batch, "tokens": torch.zeros_like(batch["tokens"])} for batch in loader])

    data = mr(zeros)
    summary, checks = logged(offline_wandb, tiny_model_class(data.vocab_size, data.num_classes), data)
    assert summary["sanity/zero_inputs"]["status"] == "fail"
    assert summary["sanity/zero_inputs"]["value"] == 1.0
    assert "3 of 3 batches are all zeros" in summary["sanity/zero_inputs"]["detail"]
    assert summary["sanity/failures"] >= 1


def test_repeated_batches_fail(offline_wandb, tiny_model_class):
    def repeated(data, loader):
        return Replay([next(iter(loader))] * 5)

    data = mr(repeated)
    summary, _ = logged(offline_wandb, tiny_model_class(data.vocab_size, data.num_classes), data)
    assert summary["sanity/identical_batches"]["status"] == "fail"
    assert summary["sanity/identical_batches"]["value"] == 2
    assert "the loader repeats one batch" in summary["sanity/identical_batches"]["detail"]


def test_data_sorted_by_label_gives_single_class_batches(offline_wandb, tiny_model_class):
    def by_label(data, loader):
        dataset = data.datasets["train"]
        order = sorted(range(len(dataset)), key=lambda i: dataset[i][1])
        return DataLoader(Subset(dataset, order), batch_size=32, collate_fn=pad_collate)

    data = mr(by_label)
    summary, _ = logged(offline_wandb, tiny_model_class(data.vocab_size, data.num_classes), data)
    assert summary["sanity/single_class"]["status"] == "warn"
    assert summary["sanity/single_class"]["value"] == 3
    assert summary["sanity/labels"]["status"] == "warn"  # the first 3 batches hold one class
    assert list(summary["sanity/labels"]["value"].values()) == [96]


def test_first_loss_far_above_ln_c_warns(offline_wandb, tiny_model_class):
    data = mr()
    model = tiny_model_class(data.vocab_size, data.num_classes)
    with torch.no_grad():
        model.head.weight.mul_(200.0)  # a badly scaled output layer: confident and wrong half the time
    summary, _ = logged(offline_wandb, model, data)
    finding = summary["sanity/first_loss"]
    assert finding["status"] == "warn" and finding["value"]["first_loss"] > 2 * math.log(2)
    assert "smaller init scale" in finding["detail"]


class WideModel(LightningModule):
    """Mean of word vectors → a 2048-unit hidden layer: far more dense weights than 100 examples."""

    def __init__(self, vocab_size: int, num_classes: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, 16, mode="mean", padding_idx=0)
        self.body = nn.Sequential(nn.Linear(16, 2048), nn.ReLU(), nn.Linear(2048, num_classes))

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self.body(self.embedding(batch["tokens"])), batch["labels"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_many_parameters_per_example_warn(tiny_model_class):
    data = mr(limit=160)
    checks = SanityChecks()
    fit(WideModel(data.vocab_size, data.num_classes), data, checks)
    finding = next(f for f in checks.findings if f.check == "params")
    examples = len(data.datasets["train"])
    assert finding.status == "warn" and finding.value["dense_params"] == 16 * 2048 + 2048 + 2048 * 2 + 2
    assert finding.value["params_per_example"] == pytest.approx(finding.value["dense_params"] / examples)
    assert "expect overfitting" in finding.detail


class FeatureModel(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"num_classes": 3})
        self.layer = nn.Linear(4, 3)

    def training_step(self, batch, batch_idx):
        features, labels = batch
        return nn.functional.cross_entropy(self.layer(features), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_nan_inputs_fail_and_strict_raises():
    features = torch.randn(64, 4)
    features[5, 2] = float("nan")
    loader = DataLoader(TensorDataset(features, torch.arange(64) % 3), batch_size=16)
    checks = SanityChecks(strict=True)
    trainer = Trainer(max_epochs=1, callbacks=[checks], logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(RuntimeError, match=r"SanityChecks failed: nonfinite_inputs: 1 NaN/Inf input values"):
        trainer.fit(FeatureModel(), train_dataloaders=loader)
    assert statuses(checks)["first_loss"] == "fail"  # the batch with the NaN gives a NaN first loss
    assert statuses(checks)["labels"] == "ok"


def test_split_batch_finds_inputs_and_labels():
    tokens, labels = torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 1])
    assert split_batch({"tokens": tokens, "labels": labels})[1] is labels
    inputs, found = split_batch((tokens, labels))
    assert found is labels and inputs[0][1] is tokens
    assert split_batch(tokens) == ([("batch", tokens)], None)


def test_resume_skips_the_checks(tmp_path, tiny_model_class):
    data = mr()
    checks = SanityChecks()
    fit(tiny_model_class(data.vocab_size, data.num_classes), data, checks,
        callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    assert checks.findings and checks.state_dict() == {"done": True}
    resumed = SanityChecks()
    fit(tiny_model_class(data.vocab_size, data.num_classes), mr(), resumed, epochs=2,
        ckpt_path=str(tmp_path / "last.ckpt"), callbacks=[ModelCheckpoint(dirpath=tmp_path / "b")])
    assert resumed.findings == [] and resumed.done
    fresh = SanityChecks()
    fresh.load_state_dict({})
    assert fresh.done is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_batches": 1}, "num_batches must be an integer >= 2 (consecutive batches are compared), got 1."),
        ({"max_params_per_example": 0}, "max_params_per_example must be > 0, got 0."),
        ({"loss_tolerance": -1}, "loss_tolerance must be > 0, got -1."),
        ({"max_padding_share": 1.5}, "max_padding_share must be in (0, 1], got 1.5."),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        SanityChecks(**kwargs)
    assert str(error.value) == message
