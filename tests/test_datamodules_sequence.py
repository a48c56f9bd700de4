"""Sequence data pipeline: bundled UCR/UEA sets, every file format, scaling (T40), splits (T41),
shuffling (T42), padding, bucketing and cropping (T43), mid-epoch resume and bad input."""

from __future__ import annotations

import re
import socket
from collections import Counter

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch import nn

from datamodules.sequence import SequenceClassificationDataModule as DM
from datamodules.sequence import apply_scaling, fit_scaling, pad_series
from datamodules.sequence_io import BUNDLED, aeon_data_dir, read_bundled


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing here may reach a network: the bundled sets are read from aeon's own files."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def ts_text(series, labels, univariate=True, equal=True):
    """A UCR/UEA .ts file: ``series`` are lists of channels, each a list of numbers (or '?')."""
    head = ["@problemName Tiny", "@timeStamps false", "@missing true", f"@univariate {str(univariate).lower()}",
            f"@equalLength {str(equal).lower()}", f"@classLabel true {' '.join(sorted(set(labels)))}", "@data"]
    if not univariate:
        head.insert(4, f"@dimensions {len(series[0])}")
    rows = [":".join(",".join(map(str, channel)) for channel in s) + f":{label}" for s, label in zip(series, labels)]
    return "\n".join(head + rows) + "\n"


def two_class_arrays(n_per_class=10, length=12, channels=1, seed=0):
    """Class ``a`` around 0, class ``b`` around 5: ``X [N, T, C]`` and ``y``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n_per_class, length, channels)).astype(np.float32)
    X[n_per_class:] += 5
    return X, np.array(["a"] * n_per_class + ["b"] * n_per_class)


def all_batches(loader):
    return [batch for batch in loader]


# ---------------------------------------------------------------- bundled sets
@pytest.mark.parametrize("name, train, test, length, channels", [
    ("ItalyPowerDemand", 67, 1029, (24, 24), 1),
    ("GunPoint", 50, 150, (150, 150), 1),
    ("BasicMotions", 40, 40, (100, 100), 6),
    ("JapaneseVowels", 270, 370, (7, 26), 12),
    ("UnitTest", 20, 22, (24, 24), 1),
])
def test_bundled_sets_load_offline_with_their_official_split(name, train, test, length, channels):
    """T41: the set's own test split; validation (20%) carved from its training split."""
    dm = DM(dataset=name)
    dm.setup("fit")
    dm.setup("test")
    sizes = {split: len(ds) for split, ds in dm.datasets.items()}
    assert sizes["train"] + sizes["val"] == train and sizes["test"] == test
    assert sizes["val"] == sum(round(0.2 * n) for n in Counter(read_bundled(name)[0].labels).values())
    assert dm.input_size == channels
    assert (min(dm.lengths("train")), max(dm.lengths("train"))) == length
    assert dm.labels == sorted(dm.labels) and dm.num_classes == len(dm.labels)
    assert all(s.dtype == torch.float32 and s.shape[1] == channels for s in dm.datasets["train"].sequences)


def test_bundled_names_are_case_insensitive_and_unknown_ones_list_the_valid_ones():
    assert DM(dataset="gunpoint").dataset == "GunPoint"
    with pytest.raises(ValueError, match=re.escape("unknown bundled data set 'GunPointz'; choose one of ACSF1, "
                                                   "ArrowHead, BasicMotions,")):
        DM(dataset="GunPointz")
    assert set(BUNDLED) <= {p.name for p in aeon_data_dir().iterdir()}


def test_class_counts_and_long_sequences():
    """T44's flag: GunPoint (150 steps) is short, OSULeaf (427) is long."""
    dm = DM(dataset="GunPoint")
    assert sum(dm.class_counts("train")) == 40 and sum(dm.class_counts("test")) == 150
    assert dm.class_counts("train") == [19, 21] and dm.class_counts("val") == [5, 5]  # GunPoint: 24 + 26
    assert dm.long_sequences is False and dm.state_dict()["long_sequences"] is False
    assert DM(dataset="OSULeaf").long_sequences is True


# ---------------------------------------------------------------- batches (T43)
def test_batches_are_padded_dicts_with_lengths_and_labels():
    """T43: series [B, T, C] zero-padded, lengths [B], labels [B]; predict batches carry no labels."""
    batch = pad_series([(torch.ones(3, 2), 1), (torch.full((1, 2), 2.0), 0)])
    assert batch["series"].dtype == torch.float32 and batch["series"].shape == (2, 3, 2)
    assert batch["series"][1].tolist() == [[2.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
    assert batch["lengths"].dtype == torch.int64 and batch["lengths"].tolist() == [3, 1]
    assert batch["labels"].dtype == torch.int64 and batch["labels"].tolist() == [1, 0]
    assert set(pad_series([(torch.ones(2, 1), -1)])) == {"series", "lengths"}


def test_unequal_lengths_pad_with_zeros_and_report_lengths():
    """T43: JapaneseVowels (7 to 29 steps, 12 channels) padded per batch, the padding exactly zero."""
    dm = DM(dataset="JapaneseVowels", batch_size=16, bucketing=False)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["series"].shape == (16, int(batch["lengths"].max()), 12)
    assert batch["lengths"].tolist() == dm.lengths("val")[:16]
    for row, n in enumerate(batch["lengths"].tolist()):
        assert torch.equal(batch["series"][row, :n], dm.datasets["val"].sequences[row])
        assert not batch["series"][row, n:].any()


def test_bucketing_batches_hold_similar_lengths_and_keep_the_class_mix():
    """T43: length-bucketed training batches waste far less padding than random ones; with stratified_batches
    (the default) every batch keeps the class mix instead."""
    def padding(**kwargs):
        dm = DM(bucket_size=8, **kwargs)
        dm.setup("fit")
        batches = all_batches(dm.train_dataloader())
        assert sorted(i for b in batches for i in b["labels"].tolist()) == sorted(dm.datasets["train"].labels)
        return sum(b["series"].shape[0] * b["series"].shape[1] - int(b["lengths"].sum()) for b in batches), batches

    for name, size in (("PickupGestureWiimoteZ", 5), ("JapaneseVowels", 16)):
        plain, _ = padding(dataset=name, batch_size=size, bucketing=False)
        by_length, _ = padding(dataset=name, batch_size=size, stratified_batches=False)
        assert by_length < plain / 3
    mixed, batches = padding(dataset="JapaneseVowels", batch_size=16)
    assert mixed < plain
    assert all(len(set(b["labels"].tolist())) == 9 for b in batches if len(b["labels"]) == 16)  # all 9 classes
    dm = DM(dataset="JapaneseVowels", batch_size=32)
    dm.setup("fit")
    served = [n for b in dm.val_dataloader() for n in b["lengths"].tolist()]
    assert served == sorted(dm.lengths("val"))  # evaluation batches are length-sorted (one pool of 54 here)


def test_equal_length_sets_are_not_bucketed_and_training_order_changes_every_epoch():
    """T42: a new, seeded order every epoch; evaluation order fixed."""
    dm = DM(dataset="ItalyPowerDemand", batch_size=8)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert type(loader.batch_sampler).__name__ == "SkippableBatchSampler"
    first = [b["series"][:, 0, 0].tolist() for b in loader]
    torch.manual_seed(123)
    assert [b["series"][:, 0, 0].tolist() for b in dm.train_dataloader()] == first
    _set_sampler_epoch(loader, 1)
    second = [b["series"][:, 0, 0].tolist() for b in loader]
    assert first != second and sorted(x for b in first for x in b) == sorted(x for b in second for x in b)


@pytest.mark.parametrize("name", ["GunPoint", "JapaneseVowels"])
def test_a_resumed_train_loader_serves_the_rest_of_the_interrupted_epoch(name):
    """T42/T43: mid-epoch resume gives exactly the remaining batches, bucketed or not."""
    dm = DM(dataset=name, batch_size=4, bucket_size=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    _set_sampler_epoch(loader, 2)
    whole = [b["labels"].tolist() + b["series"][:, 0, 0].tolist() for b in loader]
    assert len(whole) == len(loader) > 8
    _set_sampler_epoch(loader, 2)
    partial = iter(loader)
    for _ in range(5):
        next(partial)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 5}
    resumed = dm.train_dataloader()
    resumed.load_state_dict(state)
    _set_sampler_epoch(resumed, 2)
    assert [b["labels"].tolist() + b["series"][:, 0, 0].tolist() for b in resumed] == whole[5:]
    assert len(list(resumed)) == len(whole)


def test_max_length_crops_longer_series_and_says_how_many(notices):
    """T43: cropping to max_length, counted in one line."""
    dm = DM(dataset="PickupGestureWiimoteZ", max_length=100)
    dm.setup("fit")
    assert max(dm.lengths("train")) == 100
    said = notices(r"max_length 100: \d+ of the 40 train series cut to their first 100 steps", level=20)
    assert len(said) == 1


# ---------------------------------------------------------------- scaling (T40)
def test_standard_scaling_is_fitted_on_the_training_split_only(tmp_path):
    """T40: per-channel mean/std of the training series alone; validation data, however wild, changes nothing."""
    X, y = two_class_arrays(20, channels=3)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    Xv, yv = two_class_arrays(3, channels=3, seed=1)
    np.savez(tmp_path / "val.npz", X=Xv, y=yv)
    np.savez(tmp_path / "wild.npz", X=Xv * 1000 + 1e6, y=yv)
    calm = DM(data_path=str(tmp_path / "train.npz"), val_path=str(tmp_path / "val.npz"), test_fraction=0.25)
    wild = DM(data_path=str(tmp_path / "train.npz"), val_path=str(tmp_path / "wild.npz"), test_fraction=0.25)
    calm.setup("fit")
    wild.setup("fit")
    assert calm.statistics == wild.statistics
    train = np.concatenate(calm.series["train"].series)  # the 30 training series (10 went to test)
    assert len(calm.series["train"]) == 30
    assert np.allclose(calm.statistics["mean"], train.mean(axis=0), atol=1e-5)
    assert np.allclose(calm.statistics["std"], train.std(axis=0), atol=1e-5)
    scaled = torch.cat(list(calm.datasets["train"].sequences))
    assert torch.allclose(scaled.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(scaled.std(0, unbiased=False), torch.ones(3), atol=1e-4)
    expected = (Xv[0] - np.array(calm.statistics["mean"])) / np.array(calm.statistics["std"])
    assert np.allclose(calm.datasets["val"].sequences[0].numpy(), expected, atol=1e-5)  # applied unchanged


def test_padding_is_excluded_from_the_fit():
    """T40: JapaneseVowels' statistics are those of the real steps of its training series."""
    dm = DM(dataset="JapaneseVowels")
    steps = np.concatenate(dm._load_splits()["train"].series)
    assert len(steps) == sum(dm.lengths("train"))
    assert np.allclose(dm.statistics["mean"], steps.mean(axis=0), atol=1e-4)


def test_minmax_series_and_none_scaling():
    """T40: minmax fitted on train (train in [0, 1]); series z-normalises each series; none keeps the values."""
    dm = DM(dataset="GunPoint", scaling="minmax")
    dm.setup("fit")
    train = torch.cat(list(dm.datasets["train"].sequences))
    assert float(train.min()) == pytest.approx(0.0, abs=1e-6) and float(train.max()) == pytest.approx(1.0, abs=1e-6)
    assert set(dm.statistics) == {"min", "max"}
    per_series = DM(dataset="GunPoint", scaling="series")
    per_series.setup("fit")
    assert per_series.statistics == {}
    for s in per_series.datasets["val"].sequences:
        assert abs(float(s.mean())) < 1e-4 and float(s.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    raw = DM(dataset="GunPoint", scaling="none")
    raw.setup("fit")
    assert np.array_equal(raw.datasets["train"].sequences[0].numpy(), raw.series["train"].series[0])
    assert fit_scaling([np.array([[1.0], [1.0]])], "standard") == {"mean": [1.0], "std": [1.0]}  # constant channel
    assert apply_scaling(np.array([[2.0], [2.0]]), "series", {}).tolist() == [[0.0], [0.0]]


def test_state_dict_restores_labels_and_scaling_for_predict_on_new_files(tmp_path):
    """T40: predict needs only the checkpoint: labels, channels, layout and fitted statistics travel in it."""
    X, y = two_class_arrays(15, length=20, channels=2)
    np.savez(tmp_path / "train.npz", X=np.swapaxes(X, 1, 2), y=y)  # [N, C, T]: layout auto -> nct
    np.save(tmp_path / "new.npy", np.swapaxes(X[:4], 1, 2))
    dm = DM(data_path=str(tmp_path / "train.npz"))
    state = dm.state_dict()
    assert state["layout"] == "nct" and state["input_size"] == 2 and state["labels"] == ["a", "b"]
    assert state["scaling"] == "standard" and set(state["statistics"]) == {"mean", "std"}
    assert all(isinstance(v, float) for values in state["statistics"].values() for v in values)
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, "SequenceClassificationDataModule": state}, ckpt)
    restored = DM(data_path=str(tmp_path / "never-read.npz"), predict_path=str(tmp_path / "new.npy"),
                  state_from=str(ckpt))
    restored.setup("predict")
    assert restored.labels == ["a", "b"] and restored.input_size == 2 and restored.statistics == dm.statistics
    expected = (X[:4] - np.array(state["statistics"]["mean"])) / np.array(state["statistics"]["std"])
    got = torch.stack(restored.datasets["predict"].sequences).numpy()
    assert np.allclose(got, expected, atol=1e-5)
    assert restored.predict_inputs() == [f"#{i}: 20 steps x 2 channels" for i in range(4)]
    with pytest.raises(FileNotFoundError, match=r"state_from: checkpoint .*nope.ckpt does not exist"):
        _ = DM(state_from=str(tmp_path / "nope.ckpt")).labels
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="holds no SequenceClassificationDataModule state"):
        _ = DM(state_from=str(tmp_path / "other.ckpt")).labels


def test_loading_a_state_with_other_labels_or_statistics_after_setup_rebuilds_the_data_sets():
    dm = DM(dataset="GunPoint")
    dm.setup("fit")
    state = dm.state_dict()
    state["labels"] = ["2", "1"]
    state["statistics"] = {"mean": [10.0], "std": [2.0]}
    dm.load_state_dict(state)
    first = dm.series["train"]
    label = first.labels[0]
    assert dm.datasets["train"].labels[0] == ["2", "1"].index(label)
    assert np.allclose(dm.datasets["train"].sequences[0].numpy(), (first.series[0] - 10.0) / 2.0, atol=1e-5)


# ---------------------------------------------------------------- splits (T41)
def test_own_data_splits_are_stratified_and_seeded(tmp_path):
    """T41: 7:3 train/test, then 20% of train for validation, each keeping the class mix; seeded."""
    X, _ = two_class_arrays(50)
    np.savez(tmp_path / "d.npz", X=X, y=np.array(["a"] * 70 + ["b"] * 30))
    dm = DM(data_path=str(tmp_path / "d.npz"))
    splits = dm._load_splits()
    assert {name: Counter(part.labels) for name, part in splits.items()} == {
        "train": {"a": 39, "b": 17}, "val": {"a": 10, "b": 4}, "test": {"a": 21, "b": 9}}
    where = {name: part.where for name, part in splits.items()}
    assert DM(data_path=str(tmp_path / "d.npz"))._load_splits()["test"].where == where["test"]
    assert DM(data_path=str(tmp_path / "d.npz"), seed=7)._load_splits()["test"].where != where["test"]
    assert not set(where["train"]) & set(where["val"]) and not set(where["train"]) & set(where["test"])


# ---------------------------------------------------------------- file formats
def test_ts_files_multivariate_and_unequal_lengths(tmp_path):
    series = [[[1, 2, 3], [4, 5, 6]], [[1, 2], [3, 4]], [[7, 8, 9, 10], [1, 1, 1, 1]]] * 4
    labels = ["x", "y", "z"] * 4
    (tmp_path / "d.ts").write_text(ts_text(series, labels, univariate=False, equal=False), encoding="utf-8")
    dm = DM(data_path=str(tmp_path / "d.ts"), test_fraction=0.25, val_fraction=0.34, scaling="none",
            min_label_count=2)
    splits = dm._load_splits()
    assert dm.input_size == 2 and dm.labels == ["x", "y", "z"]
    everything = [s for part in splits.values() for s in part.series]
    assert sorted(len(s) for s in everything) == [2] * 4 + [3] * 4 + [4] * 4
    first = next(s for part in splits.values() for s in part.series if len(s) == 3)
    assert first.tolist() == [[1, 4], [2, 5], [3, 6]]  # [time, channels]


def test_npz_layouts_2d_and_lengths(tmp_path, notices):
    X, y = two_class_arrays(6, length=10, channels=3)
    np.savez(tmp_path / "ntc.npz", X=X, y=y)
    np.savez(tmp_path / "nct.npz", X=np.swapaxes(X, 1, 2), y=y)
    np.savez(tmp_path / "flat.npz", X=X[:, :, 0], y=y)
    lengths = np.array([10, 4] * 6)
    np.savez(tmp_path / "padded.npz", X=X, y=y, lengths=lengths)
    a = DM(data_path=str(tmp_path / "ntc.npz"), scaling="none")
    b = DM(data_path=str(tmp_path / "nct.npz"), scaling="none")
    assert a.input_size == b.input_size == 3
    assert notices(r"nct.npz: X of shape \(12, 3, 10\) read as \[series, channels, time\] \(layout: auto", 20)
    assert all(np.array_equal(p, q) for p, q in zip(a._load_splits()["train"].series, b._load_splits()["train"].series))
    forced = DM(data_path=str(tmp_path / "nct.npz"), layout="ntc", scaling="none")
    assert forced.input_size == 10  # as told: 3 steps of 10 channels
    assert DM(data_path=str(tmp_path / "flat.npz")).input_size == 1
    padded = DM(data_path=str(tmp_path / "padded.npz"), scaling="none", min_label_count=1)
    every = [len(s) for part in padded._load_splits().values() for s in part.series]
    assert sorted(every) == [4] * 6 + [10] * 6


def test_npy_with_npy_or_txt_labels(tmp_path):
    X, y = two_class_arrays(8, length=6)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", np.where(y == "a", 0, 1))
    (tmp_path / "y.txt").write_text("\n".join(y) + "\n", encoding="utf-8")
    assert DM(data_path=str(tmp_path / "x.npy"), label_path=str(tmp_path / "y.npy")).labels == ["0", "1"]
    assert DM(data_path=str(tmp_path / "x.npy"), label_path=str(tmp_path / "y.txt")).labels == ["a", "b"]
    with pytest.raises(ValueError, match=r"x.npy: a .npy file holds no labels. Set --data.label_path"):
        _ = DM(data_path=str(tmp_path / "x.npy")).labels
    (tmp_path / "short.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"short.txt has 2 labels for 16 series in .*x.npy. One label per series."):
        _ = DM(data_path=str(tmp_path / "x.npy"), label_path=str(tmp_path / "short.txt")).labels


def test_wide_csv_with_header_unequal_lengths_and_channel_blocks(tmp_path):
    rows = [f"{'ab'[i % 2]},{i},{i + 1},{i + 2},{i + 3}" if i % 3 else f"{'ab'[i % 2]},{i},{i + 1},,"
            for i in range(12)]
    (tmp_path / "w.csv").write_text("label,t0,t1,t2,t3\n" + "\n".join(rows) + "\n", encoding="utf-8")
    dm = DM(data_path=str(tmp_path / "w.csv"), scaling="none")
    every = {w: s for part in dm._load_splits().values() for w, s in zip(part.where, part.series)}
    assert every["line 2"].tolist() == [[0.0], [1.0]]  # trailing empty cells end the series
    assert every["line 3"].tolist() == [[1.0], [2.0], [3.0], [4.0]]
    blocks = DM(data_path=str(tmp_path / "w.csv"), channels=2, scaling="none")
    every = {w: s for part in blocks._load_splits().values() for w, s in zip(part.where, part.series)}
    assert blocks.input_size == 2 and every["line 3"].tolist() == [[1.0, 3.0], [2.0, 4.0]]  # channel-major
    assert every["line 2"].tolist() == [[0.0, 1.0]]


def test_headerless_tsv_reads_the_label_first_like_the_ucr_archive(notices):
    """aeon ships GunPoint_TRAIN.tsv (UCR 2018 archive format, no header): the same series as its .ts file."""
    path = aeon_data_dir() / "GunPoint" / "GunPoint_TRAIN.tsv"
    dm = DM(data_path=str(path), scaling="none", test_fraction=0.2)
    assert dm.labels == ["1", "2"]
    assert notices("no header line: the first column is read as the label", 20)
    tsv = {w: s for part in dm._load_splits().values() for w, s in zip(part.where, part.series)}
    train, _ = read_bundled("GunPoint")
    assert len(tsv) == 50 and dm.labels == ["1", "2"]
    assert np.allclose(tsv["line 1"], train.series[0], atol=1e-6)


def test_long_csv_sorts_by_time_and_takes_every_value_column_as_a_channel(tmp_path):
    lines = ["id,step,x,y,label"]
    for sid in range(9):
        steps = list(range(3 + sid % 2))
        for t in reversed(steps):  # out of order on purpose
            lines.append(f"s{sid},{t},{sid + t},{-t},{'pq'[sid % 2]}")
    (tmp_path / "long.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dm = DM(data_path=str(tmp_path / "long.csv"), series_column="id", time_column="step", scaling="none",
            test_fraction=0.25)
    every = {w: s for part in dm._load_splits().values() for w, s in zip(part.where, part.series)}
    assert dm.input_size == 2 and dm.labels == ["p", "q"]
    assert every["series 's1' (line 5)"].tolist() == [[1, 0], [2, -1], [3, -2], [4, -3]]
    assert every["series 's0' (line 2)"].tolist() == [[0, 0], [1, -1], [2, -2]]


# ---------------------------------------------------------------- predict
def test_predict_keeps_input_order_and_describes_each_series(tmp_path):
    path = aeon_data_dir() / "JapaneseVowels" / "JapaneseVowels_TEST.ts"
    dm = DM(dataset="JapaneseVowels", predict_path=str(path), batch_size=64)
    dm.setup("predict")
    raw = read_bundled("JapaneseVowels")[1].series
    described = dm.predict_inputs()
    assert len(described) == 370 and described[0] == f"#0: {len(raw[0])} steps x 12 channels"
    batches = all_batches(dm.predict_dataloader())
    assert "labels" not in batches[0]
    lengths = [n for b in batches for n in b["lengths"].tolist()]
    assert lengths == [len(s) for s in raw] and dm.input_name == "series"
    with pytest.raises(ValueError, match="nothing to predict: pass --data.predict_path"):
        DM(dataset="UnitTest").setup("predict")


def test_predict_file_with_other_channels_is_refused(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((3, 24, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"p.npy: 2 channels per series, but the model reads 1 \(the training data"):
        DM(dataset="ItalyPowerDemand", predict_path=str(tmp_path / "p.npy")).setup("predict")


def test_setup_is_idempotent():
    dm = DM(dataset="UnitTest")
    dm.setup("fit")
    train = dm.datasets["train"]
    dm.setup("fit")
    dm.setup("validate")
    assert dm.datasets["train"] is train


# ---------------------------------------------------------------- missing values
def test_nan_policies(tmp_path):
    rows = [f"{'ab'[i % 2]},{i},{i + 1},{i + 2},{i + 3}" for i in range(12)]
    rows[4] = "a,?,4,,8"  # line 6: missing at steps 0 and 2
    (tmp_path / "n.csv").write_text("label,t0,t1,t2,t3\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape("n.csv, line 6: 2 missing or infinite values (NaN/Inf) at step 0 "
                                                   "channel 0, step 2 channel 0. Fix them, or set --data.nan "
                                                   "interpolate (linear within the series) or --data.nan zero.")):
        _ = DM(data_path=str(tmp_path / "n.csv")).labels

    def line6(policy):
        dm = DM(data_path=str(tmp_path / "n.csv"), nan=policy, scaling="none")
        return next(s for part in dm._load_splits().values() for w, s in zip(part.where, part.series)
                    if w == "line 6").ravel().tolist()

    assert line6("zero") == [0.0, 4.0, 0.0, 8.0]
    assert line6("interpolate") == [4.0, 4.0, 6.0, 8.0]  # edges: the nearest value; inside: a straight line
    X, y = two_class_arrays(5)
    X[3, 2, 0] = np.inf
    np.savez(tmp_path / "inf.npz", X=X, y=y)
    with pytest.raises(ValueError, match=r"inf.npz, series 3: 1 missing or infinite value \(NaN/Inf\) at step 2"):
        _ = DM(data_path=str(tmp_path / "inf.npz")).labels


# ---------------------------------------------------------------- bad input: name the file, the place and the fix
def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_path: .*missing.ts does not exist. Pass an existing .ts, "
                                                r".npz, .npy, .csv, .tsv file"):
        _ = DM(data_path=str(tmp_path / "missing.ts")).labels
    (tmp_path / "d.xlsx").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape("d.xlsx: unsupported file type '.xlsx'; use one of .ts, .npz, "
                                                   ".npy, .csv, .tsv.")):
        _ = DM(data_path=str(tmp_path / "d.xlsx")).labels


@pytest.mark.parametrize("name", ["e.csv", "e.ts", "e.npz"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{re.escape(name)} is empty. Expected"):
        _ = DM(data_path=str(tmp_path / name)).labels


def test_ragged_csv_row_names_the_line(tmp_path):
    rows = [f"{'ab'[i % 2]},{i},{i + 1}" for i in range(10)]
    rows[3] += ",9,9"
    (tmp_path / "r.csv").write_text("label,t0,t1\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"r.csv, line 5: 5 fields where the header has 3 \(a ragged row\)"):
        _ = DM(data_path=str(tmp_path / "r.csv")).labels


def test_ragged_npz_and_not_a_number(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros(3), np.zeros(4)
    np.savez(tmp_path / "rag.npz", X=ragged, y=np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"rag.npz: X holds Python objects \(ragged series"):
        _ = DM(data_path=str(tmp_path / "rag.npz")).labels
    (tmp_path / "t.csv").write_text("label,t0,t1\na,1,2\nb,3,oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"t.csv, line 3, column t1: 'oops' is not a number"):
        _ = DM(data_path=str(tmp_path / "t.csv")).labels


def test_mismatched_channels_between_series_and_between_files(tmp_path):
    text = ts_text([[[1, 2], [3, 4]]] * 6, ["a", "b"] * 3, univariate=False)
    lines = text.splitlines()
    lines[-2] = "1,2:a"  # one channel instead of two
    (tmp_path / "bad.ts").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.ts, line 13: not a readable .ts file: Inconsistent number of "
                                         r"dimensions in case 5"):
        _ = DM(data_path=str(tmp_path / "bad.ts")).labels
    X, y = two_class_arrays(6, channels=2)
    np.savez(tmp_path / "two.npz", X=X, y=y)
    np.savez(tmp_path / "one.npz", X=X[:, :, :1], y=y)
    with pytest.raises(ValueError, match=r"one.npz: 1 channel per series, but the training data \(.*two.npz\) has "
                                         r"2. Every file needs the same channels."):
        _ = DM(data_path=str(tmp_path / "two.npz"), test_path=str(tmp_path / "one.npz")).labels


def test_a_test_label_unseen_in_training(tmp_path):
    X, y = two_class_arrays(6)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    np.savez(tmp_path / "test.npz", X=X[:3], y=np.array(["a", "c", "a"]))
    with pytest.raises(ValueError, match=re.escape("test.npz, series 1: label 'c' of the test split never appears in "
                                                   "the training split (labels: a, b).")):
        _ = DM(data_path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz")).labels


def test_rare_labels_are_named(tmp_path):
    X, y = two_class_arrays(6)
    y = np.array(["typo"] + list(y[1:]))
    np.savez(tmp_path / "d.npz", X=X, y=y)
    with pytest.raises(ValueError, match=re.escape("d.npz: 1 label seen fewer than 3 times: 'typo' (1x: series 0). "
                                                   "So rare a label")):
        _ = DM(data_path=str(tmp_path / "d.npz")).labels


@pytest.mark.parametrize("kwargs, message", [
    ({"val_fraction": 1.0}, "val_fraction must be in (0, 1), got 1.0."),
    ({"scaling": "zscore"}, "scaling must be one of standard, minmax, series, none, got 'zscore'."),
    ({"nan": "drop"}, "nan must be one of error, zero, interpolate, got 'drop'."),
    ({"layout": "tnc"}, "layout must be one of auto, ntc, nct, got 'tnc'."),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0."),
    ({"max_length": 0}, "max_length must be a number >= 1 or null (never crop), got 0."),
    ({"test_path": "t.ts"}, "test_path goes with your own data_path; the bundled GunPoint set has its own"),
    ({"data_path": "d.ts", "test_fraction": 0.0}, "test_fraction is 0 and no test_path is given"),
])
def test_bad_arguments_say_what_to_type_instead(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DM(**kwargs)


# ---------------------------------------------------------------- a look at the data, and a real training run
def test_example_figure_has_one_subplot_per_class():
    figure = DM(dataset="BasicMotions").example_figure(per_class=2)
    assert len(figure.axes) == 4
    titles = sorted(axes.get_title() for axes in figure.axes)
    assert titles[0] == "badminton (n=8)" and len(figure.axes[0].lines) == 2 * 6


class TinySequenceModel(nn.Module):
    def __init__(self, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, 8, batch_first=True)
        self.head = nn.Linear(8, num_classes)

    def forward(self, series, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(series, lengths, batch_first=True, enforce_sorted=False)
        return self.head(self.rnn(packed)[1][-1])


def test_a_real_training_step_through_a_lightning_trainer(tmp_path):
    """T43: padded batches with lengths feed a packed GRU; fit and predict through Lightning; T40: the
    checkpoint Lightning writes carries the fitted statistics for a later predict."""
    from lightning.pytorch import LightningModule, Trainer

    class Module(LightningModule):
        def __init__(self, input_size, num_classes):
            super().__init__()
            self.net = TinySequenceModel(input_size, num_classes)
            self.losses = []

        def training_step(self, batch, batch_idx):
            loss = nn.functional.cross_entropy(self.net(batch["series"], batch["lengths"]), batch["labels"])
            self.losses.append(float(loss.detach()))
            return loss

        def predict_step(self, batch, batch_idx):
            return self.net(batch["series"], batch["lengths"]).argmax(-1)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.01)

    test_file = aeon_data_dir() / "JapaneseVowels" / "JapaneseVowels_TEST.ts"
    dm = DM(dataset="JapaneseVowels", batch_size=16, predict_path=str(test_file))
    model = Module(dm.input_size, dm.num_classes)
    trainer = Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=2)
    trainer.fit(model, datamodule=dm)
    assert len(model.losses) == 2 and all(np.isfinite(model.losses))
    predictions = torch.cat(trainer.predict(model, datamodule=dm))
    assert len(predictions) == len(dm.predict_inputs()) == 370
    trainer.save_checkpoint(tmp_path / "fit.ckpt")
    later = DM(dataset="JapaneseVowels", predict_path=str(test_file), state_from=str(tmp_path / "fit.ckpt"))
    assert later.statistics == dm.statistics and later.labels == dm.labels and later.input_size == 12
