"""Data loading and preprocessing for liandan projects (plain Python, no template code)."""

from .sampler import BucketBatchSampler
from .text import TextClassificationDataModule, pad_collate, stratified_split
from .text_io import read_bundled, read_examples, read_texts, tokenize
from .vocab import Vocabulary

__all__ = [
    "BucketBatchSampler",
    "TextClassificationDataModule",
    "Vocabulary",
    "pad_collate",
    "read_bundled",
    "read_examples",
    "read_texts",
    "stratified_split",
    "tokenize",
]
