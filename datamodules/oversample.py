"""Online hard-example mining across runs: the training examples a previous run found hardest, seen more often.

A run with ``HardExamples(train_losses=true)`` writes ``train_losses.csv`` (each training example's
index, label and loss under the best weights). A second run on the same data and split passes it as
``--data.oversample``: the ``oversample_share`` of examples with the highest loss appear
``oversample_factor`` times in each training epoch (validation, test and the split itself are unchanged).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path


def check_oversampling(path: str | None, share: float, factor: int) -> None:
    """Raise ``ValueError`` for a share outside (0, 1] or a factor below 2 (when ``path`` is given)."""
    if path is None:
        return
    if not 0.0 < share <= 1.0:
        raise ValueError(f"oversample_share must be in (0, 1], got {share}.")
    if factor < 2:
        raise ValueError(f"oversample_factor must be >= 2 (1 would change nothing), got {factor}.")


def oversampled_indices(path: str, labels: Sequence[int], share: float, factor: int) -> tuple[list[int], int]:
    """The training indices of one epoch: every example once, the hardest ``share`` ``factor`` times.

    Returns the indices and the number of hard examples.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file does not describe this training split (another size, another label at an index),
            or lacks the ``index``, ``label`` and ``loss`` columns.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--data.oversample {path}: no such file. A fit with HardExamples(train_losses=true) "
                                "writes train_losses.csv into its run folder.")
    with file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"index", "label", "loss"} <= set(rows[0]):
        raise ValueError(f"{path} is not a train_losses.csv: it needs the columns index, label, loss.")
    if len(rows) != len(labels):
        raise ValueError(f"{path} lists {len(rows)} training examples, this training split has {len(labels)}: it was "
                         "written for other data or another split (same data options and seed needed).")
    losses: list[float | None] = [None] * len(labels)
    for line, row in enumerate(rows, start=2):
        try:
            index, label, loss = int(row["index"]), int(row["label"]), float(row["loss"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {line}: index and label must be integers and loss a number, got "
                             f"{row['index']!r}, {row['label']!r}, {row['loss']!r}.") from None
        if not 0 <= index < len(labels) or losses[index] is not None:
            raise ValueError(f"{path}, line {line}: index {index} is outside the training split or listed twice.")
        if label != labels[index]:
            raise ValueError(f"{path}: example {row['index']} has label {row['label']} there but not in this training "
                             "split: it was written for other data or another split (same data options and seed needed).")
        losses[index] = loss
    count = max(1, math.ceil(share * len(labels)))
    hard = sorted(range(len(labels)), key=lambda i: -float(losses[i] or 0.0))[:count]
    return list(range(len(labels))) + sorted(hard) * (factor - 1), count
