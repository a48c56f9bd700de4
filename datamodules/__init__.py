"""Data loading and preprocessing for liandan projects (plain Python, no template code)."""

from .augment import Augmentation, random_affine  # task: image_classification
from .image import ImageClassificationDataModule  # task: image_classification
from .sampler import BucketBatchSampler
from .sequence import SequenceClassificationDataModule, pad_series  # task: sequence_classification
from .splits import stratified_split
from .text import TextClassificationDataModule, pad_collate  # task: text_classification
from .text_io import read_bundled, read_examples, read_texts, tokenize  # task: text_classification
from .vocab import Vocabulary  # task: text_classification

__all__ = [
    "Augmentation",  # task: image_classification
    "BucketBatchSampler",
    "ImageClassificationDataModule",  # task: image_classification
    "SequenceClassificationDataModule",  # task: sequence_classification
    "TextClassificationDataModule",  # task: text_classification
    "Vocabulary",  # task: text_classification
    "pad_collate",  # task: text_classification
    "pad_series",  # task: sequence_classification
    "read_bundled",  # task: text_classification
    "read_examples",  # task: text_classification
    "random_affine",  # task: image_classification
    "read_texts",  # task: text_classification
    "stratified_split",
    "tokenize",  # task: text_classification
]
