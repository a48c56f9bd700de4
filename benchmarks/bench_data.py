"""Real data sets for the benchmarks, all bundled in installed packages (no download).

- ``digits``: scikit-learn's 1,797 handwritten digits, each 8×8 image read as a sequence of
  8 rows of 8 features (pixels scaled to [0, 1]); stratified, seeded 80/20 train/val split.
- ``ucr``: a UCR set bundled in ``aeon`` (ItalyPowerDemand by default, or GunPoint), as
  univariate sequences; the archive's own train/test split, validating on test.
- ``mr``: the bundled MR movie-review sentences through the template's own
  ``datamodules.TextClassificationDataModule`` (its default 7:3 train/test and 10% val split).

Every loader returns a :class:`BenchData`: a LightningDataModule factory plus the facts a
model needs (input size or vocabulary size, classes) and the training steps per epoch.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class ArrayDataModule(LightningDataModule):
    """Fixed train/val tensors ``x [N, T, F]``, ``y [N]``; training order reshuffled every epoch."""

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor,
                 batch_size: int) -> None:
        super().__init__()
        self.train_set = TensorDataset(x_train, y_train)
        self.val_set = TensorDataset(x_val, y_val)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=512)


@dataclass
class BenchData:
    """One data set: ``make()`` builds a fresh datamodule; the rest describes it."""

    name: str
    kind: str  # "sequence" (x, y tuples) or "text" (dicts tokens/lengths/labels)
    make: Callable[[], LightningDataModule]
    num_classes: int
    train_size: int
    val_size: int
    batch_size: int
    input_size: int = 0  # features per time step (sequence)
    vocab_size: int = 0  # text
    pad_index: int = 0  # text
    description: str = ""

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_size / self.batch_size)


def _stratified_indices(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(labels)), test_size=val_fraction, stratify=labels, random_state=seed)


def digits(batch_size: int = 32, split_seed: int = 0) -> BenchData:
    """sklearn digits as 8-step sequences of 8 features, stratified 80/20 (``split_seed``)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32)  # [1797, 8, 8]: 8 rows as 8 time steps
    y = torch.tensor(bunch.target, dtype=torch.long)
    train, val = _stratified_indices(bunch.target, 0.2, split_seed)
    return BenchData(
        name="digits", kind="sequence",
        make=lambda: ArrayDataModule(x[train], y[train], x[val], y[val], batch_size),
        num_classes=10, train_size=len(train), val_size=len(val), batch_size=batch_size, input_size=8,
        description=f"sklearn digits, 8×8 images as 8 steps × 8 features; {len(train)} train / {len(val)} val "
        "(stratified 80/20)",
    )


UCR_LOADERS = {"ItalyPowerDemand": "load_italy_power_demand", "GunPoint": "load_gunpoint"}


def ucr(name: str = "ItalyPowerDemand", batch_size: int = 16) -> BenchData:
    """A UCR set bundled in aeon, as ``[N, length, 1]`` sequences; validates on the archive's test split."""
    import aeon.datasets

    if name not in UCR_LOADERS:
        raise ValueError(f"unknown UCR set {name!r}; choose one of {', '.join(UCR_LOADERS)}.")
    load = getattr(aeon.datasets, UCR_LOADERS[name])
    x_train, y_train = load(split="train")
    x_test, y_test = load(split="test")
    classes = sorted(set(y_train))
    index = {label: i for i, label in enumerate(classes)}

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        # aeon gives [N, channels, length]; the LSTM reads [N, length, channels]
        return (torch.tensor(np.asarray(x, dtype=np.float32)).transpose(1, 2).contiguous(),
                torch.tensor([index[label] for label in y], dtype=torch.long))

    xt, yt = tensors(x_train, y_train)
    xv, yv = tensors(x_test, y_test)
    return BenchData(
        name=name, kind="sequence", make=lambda: ArrayDataModule(xt, yt, xv, yv, batch_size),
        num_classes=len(classes), train_size=len(yt), val_size=len(yv), batch_size=batch_size,
        input_size=xt.shape[2],
        description=f"UCR {name} (aeon {aeon.__version__}), length {xt.shape[1]}; {len(yt)} train / "
        f"{len(yv)} val (the archive's test split)",
    )


def mr(batch_size: int = 64) -> BenchData:
    """The bundled MR sentences through ``datamodules.TextClassificationDataModule`` (default splits)."""
    from datamodules import TextClassificationDataModule

    probe = TextClassificationDataModule(dataset="mr", batch_size=batch_size)
    probe.setup("fit")
    train_size, val_size = len(probe.datasets["train"]), len(probe.datasets["val"])
    return BenchData(
        name="MR", kind="text",
        make=lambda: probe,  # one instance: the vocabulary is built once, setup() re-encodes per fit
        num_classes=probe.num_classes, train_size=train_size, val_size=val_size, batch_size=batch_size,
        vocab_size=probe.vocab_size, pad_index=probe.pad_index,
        description=f"MR movie-review sentences via TextClassificationDataModule; {train_size} train / "
        f"{val_size} val, vocabulary {probe.vocab_size}",
    )


LOADERS: dict[str, Callable[[], BenchData]] = {"MR": mr, "ucr": ucr, "digits": digits}
