"""Length bucketing (T43): batches of texts of similar length, so little of a batch is padding.

A padded batch costs as much as its longest text. Sorting the whole training set by length
would remove the padding but also the randomness of the batches (T42), so the usual compromise
(torchtext's ``BucketIterator``, AllenNLP's bucket sampler) is used: shuffle, cut the order into
pools of ``bucket_size`` batches, sort each pool by length, cut it into batches and shuffle the
batches. torch ships no such sampler, hence this small class.

Resuming a run mid-epoch (``ResumableLoader``) needs every epoch's order to be a function of the
seed and the epoch alone, never of torch's global generator (whose state at the start of an epoch
differs between a run and its resumption), and a batch sampler that can start after its first
``n`` batches without loading them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence, Sized
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler


def global_seed() -> int:
    """The seed ``seed_everything`` set (``PL_GLOBAL_SEED``), as Lightning's ``DistributedSampler`` uses it."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def _generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 2 + stream)


class EpochShuffle(RandomSampler):
    """A random order that is a function of ``seed`` and the epoch only, like ``DistributedSampler``'s.

    A ``RandomSampler`` (Lightning recognises it as shuffled and swaps it for a
    ``DistributedSampler`` under DDP) whose order does not depend on torch's global generator,
    so a resumed run sees the same order as the run it resumes. Lightning calls ``set_epoch``
    at the start of every epoch.

    Args:
        data_source: the data set (only its length is used).
        seed: the base seed; default ``PL_GLOBAL_SEED`` (``seed_everything``).
    """

    def __init__(self, data_source: Sized, seed: int | None = None) -> None:
        super().__init__(data_source)
        self.seed = global_seed() if seed is None else seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        yield from torch.randperm(len(self.data_source), generator=_generator(self.seed, self.epoch)).tolist()


