# task: sequence_classification
"""Numeric-sequence classification data (UCR/UEA style): your files or the sets bundled in ``aeon``.

Implements T40 (per-channel scaling fitted on the training split only, applied unchanged
to validation, test and prediction, saved in checkpoints), T41 (stratified, seeded splits: the
set's own train/test split, or 7:3, with validation carved from training), T42 (training data
reshuffled every epoch) and T43 (zero-padded batches with lengths, optional length bucketing and
cropping); ``long_sequences`` tells a model when to downsample (T44).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from .examples import ExampleAccess
from .oversample import check_oversampling
from .sampler import resumable_loader
from .sequence_io import (
    CSV_FORMATS,
    LAYOUTS,
    NAN_POLICIES,
    SeriesSet,
    bundled_name,
    fill_missing,
    read_bundled,
    read_series,
)
from .splits import say, stratified_split

SCALINGS = ("standard", "minmax", "series", "none")
#: ``long_sequences``: the 95th percentile of the training lengths exceeds this many steps
LONG_PERCENTILE, LONG_STEPS = 95, 256

_STAGE_OF = {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}
_SPLITS_OF = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


def percentile_length(lengths: Sequence[int], percentile: float = LONG_PERCENTILE) -> int:
    """The ``percentile``-th percentile (nearest rank) of non-empty ``lengths``.

    Example:
        >>> percentile_length(list(range(1, 101)))
        95
    """
    ordered = sorted(lengths)
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]


def fit_scaling(series: Sequence[np.ndarray], scaling: str) -> dict[str, list[float]]:
    """Per-channel statistics of ``series`` (each ``[time, channels]``, unpadded) for ``scaling`` (T40).

    ``standard``: ``mean`` and ``std`` over every time step of every series; ``minmax``: ``min``
    and ``max``; ``series`` and ``none`` fit nothing. A constant channel gets ``std`` 1 (or a
    range of 1), so it is shifted, never divided by zero.

    Example:
        >>> fit_scaling([np.array([[1.0], [3.0]]), np.array([[1.0], [3.0], [2.0]])], "minmax")
        {'min': [1.0], 'max': [3.0]}
    """
    if scaling in ("series", "none"):
        return {}
    values = np.concatenate([np.asarray(s, dtype=np.float64) for s in series], axis=0)
    if scaling == "standard":
        std = values.std(axis=0)
        return {"mean": values.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}
    low, high = values.min(axis=0), values.max(axis=0)
    return {"min": low.tolist(), "max": np.where(high > low, high, low + 1.0).tolist()}


def apply_scaling(array: np.ndarray, scaling: str, statistics: dict[str, list[float]]) -> np.ndarray:
    """``array`` (``[time, channels]``) scaled by ``scaling`` with fitted ``statistics`` (see ``fit_scaling``).

    ``series`` z-normalises each channel of the series by its own mean and standard deviation
    (the UCR habit; a constant channel becomes 0).

    Example:
        >>> apply_scaling(np.array([[1.0], [3.0]]), "series", {}).ravel().tolist()
        [-1.0, 1.0]
    """
    x = np.asarray(array, dtype=np.float64)
    if scaling == "standard":
        x = (x - np.asarray(statistics["mean"])) / np.asarray(statistics["std"])
    elif scaling == "minmax":
        low = np.asarray(statistics["min"])
        x = (x - low) / (np.asarray(statistics["max"]) - low)
    elif scaling == "series":
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return x.astype(np.float32)


class SeriesDataset(Dataset):
    """Series as float32 tensors ``[time, channels]`` with optional label indices."""

    def __init__(self, sequences: list[torch.Tensor], labels: Optional[list[int]] = None) -> None:
        self.sequences = sequences
        self.labels = labels

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.sequences[index], (-1 if self.labels is None else self.labels[index])

    @property
    def lengths(self) -> list[int]:
        return [int(s.shape[0]) for s in self.sequences]


def pad_series(items: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """Zero-pad ``(series [T, C], label)`` items to ``series [B, T, C]``, ``lengths [B]``, ``labels [B]`` (T43).

    ``labels`` is left out for unlabelled (prediction) items.

    Example:
        >>> batch = pad_series([(torch.ones(3, 2), 0), (torch.ones(1, 2), 1)])
        >>> batch["series"].shape, batch["lengths"].tolist(), batch["labels"].tolist()
        (torch.Size([2, 3, 2]), [3, 1], [0, 1])
    """
    lengths = torch.tensor([len(s) for s, _ in items], dtype=torch.long)
    series = torch.zeros(len(items), int(lengths.max()), items[0][0].shape[1], dtype=torch.float32)
    for row, (values, _) in enumerate(items):
        series[row, : len(values)] = values
    batch = {"series": series, "lengths": lengths}
    if items[0][1] >= 0:
        batch["labels"] = torch.tensor([label for _, label in items], dtype=torch.long)
    return batch


class SequenceClassificationDataModule(ExampleAccess, LightningDataModule):
    """Labelled numeric series split into train/val/test, scaled, padded and batched.

    Each series is a float32 array ``[time, channels]``, uni- or multivariate, of equal or
    unequal lengths. Label names and scaling statistics come from the training split only (no
    leak from validation or test) and are saved in every checkpoint, so ``predict`` on new files
    needs nothing but the checkpoint. Facts the model needs (``input_size``, ``num_classes``,
    ``long_sequences``) are available right after construction for LightningCLI's argument links.
    Batches are dicts ``series [B, T, C]`` (zero-padded), ``lengths [B]`` and ``labels [B]``
    (none when predicting).

    Args:
        dataset: bundled UCR/UEA set used when ``data_path`` is unset, read offline from
            ``aeon`` with its official train/test split: ACSF1, ArrowHead, BasicMotions (6
            channels), Covid3Month_disc, GunPoint, ItalyPowerDemand, JapaneseVowels (12 channels,
            unequal lengths), OSULeaf, PickupGestureWiimoteZ (unequal lengths), UnitTest.
        data_path: your labelled data: ``.ts`` (UCR/UEA format), ``.npz`` (arrays ``X``, ``y``
            and optionally ``lengths`` of zero-padded series), ``.npy`` (``X`` only, with
            ``label_path``), ``.csv`` or ``.tsv`` (wide or long, see ``csv_format``).
        val_path: optional separate validation file; otherwise carved from the training part.
        test_path: optional separate test file; otherwise split off ``data_path`` (T41).
        label_path: labels of a ``.npy`` ``data_path``: a ``.npy`` array or a ``.txt`` file with
            one label per line.
        layout: axes of a 3-D ``X`` in ``.npz``/``.npy`` files: ``ntc`` ([series, time,
            channels]), ``nct`` ([series, channels, time]) or ``auto`` (the smaller of the last
            two axes are the channels, said in one line). ``[N, T]`` is univariate.
        csv_format: ``wide`` (one row per series: ``label_column`` and the values; trailing
            empty cells end a shorter series; a file without a header has the label first),
            ``long`` (one row per time step: ``series_column``, ``time_column``, value columns,
            ``label_column``) or ``auto`` (long when the header has ``series_column``).
        label_column: CSV column holding the label.
        series_column: long CSV column holding the series id.
        time_column: long CSV column ordering each series' steps (without it, file order).
        value_columns: CSV columns holding the values (default: every other column); in long
            CSV each is a channel.
        channels: wide CSV only: each row's values are this many channel-major blocks.
        nan: NaN/Inf values: ``error`` (the first series named), ``zero`` (set to 0 before
            scaling) or ``interpolate`` (linear within the series and channel; values before the
            first and after the last finite one repeat the nearest finite value).
        scaling: ``standard`` (per-channel mean/std) or ``minmax`` (per-channel min/max to
            [0, 1]), fitted on the training split only, padding excluded (T40); ``series``:
            z-normalise each series by itself (the UCR habit, nothing fitted); ``none``.
        val_fraction: share of the training part used for validation (stratified, seeded).
        test_fraction: share of ``data_path`` held out for testing when there is no
            ``test_path`` (7:3 by default, T41); the bundled sets keep their own test split.
        max_length: crop longer series to their first ``max_length`` steps (said in one line
            with how many were cut); ``null``: never crop.
        batch_size: series per batch.
        num_workers: DataLoader worker processes.
        seed: seed of the splits (the training order follows ``seed_everything``).
        bucketing: when lengths differ, batch series of similar length together (T43): pools of
            ``bucket_size`` batches sorted by length, batches shuffled every epoch. Validation
            and test batches are length-sorted too; prediction keeps the input order.
        bucket_size: batches per length-sorted pool when ``bucketing`` is on.
        stratified_batches: with ``bucketing``, cut each pool so every training batch keeps the
            class mix (where length goes with the class, length-sorted batches would be
            nearly single-class).
        min_label_count: a label of the data seen fewer times is an error (usually a typo):
            it cannot be both trained on and validated.
        predict_path: a file in any supported format to classify with ``predict`` (labels, if
            any, are ignored).
        oversample: a previous run's ``train_losses.csv`` (``HardExamples``): its hardest training
            examples appear ``oversample_factor`` times per epoch (hard-example mining); same data and split.
        oversample_share: the share of training examples, highest loss first, that are oversampled.
        oversample_factor: how many times each of them appears in an epoch (>= 2).
        state_from: a checkpoint whose labels, channel count, layout and scaling statistics to
            reuse instead of fitting them (the CLI restores the data module from ``--ckpt_path`` by itself).

    Raises:
        ValueError: an argument out of range or not one of its choices, an unknown bundled set;
            when the data is read: unreadable or ragged files, NaN/Inf under ``nan: error``,
            mismatched channel counts, labels rarer than ``min_label_count``, a validation or
            test label unseen in training, each naming the file and line or series.
        FileNotFoundError: a data file or ``state_from`` that does not exist.

    Example::

        data:
          dataset: GunPoint          # or data_path: series.ts / .npz / .csv
          batch_size: 32
          val_fraction: 0.2          # carved from the training split, stratified
          test_fraction: 0.3         # only for data_path without test_path
          scaling: standard          # fitted on the training split only
          nan: error                 # or zero / interpolate
          bucketing: true            # similar lengths per batch, each keeping the class mix
          max_length: null           # crop longer series
    """

    #: the predictions table's column header for ``predict_inputs()``
    input_name = "series"

    def __init__(
        self,
        dataset: str = "GunPoint",
        data_path: Optional[str] = None,
        val_path: Optional[str] = None,
        test_path: Optional[str] = None,
        label_path: Optional[str] = None,
        layout: Literal["auto", "ntc", "nct"] = "auto",
        csv_format: Literal["auto", "wide", "long"] = "auto",
        label_column: str = "label",
        series_column: str = "series",
        time_column: str = "time",
        value_columns: Optional[list[str]] = None,
        channels: int = 1,
        nan: Literal["error", "zero", "interpolate"] = "error",
        scaling: Literal["standard", "minmax", "series", "none"] = "standard",
        val_fraction: float = 0.2,
        test_fraction: float = 0.3,
        max_length: Optional[int] = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 42,
        bucketing: bool = True,
        bucket_size: int = 50,
        stratified_batches: bool = True,
        min_label_count: int = 3,
        predict_path: Optional[str] = None,
        oversample: Optional[str] = None,
        oversample_share: float = 0.1,
        oversample_factor: int = 2,
        state_from: Optional[str] = None,
    ) -> None:
        super().__init__()
        if data_path is None:
            dataset = bundled_name(dataset)
        for name, value in (("val_path", val_path), ("test_path", test_path), ("label_path", label_path)):
            if value is not None and data_path is None:
                raise ValueError(f"{name} goes with your own data_path; the bundled {dataset} set has its own "
                                 f"train/test split. Set data_path, or unset {name}.")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
        if data_path is not None and test_path is None and test_fraction == 0.0:
            raise ValueError("test_fraction is 0 and no test_path is given: set one of them.")
        for name, value, choices in (("layout", layout, LAYOUTS), ("csv_format", csv_format, CSV_FORMATS),
                                     ("nan", nan, NAN_POLICIES), ("scaling", scaling, SCALINGS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
        for name, value in (("batch_size", batch_size), ("bucket_size", bucket_size), ("channels", channels),
                            ("min_label_count", min_label_count)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
        if max_length is not None and not (isinstance(max_length, int) and max_length >= 1):
            raise ValueError(f"max_length must be a number >= 1 or null (never crop), got {max_length!r}.")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
        if value_columns is not None and not value_columns:
            raise ValueError("value_columns is an empty list: name at least one column, or null for every other "
                             "column.")
        self.save_hyperparameters()
        self.dataset = dataset
        self.data_path = data_path
        self.val_path = val_path
        self.test_path = test_path
        self.label_path = label_path
        self.layout = layout
        self.csv_format = csv_format
        self.label_column = label_column
        self.series_column = series_column
        self.time_column = time_column
        self.value_columns = value_columns
        self.channels = channels
        self.nan = nan
        self.scaling = scaling
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_length = max_length
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.bucketing = bucketing
        self.bucket_size = bucket_size
        self.stratified_batches = stratified_batches
        self.min_label_count = min_label_count
        self.predict_path = predict_path
        check_oversampling(oversample, oversample_share, oversample_factor)
        self.oversample = oversample
        self.oversample_share = oversample_share
        self.oversample_factor = oversample_factor
        self._oversampled: Optional[Dataset] = None
        self.state_from = state_from

        self._labels: Optional[list[str]] = None
        self._input_size: Optional[int] = None
        self._statistics: dict[str, list[float]] = {}
        self._long_sequences: Optional[bool] = None
        self._splits: Optional[dict[str, SeriesSet]] = None
        self.series: dict[str, SeriesSet] = {}  # the unscaled series behind each data set, in its order
        self.datasets: dict[str, SeriesDataset] = {}

    # ------------------------------------------------------------------ facts for the model
    @property
    def labels(self) -> list[str]:
        """Label names, sorted; the model's class ``i`` is ``labels[i]``."""
        self._ensure_fitted()
        assert self._labels is not None
        return self._labels

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_size(self) -> int:
        """Channels per time step."""
        self._ensure_fitted()
        assert self._input_size is not None
        return self._input_size

    @property
    def statistics(self) -> dict[str, list[float]]:
        """The scaling statistics fitted on the training split (``mean``/``std`` or ``min``/``max`` per channel)."""
        self._ensure_fitted()
        return self._statistics

    @property
    def long_sequences(self) -> bool:
        """Whether the training series are long: their 95th-percentile length exceeds 256 steps.

        Lengths are those the model reads (after ``max_length``). A model may downsample long
        series before its recurrent layers (T44). Saved in checkpoints.
        """
        self._ensure_fitted()
        if self._long_sequences is None:
            self._long_sequences = percentile_length(self.lengths("train")) > LONG_STEPS
        return self._long_sequences

    def class_counts(self, split: str = "train") -> list[int]:
        """Series of each class (in the order of ``labels``) in ``split`` (``train``, ``val`` or ``test``)."""
        counts = Counter(self._load_splits()[split].labels or [])
        return [counts.get(label, 0) for label in self.labels]

    def lengths(self, split: str = "train") -> list[int]:
        """The length (after ``max_length``) of every series of ``split``, in its order."""
        if split in self.datasets:
            return self.datasets[split].lengths
        if split == "predict":
            self.setup("predict")
            return self.datasets[split].lengths
        return [len(s) for s in self._load_splits()[split].series]

    # ------------------------------------------------------------------ loading
    def _read(self, path: str, option: str, labelled: bool = True, label_path: Optional[str] = None,
              layout: Optional[str] = None) -> SeriesSet:
        data = read_series(
            path, labelled=labelled, option=option, label_path=label_path, layout=layout or self.layout,
            csv_format=self.csv_format, label_column=self.label_column, series_column=self.series_column,
            time_column=self.time_column, value_columns=self.value_columns, channels=self.channels,
        )
        return fill_missing(data, self.nan)

    def _rare_labels(self, data: SeriesSet) -> None:
        counts = Counter(data.labels or [])
        rare = sorted(label for label, count in counts.items() if count < self.min_label_count)
        if rare:
            where = {label: [w for w, y in zip(data.where, data.labels or []) if y == label] for label in rare}
            named = "; ".join(f"{label!r} ({counts[label]}x: {', '.join(where[label])})" for label in rare[:10])
            raise ValueError(
                f"{data.source}: {len(rare)} label{'s' if len(rare) > 1 else ''} seen fewer than "
                f"{self.min_label_count} times: {named}. So rare a label (a typo?) cannot be both trained on and "
                "validated. Fix or remove those series, or lower --data.min_label_count."
            )

    def _crop(self, data: SeriesSet, name: str) -> SeriesSet:
        data.full_lengths = [len(s) for s in data.series]
        if self.max_length is None:
            return data
        longer = sum(n > self.max_length for n in data.full_lengths)
        if longer:
            data.series = [s[: self.max_length] for s in data.series]
            say(f"max_length {self.max_length}: {longer} of the {len(data)} {name} series cut to their first "
                f"{self.max_length} steps (the longest had {max(data.full_lengths)}).", logging.INFO)
        return data

    def _load_splits(self) -> dict[str, SeriesSet]:
        if self._splits is not None:
            return self._splits
        if self.data_path is not None:
            data = self._read(self.data_path, "data_path", label_path=self.label_path)
            self._rare_labels(data)
            if self.layout == "auto" and data.layout is not None:
                self.layout = data.layout  # the other files, and predictions, read as the training data was
            if self.test_path is not None:
                train, test = data, self._read(self.test_path, "test_path")
            else:
                train_part, test_part = stratified_split(data.labels or [], (self.test_fraction,), self.seed)
                train, test = data.subset(train_part), data.subset(test_part)
        else:
            train, test = read_bundled(self.dataset)
            train, test = fill_missing(train, self.nan), fill_missing(test, self.nan)
        if self.val_path is not None:
            val = self._read(self.val_path, "val_path")
        else:
            train_part, val_part = stratified_split(train.labels or [], (self.val_fraction,), self.seed)
            train, val = train.subset(train_part), train.subset(val_part)
        splits = {"train": train, "val": val, "test": test}
        source = self.data_path or f"the bundled {self.dataset} set"
        if not train.series or not val.series:
            raise ValueError(f"{source} has {len(train) + len(val)} training series: too few to split into train "
                             "and validation. Provide more data or a separate val_path.")
        train_labels = set(train.labels or [])
        if len(train_labels) < 2:
            raise ValueError(f"the training split of {source} holds a single label ({train_labels.pop()!r}).")
        for name in ("val", "test"):
            part = splits[name]
            if part.channels and part.channels != train.channels:
                raise ValueError(f"{part.source}: {part.channels} channel{'s' if part.channels != 1 else ''} per "
                                 f"series, but the training data ({train.source}) has {train.channels}. Every file "
                                 "needs the same channels.")
            for label, where in zip(part.labels or [], part.where):
                if label not in train_labels:
                    raise ValueError(
                        f"{part.source}, {where}: label {label!r} of the {name} split never appears in the training "
                        f"split (labels: {', '.join(sorted(train_labels))}). Fix the label or add training series."
                    )
        for name, part in splits.items():
            self._crop(part, name)
        self._splits = splits
        return splits

    def _ensure_fitted(self) -> None:
        if self._labels is not None:
            return
        if self.state_from is not None:
            self.load_state_dict(self._state_from_checkpoint(self.state_from))
            return
        train = self._load_splits()["train"]
        self._labels = sorted(set(train.labels or []))
        self._input_size = train.channels
        self._statistics = fit_scaling(train.series, self.scaling)  # T40: the training split only

    def _state_from_checkpoint(self, path: str) -> dict[str, Any]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"state_from: checkpoint {path} does not exist.")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        state = checkpoint.get(type(self).__qualname__)
        if not state or "labels" not in state or "scaling" not in state:
            raise ValueError(
                f"state_from: {path} holds no {type(self).__qualname__} state (keys: {', '.join(checkpoint)}). "
                "Use a checkpoint written by a fit with this data module."
            )
        return state

    def _dataset(self, data: SeriesSet, name: str, labelled: bool = True) -> SeriesDataset:
        if data.channels != self.input_size:
            raise ValueError(f"{data.source}: {data.channels} channel{'s' if data.channels != 1 else ''} per series, "
                             f"but the model reads {self.input_size} (the training data's). Every file needs the "
                             "same channels.")
        sequences = [torch.from_numpy(apply_scaling(s, self.scaling, self._statistics)) for s in data.series]
        if not labelled:
            return SeriesDataset(sequences)
        index = {label: i for i, label in enumerate(self.labels)}
        unknown = sorted(set(data.labels or []) - set(index))
        if unknown:
            raise ValueError(f"{name} split has labels {unknown} that the checkpoint's model does not know "
                             f"(labels: {', '.join(self.labels)}).")
        return SeriesDataset(sequences, [index[label] for label in data.labels or []])

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        """Read, split and scale the data the stage needs; a second call for a stage is free."""
        if all(name in self.datasets for name in _SPLITS_OF[stage]):
            return  # the CLI sets up before the run starts, so bad data stops it before anything is created
        self._ensure_fitted()
        if stage == "predict":
            if self.predict_path is None:
                raise ValueError("nothing to predict: pass --data.predict_path series.ts (or .npz, .npy, .csv, .tsv).")
            data = self._crop(self._read(self.predict_path, "predict_path", labelled=False), "predict")
            self.series["predict"] = data
            self.datasets["predict"] = self._dataset(data, "predict", labelled=False)
            return
        splits = self._load_splits()
        for name in _SPLITS_OF[stage]:
            self.series[name] = splits[name]
            self.datasets[name] = self._dataset(splits[name], name)

    def predict_inputs(self) -> list[str]:
        """One line per predicted series, in input order: ``#0: 150 steps x 1 channel``."""
        self.setup("predict")
        data = self.series["predict"]
        described = []
        for i, (array, full) in enumerate(zip(data.series, data.full_lengths)):
            steps, channels = array.shape
            text = f"#{i}: {steps} step{'s' if steps != 1 else ''} x {channels} channel{'s' if channels != 1 else ''}"
            described.append(text + (f" (cut from {full})" if full > steps else ""))
        return described

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        dataset = self._training_set() if name == "train" else self.datasets[name]
        lengths = dataset.lengths
        bucketed = self.bucketing and name != "predict" and len(set(lengths)) > 1  # predictions keep the input order
        return resumable_loader(
            dataset, pad_series, self.batch_size, shuffle=shuffle, lengths=lengths if bucketed else None,
            labels=dataset.labels if shuffle and self.stratified_batches else None,  # training batches keep the mix
            bucket_size=self.bucket_size, num_workers=self.num_workers,
        )

    # ------------------------------------------------------------------ example by example (ensembles, T63, hard examples)
    def split_inputs(self, split: str) -> list[np.ndarray]:
        """The series of ``split`` as the model reads them (scaled, T40), ``[time, channels]`` each, in stored order."""
        self.setup(_STAGE_OF[split])
        return [series.numpy() for series in self.datasets[split].sequences]

    def _ordered_collate(self) -> Any:
        return pad_series

    def _subset(self, dataset: Any, indices: list[int]) -> Dataset:
        return SeriesDataset([dataset.sequences[i] for i in indices], [dataset.labels[i] for i in indices])

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)  # T42: a new order every epoch

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    # ------------------------------------------------------------------ a look at the data
    def example_figure(self, per_class: int = 3) -> Any:
        """A matplotlib ``Figure`` of ``per_class`` training series of each class, as the model sees them.

        One subplot per class, titled with its label and count, each channel a line; ``None``
        when matplotlib is not installed. Drawn with the Agg canvas, whatever pyplot's backend.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            return None
        self.setup("fit")
        dataset = self.datasets["train"]
        labels = dataset.labels or []
        columns = min(4, self.num_classes)
        rows = -(-self.num_classes // columns)
        figure = Figure(figsize=(3.2 * columns, 2.4 * rows), layout="constrained")
        FigureCanvasAgg(figure)
        counts = self.class_counts("train")
        colours = [f"C{i % 10}" for i in range(self.input_size)]
        for k, label in enumerate(self.labels):
            axes = figure.add_subplot(rows, columns, k + 1)
            members = [i for i, y in enumerate(labels) if y == k][:per_class]
            for i in members:
                values = dataset.sequences[i].numpy()
                for channel in range(values.shape[1]):
                    axes.plot(values[:, channel], color=colours[channel], linewidth=0.8, alpha=0.8)
            axes.set_title(f"{label} (n={counts[k]})", fontsize=9)
            axes.tick_params(labelsize=7)
        figure.suptitle(f"{per_class} training series per class (scaling: {self.scaling}, "
                        f"{self.input_size} channel{'s' if self.input_size != 1 else ''})", fontsize=10)
        return figure

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "input_size": self.input_size,
            "layout": self.layout,
            "scaling": self.scaling,
            "statistics": {key: [float(v) for v in values] for key, values in self.statistics.items()},
            "nan": self.nan,
            "max_length": self.max_length,
            "long_sequences": self.long_sequences,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        labels = list(state_dict["labels"])
        statistics = {key: list(values) for key, values in state_dict.get("statistics", {}).items()}
        scaling = state_dict.get("scaling", self.scaling)
        changed = self._labels is not None and (
            labels != self._labels or statistics != self._statistics or scaling != self.scaling
        )
        self._labels = labels
        self._input_size = int(state_dict.get("input_size", 1))
        self._statistics = statistics
        self.scaling = scaling
        self.layout = state_dict.get("layout", self.layout)
        self.nan = state_dict.get("nan", self.nan)
        self.max_length = state_dict.get("max_length", self.max_length)
        self._long_sequences = state_dict.get("long_sequences", False)
        if changed:  # data sets indexed or scaled otherwise: build them again
            stages = {_STAGE_OF[name] for name in self.datasets}
            self.datasets.clear()
            self._oversampled = None
            self.series.clear()
            for stage in stages:
                self.setup(stage)
