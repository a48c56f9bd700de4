"""What every task's data module shares: seeded stratified splits (T41) and one-line notices."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Sequence

from lightning.pytorch.utilities.rank_zero import rank_zero_only


def stratified_split(
    labels: Sequence[str], fractions: Sequence[float], seed: int
) -> list[list[int]]:
    """Split indices into ``len(fractions) + 1`` parts with the same label proportions in each.

    ``fractions`` are the shares of the later parts (e.g. ``(0.1, 0.3)`` for val and test);
    the first part (train) gets the rest. Each label's indices are shuffled with ``seed`` and
    cut by rounding, so the split is deterministic and every part keeps the class balance.

    Example:
        >>> parts = stratified_split(["a"] * 8 + ["b"] * 2, (0.5,), seed=0)
        >>> [len(p) for p in parts]
        [5, 5]
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    rng = random.Random(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for label in sorted(by_label):
        indices = by_label[label]
        rng.shuffle(indices)
        start = len(indices)
        for part, fraction in zip(parts[:0:-1], fractions[::-1]):
            count = round(fraction * len(indices))
            part.extend(indices[start - count : start])
            start -= count
        parts[0].extend(indices[:start])
    return [sorted(part) for part in parts]


@rank_zero_only
def say(message: str, level: int = logging.WARNING) -> None:
    """One line to this package's logger (the generated CLI prints it), on rank zero only."""
    logging.getLogger(__package__ or __name__).log(level, message)


def line_list(lines: list[int], shown: int = 10) -> str:
    """``line 4`` / ``lines 4, 9, 12`` / ``lines 4, 9, ... (and 3 more)``: where something was found.

    Example:
        >>> line_list([3]), line_list(list(range(1, 13)), shown=3)
        ('line 3', 'lines 1, 2, 3 (and 9 more)')
    """
    head = ", ".join(map(str, lines[:shown]))
    more = f" (and {len(lines) - shown} more)" if len(lines) > shown else ""
    return f"line{'s' if len(lines) > 1 else ''} {head}{more}"