class SkippableBatchSampler(BatchSampler):
    """A ``BatchSampler`` whose next pass can start after its first ``n`` batches (mid-epoch resume).

    The skipped batches are index lists only: no example is loaded or collated for them.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self._skip = 0

    def skip_next(self, batches: int) -> None:
        """Start the next pass after its first ``batches`` batches."""
        self._skip = batches

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        return itertools.islice(self._batches(), skip, None)

    def _batches(self) -> Iterator[list[int]]:
        return super().__iter__()


def stratified_by_length(lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """An order of a pool whose consecutive runs keep the pool's class mix and similar lengths.

    Each class is sorted by length and its members spread evenly over ``[0, 1)`` (member ``i`` of
    ``n`` at ``(i + 0.5) / n``); merging the classes by that position interleaves them, so any run
    of ``k`` consecutive items holds each class's share of ``k`` to within one item, drawn from
    the same length quantile of every class. Cutting the order into batches then gives batches
    that keep the label mix (a sorted pool of short texts that are mostly one class would give
    single-class batches) at the cost of some padding where the classes' lengths differ.

    Example:
        >>> order = stratified_by_length(torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([0, 0, 0, 0, 1, 1]))
        >>> order.tolist()
        [0, 4, 1, 2, 5, 3]
    """
    position = torch.empty(len(lengths), dtype=torch.float64)
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        members = members[torch.argsort(lengths[members], stable=True)]
        position[members] = (torch.arange(len(members), dtype=torch.float64) + 0.5) / len(members)
    return torch.argsort(position, stable=True)


class BucketBatchSampler(SkippableBatchSampler):
    """Batches of indices whose sequences have similar lengths; new buckets every epoch.

    ``sampler`` gives the (shuffled) order; Lightning swaps it for a ``DistributedSampler``
    under DDP, so each rank buckets its own shard. The order of the batches is shuffled with a
    generator seeded by ``seed`` and the sampler's epoch (``set_epoch``), never torch's global one.

    Args:
        sampler: the order of the indices (a ``RandomSampler`` for training).
        batch_size: indices per batch.
        drop_last: drop the last batch of a pool when it is smaller than ``batch_size``.
        lengths: the length of every sequence of the data set.
        bucket_size: batches per pool sorted by length; larger pools mean less padding and
            less random batches.
        shuffle: shuffle the order of the batches (training); off, batches come shortest first
            within each pool (evaluation).
        seed: the base seed of the batch order; default ``PL_GLOBAL_SEED`` (``seed_everything``).
        labels: the class of every example: each pool is then cut so every batch keeps the pool's
            class mix (see ``stratified_by_length``); without them a pool is sorted by length alone,
            and where length goes with the class (short texts mostly one class) batches are
            nearly single-class.

    Raises:
        ValueError: ``batch_size`` or ``bucket_size`` below 1, ``labels`` of another length than
            ``lengths``, or ``labels`` with ``drop_last``.

    Example:
        >>> from torch.utils.data import SequentialSampler
        >>> lengths = [5, 1, 4, 2, 3, 6]
        >>> sampler = BucketBatchSampler(SequentialSampler(lengths), 2, False, lengths, bucket_size=3)
        >>> sorted(sorted(lengths[i] for i in batch) for batch in sampler)
        [[1, 2], [3, 4], [5, 6]]
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        lengths: Sequence[int],
        bucket_size: int = 50,
        shuffle: bool = True,
        seed: int | None = None,
        labels: Sequence[int] | None = None,
    ) -> None:
        if bucket_size < 1:
            raise ValueError(f"bucket_size must be >= 1 (batches per length-sorted pool), got {bucket_size}.")
        if labels is not None and len(labels) != len(lengths):
            raise ValueError(f"labels has {len(labels)} entries but lengths has {len(lengths)}: one of each per example.")
        if labels is not None and drop_last:
            raise ValueError("labels (class-keeping batches) cannot be combined with drop_last: the batches of a pool "
                             "are cut across classes, so no batch is the short one to drop.")
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.labels = None if labels is None else torch.as_tensor(list(labels), dtype=torch.long)
        self.bucket_size = bucket_size
        self.shuffle = shuffle
        self.seed = global_seed() if seed is None else seed

    def _batches(self) -> Iterator[list[int]]:
        order = torch.as_tensor(list(self.sampler), dtype=torch.long)
        pool = self.batch_size * self.bucket_size
        batches: list[list[int]] = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            if self.labels is None:
                chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            else:
                chunk = chunk[stratified_by_length(self.lengths[chunk], self.labels[chunk])]
            for first in range(0, len(chunk), self.batch_size):
                batch = chunk[first : first + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch.tolist())
        epoch = getattr(self.sampler, "epoch", 0)  # EpochShuffle or DistributedSampler; Lightning sets it
        order_of_batches = (torch.randperm(len(batches), generator=_generator(self.seed, epoch, 1)).tolist()
                            if self.shuffle else range(len(batches)))
        for index in order_of_batches:
            yield batches[index]

    def __len__(self) -> int:
        count = len(self.sampler)  # type: ignore[arg-type]
        pool = self.batch_size * self.bucket_size
        full, rest = divmod(count, pool)
        per_pool = self.bucket_size
        if self.drop_last:
            return full * per_pool + rest // self.batch_size
        return full * per_pool + -(-rest // self.batch_size)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` that Lightning can resume mid-epoch: it counts the batches it handed out.

    Lightning saves the ``state_dict`` of a training loader that has one into every checkpoint
    and gives it back on resume, before the first batch; the next pass then starts after the
    batches the interrupted epoch had already trained on (its ``SkippableBatchSampler`` skips
    them without loading them). With the seeded samplers above, the resumed epoch's remaining
    batches are exactly the interrupted run's. The loader also draws its workers' base seed from
    its own generator rather than torch's global one, which the training steps (dropout) use.
    Lightning's fetcher does not prefetch from a loader with a length, so a checkpoint written
    after batch ``k`` counts ``k + 1`` batches. (torchdata's ``StatefulDataLoader`` does the same
    counting but is a further dependency and still needs these seeded samplers.)

    Args:
        *args, **kwargs: as for ``DataLoader``; the batch sampler must be a ``SkippableBatchSampler``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("generator", torch.Generator().manual_seed(global_seed()))
        super().__init__(*args, **kwargs)
        self._epoch, self._served = 0, 0
        self._resume_at: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch = getattr(getattr(self.batch_sampler, "sampler", None), "epoch", 0)
        resume, self._resume_at = self._resume_at, None
        skip = resume["batches"] if resume and resume["epoch"] == epoch else 0
        if skip:
            self.batch_sampler.skip_next(skip)  # type: ignore[union-attr]
        self._epoch, self._served = epoch, skip
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._served}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume_at = {"epoch": int(state_dict["epoch"]), "batches": int(state_dict["batches"])}


def resumable_loader(dataset: Any, collate_fn: Any, batch_size: int, *, shuffle: bool = False,
                     lengths: Sequence[int] | None = None, labels: Sequence[int] | None = None,
                     bucket_size: int = 50, num_workers: int = 0) -> ResumableLoader:
    """The loader every task's data module builds: resumable mid-epoch, reshuffled every epoch when ``shuffle`` (T42).

    With ``lengths``, batches of similar lengths (``BucketBatchSampler``, T43); with ``labels`` as well, each
    bucketed batch keeps the class mix. Without ``lengths``, plain batches in the sampler's order.
    """
    order: Sampler = EpochShuffle(dataset) if shuffle else SequentialSampler(dataset)
    if lengths is not None:
        batches: SkippableBatchSampler = BucketBatchSampler(
            order, batch_size, False, list(lengths), bucket_size, shuffle=shuffle, labels=labels
        )
    else:
        batches = SkippableBatchSampler(order, batch_size, False)
    return ResumableLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                           persistent_workers=num_workers > 0, collate_fn=collate_fn)
