"""Small models for the benchmarks; each keeps its learning rate in ``self.lr`` (what LR finders set).

- :class:`SequenceLSTM`: ``[B, T, F]`` → LSTM(64) → linear, for digits-as-sequences and UCR.
- :class:`SmallCNN`: ``[B, C, H, W]`` → three 3×3 conv + batch norm + ReLU blocks (16, 32, 64 channels,
  the last two strided) → global average pool → linear, for digits and MNIST as images.
- :class:`TextLSTM`: token ids → embedding 128 → dropout 0.5 → LSTM 128 (packed sequences) →
  dropout → linear, like the template's ``TextClassifier``; batches are dicts
  ``tokens/lengths/labels`` from ``datamodules.TextClassificationDataModule``.

Both use ``optimizer="adam"`` (Adam) or ``"sgd"`` (SGD with momentum 0.9), no schedule, and
record validation accuracy and loss per validation in ``self.val_acc``/``self.val_loss`` (plain floats,
no logger needed).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

OPTIMIZERS = ("adam", "sgd")


class _Classifier(LightningModule):
    def __init__(self, lr: float, optimizer: str) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
        self.lr = lr
        self.optimizer_name = optimizer
        self.loss = nn.CrossEntropyLoss()
        self.val_acc: list[float] = []
        self.val_loss: list[float] = []
        self._correct = 0
        self._seen = 0
        self._loss_sum = 0.0

    def _logits_labels(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits, labels = self._logits_labels(batch)
        return self.loss(logits, labels)  # nothing logged: per-step logging would dominate these tiny steps

    def on_validation_epoch_start(self) -> None:
        self._correct = self._seen = 0
        self._loss_sum = 0.0

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits, labels = self._logits_labels(batch)
        loss = self.loss(logits, labels)
        self._loss_sum += float(loss) * len(labels)
        self._correct += int((logits.argmax(-1) == labels).sum())
        self._seen += len(labels)
        return loss

    def on_validation_epoch_end(self) -> None:
        if self._seen and not self.trainer.sanity_checking:
            self.val_acc.append(self._correct / self._seen)
            self.val_loss.append(self._loss_sum / self._seen)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class SequenceLSTM(_Classifier):
    """``x [B, T, input_size]`` → LSTM(hidden_size) → last hidden state → linear."""

    def __init__(self, input_size: int, num_classes: int, hidden_size: int = 64, lr: float = 1e-3,
                 optimizer: str = "adam") -> None:
        super().__init__(lr, optimizer)
        self.rnn = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.rnn(x)
        return self.head(hidden[-1])

    def _logits_labels(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        return self(x), y


class SmallCNN(_Classifier):
    """``x [B, C, H, W]`` → conv-BN-ReLU ×3 (16, 32/2, 64/2) → global average pool → linear."""

    def __init__(self, in_channels: int, num_classes: int, lr: float = 1e-3, optimizer: str = "adam") -> None:
        super().__init__(lr, optimizer)
        layers: list[nn.Module] = []
        for out_channels, stride in ((16, 1), (32, 2), (64, 2)):
            layers += [nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels),
                       nn.ReLU()]
            in_channels = out_channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def _logits_labels(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        return self(x), y


class TextLSTM(_Classifier):
    """Embedding 128 → dropout 0.5 → LSTM 128 over packed sequences → dropout → linear."""

    def __init__(self, vocab_size: int, num_classes: int, pad_index: int = 0, embedding_dim: int = 128,
                 hidden_size: int = 128, dropout: float = 0.5, lr: float = 1e-3, optimizer: str = "adam") -> None:
        super().__init__(lr, optimizer)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(tokens))
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.rnn(packed)
        return self.head(self.dropout(hidden[-1]))

    def _logits_labels(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch["tokens"], batch["lengths"]), batch["labels"]


def build(data: Any, lr: float, optimizer: str) -> _Classifier:
    """The benchmark's model for a ``bench_data.BenchData``."""
    if data.kind == "text":
        return TextLSTM(data.vocab_size, data.num_classes, data.pad_index, lr=lr, optimizer=optimizer)
    if data.kind == "image":
        return SmallCNN(data.input_size, data.num_classes, lr=lr, optimizer=optimizer)
    return SequenceLSTM(data.input_size, data.num_classes, lr=lr, optimizer=optimizer)
