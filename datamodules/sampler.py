"""Length bucketing (TRICKS T43): batches of texts of similar length, so little of a batch is padding.

A padded batch costs as much as its longest text. Sorting the whole training set by length
would remove the padding but also the randomness of the batches (T42), so the usual compromise
(torchtext's ``BucketIterator``, AllenNLP's bucket sampler) is used: shuffle, cut the order into
pools of ``bucket_size`` batches, sort each pool by length, cut it into batches and shuffle the
batches. torch ships no such sampler, hence this small class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, Sampler


class BucketBatchSampler(BatchSampler):
    """Batches of indices whose sequences have similar lengths; new buckets every epoch.

    ``sampler`` gives the (shuffled) order; Lightning swaps it for a ``DistributedSampler``
    under DDP, so each rank buckets its own shard. The order of the batches is shuffled with
    torch's global generator, which ``seed_everything`` seeds, like ``shuffle=True`` does.

    Args:
        sampler: the order of the indices (a ``RandomSampler`` for training).
        batch_size: indices per batch.
        drop_last: drop the last batch of a pool when it is smaller than ``batch_size``.
        lengths: the length of every sequence of the data set.
        bucket_size: batches per pool sorted by length; larger pools mean less padding and
            less random batches.
        shuffle: shuffle the order of the batches (training); off, batches come shortest first
            within each pool and nothing draws from the global generator (evaluation).

    Raises:
        ValueError: ``batch_size`` or ``bucket_size`` below 1.

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
    ) -> None:
        if bucket_size < 1:
            raise ValueError(f"bucket_size must be >= 1 (batches per length-sorted pool), got {bucket_size}.")
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.long)
        self.bucket_size = bucket_size
        self.shuffle = shuffle

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.as_tensor(list(self.sampler), dtype=torch.long)
        pool = self.batch_size * self.bucket_size
        batches: list[list[int]] = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            for first in range(0, len(chunk), self.batch_size):
                batch = chunk[first : first + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch.tolist())
        order_of_batches = torch.randperm(len(batches)).tolist() if self.shuffle else range(len(batches))
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
