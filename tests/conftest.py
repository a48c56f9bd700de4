"""Shared fixtures: the repository root, W&B isolated from any account, and a tiny text model."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models train fastest on one thread, and 3x slower on two when a neighbour is busy."""
    torch.set_num_threads(1)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def notices(caplog):
    """The callbacks' one-line notices (``callbacks.notices``) at ``level`` or above that match ``pattern``."""
    caplog.set_level(logging.INFO)

    def matching(pattern: str, level: int = logging.WARNING) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= level and re.search(pattern, r.getMessage())]

    return matching


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """Run W&B offline with no account: a private HOME, no API key, runs under tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    return tmp_path


class TinyTextModel(LightningModule):
    """Mean of word vectors → linear: small enough for unit tests of callbacks on real text."""

    def __init__(self, vocab_size: int, num_classes: int, lr: float = 0.05, optimizer: str = "sgd") -> None:
        super().__init__()
        self.optimizer_name = optimizer
        self.embedding = nn.EmbeddingBag(vocab_size, 16, mode="mean", padding_idx=0)
        self.head = nn.Linear(16, num_classes)
        self.lr = lr
        self.preclip_norms: list[float] = []  # the global 2-norm of the gradients, per optimizer step
        self.preclip_max_abs: list[float] = []  # the largest gradient entry in absolute value, per step

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(tokens))

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self(batch["tokens"]), batch["labels"])
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", nn.functional.cross_entropy(self(batch["tokens"]), batch["labels"]))

    def on_before_optimizer_step(self, optimizer) -> None:
        # runs after the callbacks' hook and before Lightning clips: an independent record
        grads = torch.cat([p.grad.flatten() for p in self.parameters() if p.grad is not None])
        self.preclip_norms.append(float(torch.linalg.vector_norm(grads)))
        self.preclip_max_abs.append(float(grads.abs().max()))

    def configure_optimizers(self):
        optimizer = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[self.optimizer_name]
        return optimizer(self.parameters(), lr=self.lr)


@pytest.fixture
def tiny_model_class():
    return TinyTextModel
