"""Example by example: a split in its stored order, its labels, and the training set one epoch sees.

Ensembles, the classical blend (T63) and the hard-examples table line predictions up with a split's labels
and inputs; oversampling (``oversample.py``) repeats a previous run's hardest training examples. Every
task's data module mixes :class:`ExampleAccess` in and says how to batch and how to subset its own datasets.
"""

from __future__ import annotations

import logging
from typing import Any

from torch.utils.data import DataLoader, Dataset

from .oversample import oversampled_indices
from .sampler import resumable_loader
from .splits import say

STAGE_OF = {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}


class ExampleAccess:
    """``ordered_loader``, ``split_labels`` and the (oversampled) training set of a data module.

    The data module has ``setup(stage)``, ``datasets`` (split name -> dataset with ``labels``), ``batch_size``,
    ``num_workers``, ``oversample``/``oversample_share``/``oversample_factor``, ``_oversampled`` (``None`` until
    built, reset when the datasets are rebuilt), and implements :meth:`_ordered_collate` and :meth:`_subset`.
    """

    datasets: dict[str, Any]
    batch_size: int
    num_workers: int
    oversample: Any
    oversample_share: float
    oversample_factor: int
    _oversampled: Any

    def setup(self, stage: str) -> None:  # the data module's own
        raise NotImplementedError

    def _ordered_collate(self) -> Any:
        """The collate function of a batch as validation sees it (never augmented)."""
        raise NotImplementedError

    def _subset(self, dataset: Any, indices: list[int]) -> Dataset:
        """A dataset of ``dataset``'s examples at ``indices``, in that order (repeats allowed)."""
        raise NotImplementedError

    def ordered_loader(self, split: str) -> DataLoader:
        """``split``'s examples in their stored order: not shuffled, not bucketed, never augmented. Ensembles, the
        classical blend and the hard-examples table line predictions up with :meth:`split_labels` and ``split_inputs``."""
        self.setup(STAGE_OF[split])
        return resumable_loader(self.datasets[split], self._ordered_collate(), self.batch_size,
                                num_workers=self.num_workers)

    def split_labels(self, split: str) -> list[int]:
        """The label index of each example of ``split`` (``train``, ``val`` or ``test``), in stored order."""
        self.setup(STAGE_OF[split])
        return list(self.datasets[split].labels or [])

    def _training_set(self) -> Dataset:
        """The training split as one epoch sees it: with ``oversample``, its hardest examples repeated."""
        dataset = self.datasets["train"]
        if self.oversample is None:
            return dataset
        if self._oversampled is None:
            indices, hard = oversampled_indices(self.oversample, dataset.labels, self.oversample_share,
                                                self.oversample_factor)
            self._oversampled = self._subset(dataset, indices)
            say(f"oversampling the {hard} hardest training examples x{self.oversample_factor} "
                f"(from {self.oversample}): {len(indices)} examples an epoch.", logging.INFO)
        return self._oversampled
