# task: text_classification
"""Text classification data: the user's CSV/TSV/JSONL files or the bundled MR/IMDB sets.

Implements T41 (stratified, seeded train/val/test split, vocabulary fitted on the
training split only), T42 (training data reshuffled every epoch), T43 (padded batches with
lengths, for packed sequences in the model; optional length bucketing and truncation) and the
data side of T23 (the training split's tokens and an optional unlabelled corpus, the only text
an embedding initialiser such as ``Word2VecInit`` may learn from).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Optional, Union

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from .examples import ExampleAccess
from .oversample import check_oversampling
from .sampler import resumable_loader
from .splits import line_list, say, stratified_split
from .text_io import BUNDLED, SUFFIXES, Example, read_bundled, read_examples, read_texts, tokenize
from .vocab import Vocabulary


AUTO = "auto"
#: ``max_length: auto``: the 95th percentile of the training texts' lengths, never below 256 tokens
AUTO_PERCENTILE, AUTO_FLOOR = 95, 256


def percentile_length(ordered: Sequence[int], percentile: float = AUTO_PERCENTILE) -> int:
    """The ``percentile``-th percentile (nearest rank) of sorted, non-empty ``ordered`` lengths.

    Example:
        >>> percentile_length(list(range(1, 101)))
        95
    """
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]


def length_policy(lengths: Sequence[int], percentile: float = AUTO_PERCENTILE,
                  floor: int = AUTO_FLOOR) -> tuple[Optional[int], str]:
    """What ``max_length: auto`` means for texts of these token ``lengths``: ``(max_length or None, why)``.

    The cut is the ``percentile``-th percentile of the lengths (nearest rank), but never below
    ``floor``: short texts are never cut, and a corpus of long documents loses only its longest
    ``100 - percentile`` percent's tails, which pad every batch they are in (or, with bucketing,
    cost as much as many short texts) for little signal. ``None`` when no text is longer than the cut.

    Example:
        >>> length_policy([10] * 96 + [1000] * 4)[0], length_policy([10, 20, 30])[0]
        (256, None)
        >>> length_policy(list(range(1, 1001)))[0]
        950
    """
    if not lengths:
        return None, "max_length: auto -> no cut (no training text)"
    ordered = sorted(lengths)
    cut = max(floor, percentile_length(ordered, percentile))
    longer = [n for n in ordered if n > cut]
    if not longer:
        return None, (f"max_length: auto -> no cut: no training text is longer than {cut} tokens "
                      f"(the longest has {ordered[-1]})")
    lost = sum(n - cut for n in longer) / sum(ordered)
    return cut, (f"max_length: auto -> {cut} tokens (the {percentile:g}th percentile of the training texts, at least "
                 f"{floor}): {len(longer) / len(ordered):.1%} of the texts are cut, {lost:.1%} of the tokens. Set "
                 "data.max_length to a number, or null to keep whole texts")


def auto_unlabelled(dataset: str, data_path: Optional[str]) -> tuple[Optional[str], str]:
    """What ``unlabelled: auto`` means for this data: ``(corpus or None, why)``.

    Movie-review text helps word vectors only for movie reviews: the IMDB reviews for the bundled
    MR sentences (+2.8 points over MR-train alone, benchmarks/results/word2vec.md), nothing for a
    user's own data, whose words the training split teaches in their own company.

    Example:
        >>> auto_unlabelled("mr", None)[0], auto_unlabelled("mr", "mine.csv")[0]
        ('imdb', None)
    """
    if data_path is not None:
        return None, ("unlabelled: auto -> none for your own data (movie reviews only go with the bundled movie "
                      "sets); set data.unlabelled to a file of unlabelled text from your domain to add it")
    if dataset == "mr":
        return "imdb", "unlabelled: auto -> the bundled IMDB reviews, the same domain as the bundled MR set"
    return None, f"unlabelled: auto -> none ({dataset.upper()} is the set being classified)"


_STAGE_OF = {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}
_SPLITS_OF = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class EncodedTexts(Dataset):
    """Token-index sequences with optional label indices."""

    def __init__(self, sequences: list[list[int]], labels: Optional[list[int]] = None) -> None:
        self.sequences = sequences
        self.labels = labels

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.sequences[index], (-1 if self.labels is None else self.labels[index])


def pad_collate(items: list[tuple[list[int], int]], pad_index: int = 0) -> dict[str, torch.Tensor]:
    """Pad a list of ``(token_ids, label)`` to a batch dict ``tokens [B, T]``, ``lengths [B]``, ``labels [B]``."""
    lengths = torch.tensor([len(ids) for ids, _ in items], dtype=torch.long)
    tokens = torch.full((len(items), int(lengths.max())), pad_index, dtype=torch.long)
    for row, (ids, _) in enumerate(items):
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    batch = {"tokens": tokens, "lengths": lengths}
    if items[0][1] >= 0:
        batch["labels"] = torch.tensor([label for _, label in items], dtype=torch.long)
    return batch


class TextClassificationDataModule(ExampleAccess, LightningDataModule):
    """Labelled texts split into train/val/test, tokenised, indexed and padded.

    The vocabulary and label names are built from the training split only (no leak from
    validation or test text) and saved in every checkpoint, so ``predict`` on raw text needs
    nothing but the checkpoint. Facts the model needs (``vocab_size``, ``num_classes``,
    ``pad_index``) are available right after construction for LightningCLI's argument links.

    Args:
        dataset: bundled data set used when ``data_path`` is unset: ``mr`` (8,530 movie-review
            sentences, Pang & Lee 2005) or ``imdb`` (the 25,000 training reviews of Maas et al.
            2011; the package ships no test split, so the seeded stratified split below holds
            ``test_fraction`` of them out).
        data_path: your labelled data, a ``.csv``, ``.tsv`` or ``.jsonl`` file.
        val_path: optional separate validation file; otherwise carved from the training part.
        test_path: optional separate test file; otherwise split off the data (T41).
        text_column: column or JSON key holding the text.
        label_column: column or JSON key holding the label.
        val_fraction: share of the non-test data used for validation.
        test_fraction: share of all data held out for testing (7:3 train/test by default, T41).
        limit: keep only this many examples (stratified) before splitting, for quick runs.
        lowercase: lowercase text before tokenising.
        min_freq: tokens seen fewer times in the training split map to ``<unk>``.
        max_vocab_size: keep at most this many of the most frequent tokens.
        max_length: truncate token sequences to this length; ``auto`` (default): the 95th
            percentile of the training texts' lengths, never below 256 tokens (short texts are
            never cut; IMDB: 692, 5% of the reviews cut), said in one line when it cuts
            (``length_reason`` says why either way); ``null``: never cut.
        batch_size: examples per batch.
        bucketing: batch training texts of similar length together (T43): pools of
            ``bucket_size`` batches are sorted by length, and the batches shuffled, every epoch.
            Validation and test batches are length-sorted too (their order does not matter).
        bucket_size: batches per length-sorted pool when ``bucketing`` is on.
        stratified_batches: with ``bucketing``, cut each pool so every training batch keeps the
            class mix (``stratified_by_length``): where length goes with the class (short
            messages mostly one class), length-sorted batches would be nearly single-class.
        empty_rows: rows of any data file with an empty text or label: ``error`` (counted in one
            message, the first 10 lines of each column shown) or ``drop`` (left out, counted in one line).
        min_label_count: a label of ``data_path`` seen fewer times is rare (usually a typo): it
            can be trained on or validated, not both.
        rare_labels: what to do with rare labels: ``error`` (default: each named with its
            lines), ``drop`` their rows, or ``keep`` them with a warning.
        unlabelled: extra text without labels for learning word vectors (``Word2VecInit``): a
            bundled set other than ``dataset`` (e.g. ``imdb`` for MR), a ``.txt``/``.csv``/
            ``.tsv``/``.jsonl`` file (``text_column``), or ``auto``: the IMDB reviews when the
            bundled MR set is classified (the same domain), none with your own ``data_path``
            (movie reviews would teach your domain's words the wrong company). Never used for the
            vocabulary or training. ``unlabelled_reason`` says what was chosen and why.
        num_workers: DataLoader worker processes.
        seed: seed of the split (the training order follows ``seed_everything``).
        predict_texts: raw texts to classify with ``predict``.
        predict_path: a ``.txt`` (one text per line), ``.csv``, ``.tsv`` or ``.jsonl`` file to classify.
        vocab_from: a checkpoint whose vocabulary, labels and tokeniser settings to reuse instead
            of building them; the CLI sets it from ``--ckpt_path``.
        oversample: a previous run's ``train_losses.csv`` (``HardExamples``): its hardest training
            examples appear ``oversample_factor`` times per epoch (hard-example mining); same data and split.
        oversample_share: the share of training examples, highest loss first, that are oversampled.
        oversample_factor: how many times each of them appears in an epoch (>= 2).

    Raises:
        ValueError: an argument out of range (fractions, sizes), both ``predict_texts`` and
            ``predict_path`` given, ``unlabelled`` naming the bundled set being classified; when
            the data is read: every empty row, or labels rarer than ``min_label_count``.

    Example::

        data:
          dataset: mr            # or data_path: reviews.csv
          batch_size: 64
          min_freq: 1
          val_fraction: 0.1
          test_fraction: 0.3
          max_length: auto       # the 95th percentile of the training lengths, at least 256
          bucketing: true        # batches of similar lengths, each keeping the class mix
          unlabelled: auto       # extra text for Word2VecInit: IMDB for MR, none for your own data
    """

    def __init__(
        self,
        dataset: Literal["mr", "imdb"] = "mr",
        data_path: Optional[str] = None,
        val_path: Optional[str] = None,
        test_path: Optional[str] = None,
        text_column: str = "text",
        label_column: str = "label",
        val_fraction: float = 0.1,
        test_fraction: float = 0.3,
        limit: Optional[int] = None,
        lowercase: bool = True,
        min_freq: int = 1,
        max_vocab_size: Optional[int] = None,
        max_length: Union[int, Literal["auto"], None] = AUTO,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 42,
        bucketing: bool = False,
        bucket_size: int = 50,
        stratified_batches: bool = True,
        empty_rows: Literal["error", "drop"] = "error",
        min_label_count: int = 3,
        rare_labels: Literal["error", "drop", "keep"] = "error",
        unlabelled: Optional[str] = None,
        predict_texts: Optional[list[str]] = None,
        predict_path: Optional[str] = None,
        oversample: Optional[str] = None,
        oversample_share: float = 0.1,
        oversample_factor: int = 2,
        vocab_from: Optional[str] = None,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}.")
        if test_path is None and test_fraction == 0.0:
            raise ValueError("test_fraction is 0 and no test_path is given: set one of them.")
        for name, value in (("batch_size", batch_size), ("min_freq", min_freq), ("bucket_size", bucket_size),
                            ("min_label_count", min_label_count)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        for name, value in (("limit", limit), ("max_vocab_size", max_vocab_size)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {value}.")
        if max_length is not None and max_length != AUTO and not (isinstance(max_length, int) and max_length >= 1):
            raise ValueError(f"max_length must be a number >= 1, `auto` (from the training texts) or null (never cut), "
                             f"got {max_length!r}.")
        if empty_rows not in ("error", "drop"):
            raise ValueError(f"empty_rows must be `error` or `drop`, got {empty_rows!r}.")
        if rare_labels not in ("error", "drop", "keep"):
            raise ValueError(f"rare_labels must be `error`, `drop` or `keep`, got {rare_labels!r}.")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
        if predict_texts is not None and predict_path is not None:
            raise ValueError("give predict_texts or predict_path, not both.")
        if unlabelled == AUTO:
            unlabelled, self.unlabelled_reason = auto_unlabelled(dataset, data_path)
        else:
            self.unlabelled_reason = "data.unlabelled" if unlabelled is not None else "data.unlabelled: null"
        if unlabelled is not None and unlabelled in BUNDLED and data_path is None and unlabelled == dataset:
            raise ValueError(
                f"unlabelled={unlabelled!r} is the data set being classified: its validation and test texts "
                f"would leak into the word vectors. Use the other bundled set "
                f"({', '.join(sorted(set(BUNDLED) - {dataset}))}) or a file of your own."
            )
        if unlabelled is not None and unlabelled not in BUNDLED and Path(unlabelled).suffix.lower() not in SUFFIXES:
            raise ValueError(
                f"unlabelled={unlabelled!r} is neither {AUTO!r}, a bundled set ({', '.join(BUNDLED)}) nor a "
                ".txt/.csv/.tsv/.jsonl file."
            )
        if unlabelled is not None and unlabelled not in BUNDLED and not Path(unlabelled).is_file():
            raise FileNotFoundError(f"unlabelled: {unlabelled} does not exist. Give a .txt/.csv/.tsv/.jsonl file of "
                                    "unlabelled text, `auto`, or null.")
        self.save_hyperparameters()
        self.dataset = dataset
        self.data_path = data_path
        self.val_path = val_path
        self.test_path = test_path
        self.text_column = text_column
        self.label_column = label_column
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.limit = limit
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.max_vocab_size = max_vocab_size
        self.max_length = max_length
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.predict_texts = predict_texts
        self.predict_path = predict_path
        check_oversampling(oversample, oversample_share, oversample_factor)
        self.oversample = oversample
        self.oversample_share = oversample_share
        self.oversample_factor = oversample_factor
        self._oversampled: Optional[Dataset] = None
        self.vocab_from = vocab_from
        self.bucketing = bucketing
        self.bucket_size = bucket_size
        self.stratified_batches = stratified_batches
        self.empty_rows = empty_rows
        self.min_label_count = min_label_count
        self.rare_labels = rare_labels
        self.unlabelled = unlabelled
        self.length_reason = ""  # what max_length: auto chose and why

        self._vocab: Optional[Vocabulary] = None
        self._long_texts: Optional[bool] = None
        self._train_lengths: list[int] = []
        self._labels: Optional[list[str]] = None
        self._splits: Optional[dict[str, list[Example]]] = None
        self.texts: dict[str, list[str]] = {}
        self.datasets: dict[str, EncodedTexts] = {}

    # ------------------------------------------------------------------ facts for the model
    @property
    def vocab(self) -> Vocabulary:
        """The vocabulary (built on first use from the training split, or from ``vocab_from``)."""
        self._ensure_vocab()
        assert self._vocab is not None
        return self._vocab

    @property
    def labels(self) -> list[str]:
        """Label names; the model's class ``i`` is ``labels[i]``."""
        self._ensure_vocab()
        assert self._labels is not None
        return self._labels

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def long_texts(self) -> bool:
        """Whether the training texts are long: their 95th-percentile length exceeds 256 tokens (``AUTO_FLOOR``).

        A model's ``pooling: auto`` reads it (linked by the CLI): long documents are read better by a
        max over their steps than by their final state. Saved in checkpoints, so ``predict`` needs no
        training data to know it.
        """
        self._ensure_vocab()  # from vocab_from's checkpoint, when there is one
        if self._long_texts is None:
            self._load_splits()
            self._long_texts = percentile_length(sorted(self._train_lengths)) > AUTO_FLOOR
        return self._long_texts

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def pad_index(self) -> int:
        return Vocabulary.pad_index

    input_name = "text"  # the predictions table's first column

    def predict_inputs(self) -> list[str]:
        """The texts given to ``predict``, in order (after ``setup("predict")``)."""
        return list(self.texts["predict"])

    def class_counts(self, split: str = "train") -> list[int]:
        """Examples of each class (in the order of ``labels``) in ``split`` (``train``, ``val`` or ``test``)."""
        counts = Counter(example.label for example in self._load_splits()[split])
        return [counts.get(label, 0) for label in self.labels]

    # ------------------------------------------------------------------ text for word vectors (T23)
    def training_tokens(self) -> list[list[str]]:
        """Tokens of the training split only (truncated like the model's input), one list per text.

        The validation and test texts never appear here, so vectors learnt from it do not leak.
        """
        return [self._tokens(example.text) for example in self._load_splits()["train"]]

    @property
    def unlabelled_name(self) -> Optional[str]:
        """The unlabelled corpus in words (``the bundled IMDB reviews`` or its path), ``None`` without one."""
        if self.unlabelled is None:
            return None
        return f"the bundled {self.unlabelled.upper()} reviews" if self.unlabelled in BUNDLED else str(self.unlabelled)

    def unlabelled_tokens(self) -> list[list[str]]:
        """Tokens of the ``unlabelled`` corpus (empty without one), one list per text."""
        if self.unlabelled is None:
            return []
        if self.unlabelled in BUNDLED:
            texts = [example.text for example in read_bundled(self.unlabelled)]
        else:
            texts = read_texts(self.unlabelled, self.text_column, self.empty_rows)
        return [tokens for tokens in (tokenize(text, self.lowercase) for text in texts) if tokens]

    # ------------------------------------------------------------------ loading
    def _ensure_vocab(self) -> None:
        if self._vocab is not None:
            return
        if self.vocab_from is not None:
            self.load_state_dict(self._state_from_checkpoint(self.vocab_from))
            return
        train = self._load_splits()["train"]
        self._labels = sorted({example.label for example in train})
        self._vocab = Vocabulary.build(
            (self._tokens(example.text) for example in train), self.min_freq, self.max_vocab_size
        )

    def _state_from_checkpoint(self, path: str) -> dict[str, Any]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"vocab_from: checkpoint {path} does not exist.")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # reads only what is used
        state = checkpoint.get(type(self).__qualname__)
        if not state or "vocab" not in state:
            raise ValueError(
                f"vocab_from: {path} holds no {type(self).__qualname__} state (keys: {', '.join(checkpoint)}). "
                "Use a checkpoint written by a fit with this data module."
            )
        return state

    def _tokens(self, text: str) -> list[str]:
        tokens = tokenize(text, self.lowercase)
        return tokens[: self.max_length] if self.max_length else tokens

    def _rare_labels(self, examples: list[Example], source: str) -> list[Example]:
        """``examples`` after the ``rare_labels`` policy for labels seen fewer than ``min_label_count`` times."""
        counts = Counter(example.label for example in examples)
        rare = sorted(label for label, count in counts.items() if count < self.min_label_count)
        if not rare:
            return examples
        lines = {label: [e.line for e in examples if e.label == label] for label in rare}
        named = "; ".join(f"{label!r} ({line_list(lines[label], 5)})" for label in rare)
        what = (f"{source}: {len(rare)} label{'s' if len(rare) > 1 else ''} seen fewer than {self.min_label_count} "
                f"times: {named}")
        if self.rare_labels == "error":
            raise ValueError(f"{what}. So rare a label (a typo?) cannot be both trained on and validated. Fix it, set "
                             "--data.rare_labels drop to leave those rows out, or --data.rare_labels keep.")
        if self.rare_labels == "drop":
            say(f"{what}: {sum(counts[label] for label in rare)} rows left out (data.rare_labels: drop).")
            return [e for e in examples if e.label not in rare]
        say(f"{what}: kept (data.rare_labels: keep); they cannot be both trained on and validated.")
        return examples

    def _resolve_max_length(self, train: list[Example]) -> None:
        self._train_lengths = [len(tokenize(e.text, self.lowercase)) for e in train]  # whole texts
        if self.max_length != AUTO:
            return
        self.max_length, self.length_reason = length_policy(self._train_lengths)
        if self.max_length is not None:  # said when it cuts; `length_reason` keeps the "no cut" too
            say(self.length_reason + ".", logging.INFO)

    def _load_splits(self) -> dict[str, list[Example]]:
        if self._splits is not None:
            return self._splits
        if self.data_path is not None:
            examples = read_examples(self.data_path, self.text_column, self.label_column, self.empty_rows)
            source = self.data_path
            examples = self._rare_labels(examples, source)
        else:
            examples = read_bundled(self.dataset)
            source = f"the bundled {self.dataset.upper()} set"
        if self.limit is not None and self.limit < len(examples):
            keep = stratified_split([e.label for e in examples], (self.limit / len(examples),), self.seed)[1]
            examples = [examples[i] for i in keep]
        fractions = (self.val_fraction, 0.0 if self.test_path else self.test_fraction)
        parts = stratified_split([e.label for e in examples], ((1 - fractions[1]) * fractions[0], fractions[1]), self.seed)
        splits = {name: [examples[i] for i in part] for name, part in zip(("train", "val", "test"), parts)}
        if self.val_path is not None:
            splits["train"] += splits.pop("val")
            splits["val"] = read_examples(self.val_path, self.text_column, self.label_column, self.empty_rows)
        if self.test_path is not None:
            splits["test"] = read_examples(self.test_path, self.text_column, self.label_column, self.empty_rows)
        if not splits["train"] or not splits["val"]:
            raise ValueError(
                f"{source} has {len(examples)} examples: too few to split into train and validation. "
                "Provide more data or a separate val_path."
            )
        train_labels = {e.label for e in splits["train"]}
        if len(train_labels) < 2:
            raise ValueError(f"the training split of {source} holds a single label ({train_labels.pop()!r}).")
        for name, path in (("val", self.val_path), ("test", self.test_path)):
            for example in splits[name]:
                if example.label not in train_labels:
                    where = f"{path}, line {example.line}" if path else f"{source}, line {example.line}"
                    raise ValueError(
                        f"{where}: label {example.label!r} of the {name} split never appears in the training "
                        f"split (labels: {', '.join(sorted(train_labels))}). Fix the label or add training examples."
                    )
        self._resolve_max_length(splits["train"])
        self._splits = splits
        return splits

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, stage: str) -> None:
        """Read, split and encode the data the stage needs; a second call for a stage is free."""
        if all(name in self.datasets for name in _SPLITS_OF[stage]):
            return  # the CLI sets up before the run starts, so bad data stops it before anything is created
        vocab = self.vocab
        index = {label: i for i, label in enumerate(self.labels)}
        if stage == "predict":
            texts = self.predict_texts
            if texts is None and self.predict_path is not None:
                texts = read_texts(self.predict_path, self.text_column, self.empty_rows)
            if not texts:
                raise ValueError(
                    "nothing to predict: pass --data.predict_texts '[\"a review\", \"another\"]' "
                    "or --data.predict_path reviews.txt"
                )
            self.texts["predict"] = list(texts)
            self.datasets["predict"] = EncodedTexts([vocab.encode(self._tokens(t)) for t in texts])
            return
        splits = self._load_splits()
        for name in _SPLITS_OF[stage]:
            unknown = sorted({e.label for e in splits[name]} - set(index))
            if unknown:
                raise ValueError(
                    f"{name} split has labels {unknown} that the checkpoint's model does not know "
                    f"(labels: {', '.join(self.labels)})."
                )
            self.texts[name] = [e.text for e in splits[name]]
            self.datasets[name] = EncodedTexts(
                [vocab.encode(self._tokens(e.text)) for e in splits[name]], [index[e.label] for e in splits[name]]
            )

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        dataset = self._training_set() if name == "train" else self.datasets[name]
        bucketed = self.bucketing and name != "predict"  # predictions keep the input order
        return resumable_loader(
            dataset, pad_collate, self.batch_size, shuffle=shuffle,
            lengths=[len(ids) for ids in dataset.sequences] if bucketed else None,
            labels=dataset.labels if shuffle and self.stratified_batches else None,  # training batches keep the mix
            bucket_size=self.bucket_size, num_workers=self.num_workers,
        )

    # ------------------------------------------------------------------ example by example (ensembles, T63, hard examples)
    def split_inputs(self, split: str) -> list[str]:
        """The texts of ``split`` as read (before tokenising), in stored order: what a classical model reads (T63)."""
        self.setup(_STAGE_OF[split])
        return list(self.texts[split])

    def _ordered_collate(self) -> Any:
        return pad_collate

    def _subset(self, dataset: Any, indices: list[int]) -> Dataset:
        return EncodedTexts([dataset.sequences[i] for i in indices], [dataset.labels[i] for i in indices])

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)  # T42: a new order every epoch

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "vocab": list(self.vocab.itos),
            "labels": list(self.labels),
            "lowercase": self.lowercase,
            "max_length": self.max_length,
            "long_texts": self.long_texts,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        vocab = Vocabulary(state_dict["vocab"][2:])
        changed = self._vocab is not None and (vocab != self._vocab or state_dict["labels"] != self._labels)
        self._vocab = vocab
        self._labels = list(state_dict["labels"])
        self.lowercase = state_dict.get("lowercase", self.lowercase)
        self.max_length = state_dict.get("max_length", self.max_length)
        self._long_texts = state_dict.get("long_texts", False)  # checkpoints from before it: the pooling they had
        if changed:  # datasets encoded with another vocabulary: encode them again
            stages = {_STAGE_OF[name] for name in self.datasets}
            self.datasets.clear()
            self._oversampled = None
            for stage in stages:
                self.setup(stage)
