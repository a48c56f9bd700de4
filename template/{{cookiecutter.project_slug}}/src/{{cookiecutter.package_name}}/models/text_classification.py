"""Recurrent text classifier: embedding → dropout → LSTM/GRU → dropout → linear.

TRICKS: T11 (mean-reduced loss, so clipping thresholds do not depend on the batch size),
T30 (dropout only on the non-recurrent connections), T43 (packed variable-length
sequences), T57 (one monitor metric, chosen in the config).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

MONITORS = {"val/acc": "max", "val/f1": "max", "val/loss": "min"}


class TextClassifier(LightningModule):
    """Classify token sequences with a recurrent network.

    Args:
        vocab_size: rows of the embedding (linked from the data module).
        num_classes: output classes (linked from the data module).
        pad_index: embedding row of the padding token (linked from the data module).
        embedding_dim: size of the word vectors.
        hidden_size: units of each recurrent layer (per direction).
        num_layers: stacked recurrent layers.
        rnn: ``lstm`` or ``gru``.
        bidirectional: read the text in both directions.
        dropout: dropout on the embeddings and on the final hidden state (T30); also
            between stacked layers when ``num_layers > 1``.
        lr: learning rate given to the optimizer; kept here so an LR finder can set it.
        optimizer: the optimizer class and its other arguments.
        scheduler: an optional LR scheduler; ``ReduceLROnPlateau`` watches ``monitor``.
        monitor: the one metric that early stopping, checkpointing and the schedule follow (T57).

    Example::

        model:
          hidden_size: 128
          rnn: lstm
          lr: 0.001
          optimizer:
            class_path: torch.optim.AdamW
            init_args: {weight_decay: 0.0001}
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        pad_index: int = 0,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        rnn: Literal["lstm", "gru"] = "lstm",
        bidirectional: bool = False,
        dropout: float = 0.5,
        lr: float = 1e-3,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: Optional[LRSchedulerCallable] = None,
        monitor: Literal["val/acc", "val/f1", "val/loss"] = "val/acc",
    ) -> None:
        super().__init__()
        if vocab_size < 2 or num_classes < 2:
            raise ValueError(f"need vocab_size >= 2 and num_classes >= 2, got {vocab_size} and {num_classes}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}.")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.lr = lr
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.monitor = monitor

        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.dropout = nn.Dropout(dropout)
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn]
        self.rnn = rnn_class(
            embedding_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        self.loss = nn.CrossEntropyLoss(reduction="mean")  # T11
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro"))
        for stage in ("val", "test"):
            setattr(self, f"{stage}_f1", MulticlassF1Score(num_classes, average="macro"))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for padded ``tokens [B, T]`` of the given ``lengths [B]``."""
        embedded = self.dropout(self.embedding(tokens))
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = self.rnn(packed)
        if isinstance(hidden, tuple):  # LSTM: (h_n, c_n)
            hidden = hidden[0]
        directions = 2 if self.rnn.bidirectional else 1
        last = hidden.view(self.rnn.num_layers, directions, *hidden.shape[1:])[-1]
        return self.head(self.dropout(torch.cat(list(last), dim=-1)))

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["tokens"], batch["lengths"])
        loss = self.loss(logits, batch["labels"])
        size = len(batch["labels"])
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=size)
        getattr(self, f"{stage}_acc")(logits, batch["labels"])
        self.log(f"{stage}/acc", getattr(self, f"{stage}_acc"), on_step=False, on_epoch=True, prog_bar=True)
        if stage != "train":
            getattr(self, f"{stage}_f1")(logits, batch["labels"])
            self.log(f"{stage}/f1", getattr(self, f"{stage}_f1"), on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]``."""
        return torch.softmax(self(batch["tokens"], batch["lengths"]), dim=-1)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer(self.parameters(), lr=self.lr)
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"},
        }
