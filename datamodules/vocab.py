# task: text_classification
"""A token vocabulary built on the training split only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Optional

PAD = "<pad>"
UNK = "<unk>"


class Vocabulary:
    """Maps tokens to indices; index 0 is padding, index 1 the unknown token.

    Tokens are ordered by decreasing frequency, ties broken alphabetically, so the same
    training split always gives the same indices.
    """

    pad_index = 0
    unk_index = 1

    def __init__(self, tokens: Iterable[str]) -> None:
        self.itos: list[str] = [PAD, UNK] + [t for t in tokens if t not in (PAD, UNK)]
        self.stoi: dict[str, int] = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(
        cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: Optional[int] = None
    ) -> "Vocabulary":
        """Count tokens and keep those seen at least ``min_freq`` times, at most ``max_size`` of them.

        Raises:
            ValueError: no token reaches ``min_freq``.
        """
        counts = Counter(token for tokens in token_lists for token in tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            raise ValueError(
                f"the vocabulary is empty: no token of the training split occurs at least min_freq={min_freq} "
                f"times ({len(counts)} distinct tokens seen). Lower --data.min_freq or provide more text."
            )
        return cls(kept)

    def encode(self, tokens: list[str]) -> list[int]:
        """Token indices, unknown tokens mapped to ``unk_index``; never empty (packing needs length ≥ 1)."""
        ids = [self.stoi.get(token, self.unk_index) for token in tokens]
        return ids or [self.unk_index]

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos
