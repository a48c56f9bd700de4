"""Text data pipeline: tokenizer, vocabulary, splits (T41), shuffling (T42), padding (T43), bad input."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter

import pytest
import torch

from datamodules import (
    TextClassificationDataModule,
    Vocabulary,
    pad_collate,
    read_bundled,
    stratified_split,
    text_io,
    tokenize,
)
from datamodules import text as text_module


def write_csv(path, rows, header="text,label", sep=","):
    path.write_text(header + "\n" + "".join(f"{t}{sep}{l}\n" for t, l in rows), encoding="utf-8")
    return path


def numbered_rows(n_per_label=30, labels=("neg", "pos")):
    """Rows whose texts each hold one token unique to the row (w<i>) plus a shared word."""
    rows, i = [], 0
    for label in labels:
        for _ in range(n_per_label):
            rows.append((f"shared w{i}", label))
            i += 1
    return rows


# ---------------------------------------------------------------- tokenizer and vocabulary
def test_tokenize_strips_html_decodes_entities_and_keeps_contractions():
    assert tokenize("A <b>great</b> film.<br /><br />Don't miss it &amp; enjoy!") == [
        "a", "great", "film", ".", "don't", "miss", "it", "&", "enjoy", "!",
    ]
    assert tokenize("Keep CASE", lowercase=False) == ["Keep", "CASE"]


def test_vocabulary_orders_by_frequency_then_alphabetically_and_applies_limits():
    vocab = Vocabulary.build([["b", "a", "c", "a"], ["b", "d"]], min_freq=1)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert Vocabulary.build([["b", "a", "c", "a"], ["b", "d"]], min_freq=2).itos[2:] == ["a", "b"]
    assert Vocabulary.build([["b", "a", "c", "a"], ["b", "d"]], max_size=1).itos[2:] == ["a"]
    assert vocab.encode(["a", "zzz"]) == [2, 1]
    assert vocab.encode([]) == [1]  # never an empty sequence: packing needs length >= 1


def test_empty_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match=r"the vocabulary is empty: no token .* min_freq=5 .*Lower --data.min_freq"):
        Vocabulary.build([["a", "b"]], min_freq=5)


# ---------------------------------------------------------------- splits (T41)
def test_stratified_split_keeps_class_balance_is_disjoint_and_seeded():
    labels = ["a"] * 700 + ["b"] * 300
    train, val, test = stratified_split(labels, (0.07, 0.3), seed=1)
    assert sorted(train + val + test) == list(range(1000))
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert Counter(labels[i] for i in test) == {"a": 210, "b": 90}
    assert Counter(labels[i] for i in val) == {"a": 49, "b": 21}
    assert stratified_split(labels, (0.07, 0.3), seed=1) == [train, val, test]
    assert stratified_split(labels, (0.07, 0.3), seed=2) != [train, val, test]


def test_bundled_mr_split_sizes_and_balance():
    examples = read_bundled("mr")
    assert len(examples) == 8530
    assert Counter(e.label for e in examples) == {"negative": 4265, "positive": 4265}
    dm = TextClassificationDataModule()
    splits = dm._load_splits()
    assert {name: len(part) for name, part in splits.items()} == {"train": 5372, "val": 598, "test": 2560}
    assert dm.labels == ["negative", "positive"] and dm.num_classes == 2


def test_the_bundled_csv_is_parsed_once_and_every_caller_gets_its_own_list(monkeypatch):
    parsed = []
    real = text_io._read_bundled_csv

    def counting(source):
        parsed.append(source)
        return real(source)

    text_io._bundled_examples.cache_clear()
    monkeypatch.setattr(text_io, "_read_bundled_csv", counting)
    first = read_bundled("mr")
    lines = [e.line for e in first]
    first.reverse()
    del first[:100]  # a caller's list is its own
    second = read_bundled("mr")
    assert parsed == ["rotten_tomatoes"]  # the second call did not read the file again
    assert second is not first and [e.line for e in second] == lines and len(second) == 8530
    TextClassificationDataModule(limit=100)._load_splits()  # a data module reads through the same cache
    assert parsed == ["rotten_tomatoes"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        second[0].text = "changed"  # the cached examples themselves cannot change
    assert len(read_bundled("imdb")) == 25_000 and parsed == ["rotten_tomatoes", "imdb"]  # one parse per set


def test_vocabulary_is_built_on_the_training_split_only(tmp_path):
    dm = TextClassificationDataModule(data_path=str(write_csv(tmp_path / "d.csv", numbered_rows())))
    splits = dm._load_splits()
    held_out = {tokenize(e.text)[1] for name in ("val", "test") for e in splits[name]}
    train_tokens = {tokenize(e.text)[1] for e in splits["train"]}
    assert held_out and not held_out & set(dm.vocab.itos)
    assert train_tokens <= set(dm.vocab.itos)


def test_separate_validation_and_test_files(tmp_path):
    data = write_csv(tmp_path / "train.csv", numbered_rows(20))
    val = write_csv(tmp_path / "val.csv", [("fine", "pos"), ("bad", "neg")])
    test = write_csv(tmp_path / "test.csv", [("ok", "pos")])
    dm = TextClassificationDataModule(data_path=str(data), val_path=str(val), test_path=str(test))
    splits = dm._load_splits()
    assert len(splits["train"]) == 40 and [e.text for e in splits["val"]] == ["fine", "bad"]
    assert [e.text for e in splits["test"]] == ["ok"]


# ---------------------------------------------------------------- batches (T42, T43)
def test_padded_batches_have_lengths_and_pad_index(tmp_path):
    batch = pad_collate([([5, 6, 7], 1), ([8], 0)])
    assert batch["tokens"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["lengths"].tolist() == [3, 1] and batch["labels"].tolist() == [1, 0]
    assert "labels" not in pad_collate([([5], -1)])


def test_training_order_changes_every_epoch_and_eval_order_does_not():
    from lightning.fabric.utilities.data import _set_sampler_epoch

    dm = TextClassificationDataModule(limit=400, batch_size=16)
    dm.setup("fit")
    loader = dm.train_dataloader()
    first = [b["tokens"][:, 0].tolist() for b in loader]
    torch.manual_seed(123)  # the order is a function of the seed and the epoch, never of the global generator
    assert [b["tokens"][:, 0].tolist() for b in dm.train_dataloader()] == first
    _set_sampler_epoch(loader, 1)  # what Lightning calls at the start of every epoch
    second = [b["tokens"][:, 0].tolist() for b in loader]
    assert first != second
    assert sorted(sum(first, [])) == sorted(sum(second, []))
    val = [b["tokens"].tolist() for b in dm.val_dataloader()]
    assert val == [b["tokens"].tolist() for b in dm.val_dataloader()]


def test_limit_and_max_length():
    dm = TextClassificationDataModule(limit=200, max_length=5)
    dm.setup("fit")
    sizes = {name: len(ds) for name, ds in dm.datasets.items()}
    assert sum(sizes.values()) + len(dm._load_splits()["test"]) == 200
    assert max(len(seq) for seq in dm.datasets["train"].sequences) == 5


# ---------------------------------------------------------------- formats
def test_tsv_and_jsonl_with_custom_columns(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("review\tsentiment\n" + "".join(f"text {i}\t{i % 2}\n" for i in range(40)), encoding="utf-8")
    dm = TextClassificationDataModule(data_path=str(tsv), text_column="review", label_column="sentiment")
    assert dm.labels == ["0", "1"]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps({"t": f"text {i}", "y": "ab"[i % 2]}) + "\n" for i in range(40)))
    assert TextClassificationDataModule(data_path=str(jsonl), text_column="t", label_column="y").labels == ["a", "b"]


def test_predict_from_texts_and_txt_file(tmp_path):
    dm = TextClassificationDataModule(limit=300, predict_texts=["a fine film", "<br />"])
    dm.setup("predict")
    assert dm.texts["predict"] == ["a fine film", "<br />"]
    assert dm.datasets["predict"].sequences[1] == [Vocabulary.unk_index]
    path = tmp_path / "p.txt"
    path.write_text("one\n\ntwo\n", encoding="utf-8")
    dm = TextClassificationDataModule(limit=300, predict_path=str(path))
    dm.setup("predict")
    assert dm.texts["predict"] == ["one", "two"]
    with pytest.raises(ValueError, match="nothing to predict: pass --data.predict_texts"):
        TextClassificationDataModule(limit=300).setup("predict")


# ---------------------------------------------------------------- checkpointed vocabulary
def test_state_dict_round_trip_and_vocab_from_checkpoint(tmp_path):
    dm = TextClassificationDataModule(limit=300, lowercase=False, max_length=7)
    state = dm.state_dict()
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, "TextClassificationDataModule": state}, ckpt)
    restored = TextClassificationDataModule(data_path=str(tmp_path / "never-read.csv"), vocab_from=str(ckpt))
    assert restored.vocab == dm.vocab and restored.labels == dm.labels
    assert restored.lowercase is False and restored.max_length == 7
    other = TextClassificationDataModule(limit=100)
    other.setup("fit")
    other.load_state_dict(state)  # datasets already encoded with another vocabulary: re-encoded
    text = other.texts["train"][0]
    assert other.datasets["train"].sequences[0] == dm.vocab.encode(dm._tokens(text))


def test_vocab_from_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab_from: checkpoint .*nope.ckpt does not exist"):
        TextClassificationDataModule(vocab_from=str(tmp_path / "nope.ckpt")).vocab
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="holds no TextClassificationDataModule state"):
        TextClassificationDataModule(vocab_from=str(tmp_path / "other.ckpt")).vocab


# ---------------------------------------------------------------- bad input: name the problem and the fix
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data file .*missing.csv does not exist"):
        TextClassificationDataModule(data_path=str(tmp_path / "missing.csv")).vocab


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"e.csv is empty\. Expected a header line with the columns 'text' and 'label'"):
        TextClassificationDataModule(data_path=str(tmp_path / "e.csv")).vocab


def test_wrong_columns(tmp_path):
    path = write_csv(tmp_path / "c.csv", [("x", "y")], header="review,label")
    with pytest.raises(ValueError, match=r"has no column 'text' \(its columns: review, label\)\. Set --data.text_column"):
        TextClassificationDataModule(data_path=str(path)).vocab


def test_unreadable_encoding_names_the_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ngood,1\nna\xefve caf\xe9,0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv, line 3: the file is not valid UTF-8.*iconv"):
        TextClassificationDataModule(data_path=str(path)).vocab


def test_empty_text_names_the_line(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text('text,label\ngood,1\n"  ",0\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"blank.csv: 1 row with an empty value: 'text' empty at line 3\."):
        TextClassificationDataModule(data_path=str(path)).vocab


def test_bad_jsonl_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"d.jsonl, line 2: not valid JSON"):
        TextClassificationDataModule(data_path=str(path)).vocab


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "d.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError, match=r"unsupported file type '.xlsx'; use one of .csv, .tsv, .jsonl"):
        TextClassificationDataModule(data_path=str(path)).vocab


def test_label_unseen_in_training_names_file_and_line(tmp_path):
    data = write_csv(tmp_path / "train.csv", numbered_rows(10))
    val = write_csv(tmp_path / "val.csv", [("fine", "pos"), ("meh", "neutral")])
    with pytest.raises(ValueError, match=r"val.csv, line 3: label 'neutral' of the val split never appears in the "
                       r"training split \(labels: neg, pos\)"):
        TextClassificationDataModule(data_path=str(data), val_path=str(val)).vocab


def test_single_label_training_data(tmp_path):
    data = write_csv(tmp_path / "one.csv", numbered_rows(10, labels=("pos",)))
    with pytest.raises(ValueError, match="holds a single label"):
        TextClassificationDataModule(data_path=str(data)).vocab


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val_fraction": 0.0}, "val_fraction must be in"),
        ({"test_fraction": 1.0}, "test_fraction must be in"),
        ({"test_fraction": 0.0}, "test_fraction is 0 and no test_path"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"min_freq": 0}, "min_freq must be >= 1"),
        ({"limit": 0}, "limit must be >= 1 or null"),
        ({"num_workers": -1}, "num_workers must be >= 0"),
        ({"predict_texts": ["a"], "predict_path": "p.txt"}, "not both"),
        ({"bucket_size": 0}, "bucket_size must be >= 1"),
        ({"unlabelled": "mr"}, "unlabelled='mr' is the data set being classified: its validation and test texts "
                               "would leak into the word vectors. Use the other bundled set (imdb)"),
        ({"unlabelled": "corpus.docx"}, "unlabelled='corpus.docx' is neither 'auto', a bundled set (mr, imdb) nor a "
                                        ".txt/.csv/.tsv/.jsonl file."),
    ],
)
def test_bad_arguments_fail_in_init(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TextClassificationDataModule(**kwargs)


# ---------------------------------------------------------------------------- T43 bucketing, T23 corpora
def test_bucket_sampler_covers_every_index_once_with_little_padding_and_a_new_order_each_epoch():
    from torch.utils.data import RandomSampler

    from datamodules import BucketBatchSampler

    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 200, (1000,), generator=generator).tolist()
    sampler = BucketBatchSampler(RandomSampler(range(1000)), 32, False, lengths, bucket_size=10)
    torch.manual_seed(0)
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 32  # 31 full batches + 1 of 8
    assert sorted(i for batch in first for i in batch) == list(range(1000))
    assert first != second  # reshuffled every epoch (T42)

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    torch.manual_seed(0)
    plain = [list(range(1000))[i : i + 32] for i in range(0, 1000, 32)]
    assert padding(first) < 0.15 * padding(plain)
    dropped = BucketBatchSampler(RandomSampler(range(1000)), 32, True, lengths, bucket_size=10)
    assert len(list(dropped)) == len(dropped) == 31  # 3 pools of 320 give 10 each, the last 40 give 1


def test_bucketing_datamodule_trains_on_length_sorted_batches():
    data = TextClassificationDataModule(limit=600, batch_size=16, bucketing=True, bucket_size=4)
    data.setup("fit")
    torch.manual_seed(0)
    batches = list(data.train_dataloader())
    assert sum(len(b["labels"]) for b in batches) == len(data.datasets["train"])
    spread = [int(b["lengths"].max() - b["lengths"].min()) for b in batches]
    plain = TextClassificationDataModule(limit=600, batch_size=16)
    plain.setup("fit")
    plain_spread = [int(b["lengths"].max() - b["lengths"].min()) for b in plain.train_dataloader()]
    assert sum(spread) < 0.5 * sum(plain_spread)
    val = [b["lengths"].tolist() for b in data.val_dataloader()]
    assert val == [sorted(lengths) for lengths in val]  # evaluation: shortest first, no shuffling


def test_max_length_truncates_what_the_model_and_word2vec_see():
    data = TextClassificationDataModule(limit=300, max_length=5)
    data.setup("fit")
    assert max(len(ids) for ids in data.datasets["train"].sequences) == 5
    assert max(len(tokens) for tokens in data.training_tokens()) == 5


def test_training_tokens_hold_no_validation_or_test_text(tmp_path):
    train = write_csv(tmp_path / "train.csv", numbered_rows(20))
    val = write_csv(tmp_path / "val.csv", [("valonly words", "neg"), ("more valonly", "pos")])
    test = write_csv(tmp_path / "test.csv", [("testonly words", "neg"), ("testonly", "pos")])
    data = TextClassificationDataModule(data_path=str(train), val_path=str(val), test_path=str(test))
    tokens = {t for tokens in data.training_tokens() for t in tokens}
    assert "valonly" not in tokens and "testonly" not in tokens
    assert len(data.training_tokens()) == 40
    assert data.unlabelled_tokens() == []


def test_unlabelled_corpus_from_a_file_and_from_the_bundled_imdb(tmp_path, monkeypatch):
    corpus = tmp_path / "extra.txt"
    corpus.write_text("An qqextra <br />REVIEW\n\nsecond line\n", encoding="utf-8")
    data = TextClassificationDataModule(limit=200, unlabelled=str(corpus))
    assert data.unlabelled_tokens() == [["an", "qqextra", "review"], ["second", "line"]]
    assert "qqextra" not in data.vocab.stoi  # the vocabulary stays the training split's
    reviews = read_bundled("imdb")
    assert len(reviews) == 25_000
    # tokenising all 25,000 takes seconds: the data module gets every 25th review, both labels, from its reader
    sample = reviews[::25]
    assert Counter(e.label for e in sample) == {"negative": 500, "positive": 500}
    asked = []

    def bundled(name):
        asked.append(name)
        return sample if name == "imdb" else read_bundled(name)

    monkeypatch.setattr(text_module, "read_bundled", bundled)
    texts = TextClassificationDataModule(limit=200, unlabelled="imdb").unlabelled_tokens()
    assert "imdb" in asked and len(texts) == len(sample)  # one list per review, none empty
    assert texts[0] == tokenize(sample[0].text) and not any("br" in tokens for tokens in texts)  # no <br /> left
    assert len(reviews) / len(sample) * sum(map(len, texts)) > 5_000_000  # over 5 million tokens in all


def test_imdb_gets_a_seeded_stratified_held_out_split():
    data = TextClassificationDataModule(dataset="imdb", limit=2000, seed=3)
    splits = data._load_splits()
    assert {name: len(part) for name, part in splits.items()} == {"train": 1260, "val": 140, "test": 600}
    assert Counter(e.label for e in splits["test"]) == {"negative": 300, "positive": 300}
    again = TextClassificationDataModule(dataset="imdb", limit=2000, seed=3)._load_splits()
    assert [e.line for e in again["test"]] == [e.line for e in splits["test"]]
