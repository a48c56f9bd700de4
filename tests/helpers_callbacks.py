"""Shared by several test modules: a tiny LSTM on MR and its fit, an RNG-carrying callback, an LR recorder, a simulated preemption."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from datamodules import TextClassificationDataModule


class Recorder(Callback):
    """The LR and momentum of every param group, read just before each optimizer step."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}
        self.momenta: dict[int, float] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs[trainer.global_step] = [group["lr"] for group in optimizer.param_groups]
        group = optimizer.param_groups[0]
        momentum = group["betas"][0] if "betas" in group else group.get("momentum")
        if momentum is not None:
            self.momenta[trainer.global_step] = momentum


class Preempted(Exception):
    """Raised by ``Preempt``: the job died."""


class Preempt(Callback):
    """Save a checkpoint mid-epoch after ``at_step`` optimizer steps, then die like a preempted job."""

    def __init__(self, at_step: int, path) -> None:
        self.at_step, self.path = at_step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at_step:
            trainer.save_checkpoint(self.path)
            raise Preempted


class TinyLSTM(LightningModule):
    """Embedding 16 → LSTM → linear on the bundled MR text; logs val/loss and val/acc."""

    def __init__(self, vocab_size: int, num_classes: int, lr: float = 0.01, optimizer: str = "adam",
                 hidden_size: int = 12) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 16, padding_idx=0)
        self.rnn = nn.LSTM(16, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)
        self.lr = lr
        self.optimizer_name = optimizer

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.rnn(packed)
        return self.head(hidden[-1])

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self(batch["tokens"], batch["lengths"]), batch["labels"])
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["tokens"], batch["lengths"])
        self.log("val/loss", nn.functional.cross_entropy(logits, batch["labels"]))
        self.log("val/acc", (logits.argmax(-1) == batch["labels"]).float().mean())

    def test_step(self, batch, batch_idx):
        logits = self(batch["tokens"], batch["lengths"])
        self.log("test/acc", (logits.argmax(-1) == batch["labels"]).float().mean())

    def predict_step(self, batch, batch_idx):
        return torch.softmax(self(batch["tokens"], batch["lengths"]), dim=-1)

    def configure_optimizers(self):
        if self.optimizer_name == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class RNGState(Callback):
    """Carry torch's global RNG in checkpoints, so a resumed run shuffles and drops out like an uninterrupted one."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["test_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        torch.set_rng_state(checkpoint["test_rng_state"])


def fit(callbacks, *, epochs=1, ckpt_path=None, logger=False, seed=0, lr=0.01, optimizer="adam", limit=400, **trainer):
    torch.manual_seed(seed)
    data = TextClassificationDataModule(limit=limit, batch_size=32)
    model = TinyLSTM(data.vocab_size, data.num_classes, lr=lr, optimizer=optimizer)
    trainer = Trainer(max_epochs=epochs, callbacks=list(callbacks), logger=logger, log_every_n_steps=1,
                      enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
                      num_sanity_val_steps=0, **trainer)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model
