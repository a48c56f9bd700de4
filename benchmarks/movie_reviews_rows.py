"""Rows of the bundled MR sentences for benchmarks that need a CSV "of one's own" (no download)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datamodules.text_io import read_bundled  # noqa: E402


def sample_rows(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` (text, label) rows drawn at random (seeded) from MR."""
    examples = read_bundled("mr")
    return [(e.text, e.label) for e in random.Random(seed).sample(examples, count)]
