"""Real corpora: long documents, length-skewed imbalanced labels, tiny validation splits, saturating runs, dirty files.

Every data set here is built from real MR sentences: short ones labelled one way and long ones
the other (length goes with the class, as in spam filtering), documents made of many sentences,
and the same sentences with a word that gives the label away (a model saturates on them).
"""

from __future__ import annotations

import csv
import logging
import math
import random
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn

from callbacks import EarlyStopping, EpochEstimate, LossDiagnosis, LRFinder, SanityChecks
from callbacks.early_stopping import example_delta, validation_size_problems
from callbacks.epoch_estimate import epoch_seconds
from callbacks.loss_diagnosis import diagnose, final_action
from callbacks.sanity import label_mix
from datamodules import TextClassificationDataModule, read_bundled, read_examples, tokenize
from datamodules.sampler import BucketBatchSampler, stratified_by_length
from datamodules.text import length_policy

LN2 = math.log(2)


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Runs without a logger write into the working directory: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def mr_sentences() -> list[str]:
    sentences = [e.text for e in read_bundled("mr")]
    random.Random(0).shuffle(sentences)  # the bundled set lists one label, then the other
    return sentences


def skewed(path: Path, ham: int = 870, spam: int = 130) -> Path:
    """87/13 labels where the majority is short sentences and the minority long ones."""
    sentences = mr_sentences()
    short = [s for s in sentences if len(tokenize(s)) <= 12][:ham]
    long = [s for s in sentences if len(tokenize(s)) >= 30][:spam]
    rows = [(s, "ham") for s in short] + [(s, "spam") for s in long]
    random.Random(0).shuffle(rows)
    return write_csv(path, rows)


def documents(path: Path, count: int = 120, mean: int = 400) -> Path:
    """Documents of whole MR sentences, log-normal lengths around ``mean`` tokens (a long tail)."""
    sentences, rng = mr_sentences(), random.Random(0)
    rows = []
    for i in range(count):
        target, words = max(5, int(rng.lognormvariate(math.log(mean) - 0.28, 0.75))), []
        while len(words) < target:
            words += rng.choice(sentences).split()
        rows.append((" ".join(words), "pos" if i % 2 else "neg"))
    return write_csv(path, rows)


class BagModel(LightningModule):
    """Mean of word vectors -> classes: trains in a blink, logs what the callbacks read."""

    def __init__(self, vocab_size: int, num_classes: int, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.EmbeddingBag(vocab_size, 32, mode="mean", padding_idx=0)
        self.head = nn.Linear(32, num_classes)
        self.lr = lr

    def _loss(self, batch):
        return nn.functional.cross_entropy(self.head(self.embedding(batch["tokens"])), batch["labels"])

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        logits = self.head(self.embedding(batch["tokens"]))
        self.log("val/loss", nn.functional.cross_entropy(logits, batch["labels"]))
        self.log("val/acc", (logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def trainer(callbacks, epochs=1, **kwargs) -> Trainer:
    return Trainer(max_epochs=epochs, callbacks=callbacks, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0, **kwargs)


# ---------------------------------------------------------------- 1. long texts: the length policy
def test_length_policy_cuts_at_the_95th_percentile_but_never_short_texts():
    assert length_policy(list(range(1, 1001)))[0] == 950
    assert length_policy([10] * 99 + [5000])[0] == 256  # a corpus of short texts with one outlier: cut at the floor
    cut, why = length_policy([20, 30, 40])
    assert cut is None and why == "max_length: auto -> no cut: no training text is longer than 256 tokens (the longest has 40)"


def test_long_documents_are_cut_with_one_line(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    data = TextClassificationDataModule(data_path=str(documents(tmp_path / "docs.csv")), test_fraction=0.2)
    data.setup("fit")
    whole = sorted(len(tokenize(t)) for t in data.texts["train"])
    expected = whole[math.ceil(0.95 * len(whole)) - 1]
    assert data.max_length == expected > 256
    assert max(len(s) for s in data.datasets["train"].sequences) == expected
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("max_length: auto")]
    cut = sum(n > expected for n in whole) / len(whole)
    assert line.startswith(f"max_length: auto -> {expected} tokens (the 95th percentile of the training texts, at least "
                           f"256): {cut:.1%} of the texts are cut, ")
    assert line.endswith("Set data.max_length to a number, or null to keep whole texts.")
    assert data.state_dict()["max_length"] == expected  # predict cuts as training did


def test_mr_is_never_cut_and_bad_max_length_is_refused():
    data = TextClassificationDataModule(limit=500)
    data.setup("fit")
    assert data.max_length is None  # MR's longest sentence has 59 tokens: auto changes nothing on MR
    with pytest.raises(ValueError, match=r"max_length must be a number >= 1, `auto` \(from the training texts\) or null "
                                         r"\(never cut\), got 'p95'\."):
        TextClassificationDataModule(max_length="p95")


def test_a_document_longer_than_the_csv_modules_field_limit_reads(tmp_path):
    text = "word " * 40_000  # 200,000 characters: the csv module refuses fields over 131,072 by default
    examples = read_examples(write_csv(tmp_path / "long.csv", [(text, "a"), ("short", "b")]))
    assert len(examples[0].text) == len(text)


# ---------------------------------------------------------------- 2. batches that keep the class mix (T43, T52)
def test_stratified_order_keeps_every_run_of_a_pool_at_the_class_mix():
    lengths = torch.tensor([1] * 87 + [50] * 13)  # short texts are one class, long ones the other
    labels = torch.tensor([0] * 87 + [1] * 13)
    order = stratified_by_length(lengths, labels)
    assert sorted(order.tolist()) == list(range(100))
    for start in range(0, 100, 20):
        minority = int(labels[order[start:start + 20]].sum())
        assert abs(minority - 13 * 20 / 100) <= 1  # 2.6 expected in every batch of 20


def test_bucketed_batches_keep_the_label_mix_only_when_stratified(tmp_path):
    path = skewed(tmp_path / "skewed.csv")
    shares = {}
    for stratified in (True, False):
        data = TextClassificationDataModule(data_path=str(path), bucketing=True, stratified_batches=stratified,
                                            batch_size=32)
        data.setup("fit")
        spam = data.labels.index("spam")
        batches = list(data.train_dataloader())
        shares[stratified] = [float((b["labels"] == spam).float().mean()) for b in batches]
    expected = 130 / 1000
    assert max(abs(s - expected) for s in shares[True][:-1]) <= 2 / 32  # within two examples of the mix
    assert max(abs(s - expected) for s in shares[False]) > 0.5  # sorted by length: whole batches of one class


def test_labels_need_the_lengths_length_and_no_drop_last():
    with pytest.raises(ValueError, match="labels has 2 entries but lengths has 3: one of each per example."):
        BucketBatchSampler(range(3), 2, False, [1, 2, 3], labels=[0, 1])
    with pytest.raises(ValueError, match="cannot be combined with drop_last"):
        BucketBatchSampler(range(3), 2, True, [1, 2, 3], labels=[0, 1, 1])


@pytest.mark.parametrize("stratified, status", [(True, "ok"), (False, "warn")])
def test_sanity_checks_compare_the_batches_class_mix_with_the_training_split(tmp_path, stratified, status):
    data = TextClassificationDataModule(data_path=str(skewed(tmp_path / "skewed.csv")), bucketing=True,
                                        stratified_batches=stratified, batch_size=32)
    checks = SanityChecks(num_batches=3)
    trainer([checks]).fit(BagModel(data.vocab_size, data.num_classes), datamodule=data)
    found = {f.check: f for f in checks.findings}
    assert found["label_mix"].status == status
    if status == "warn":
        assert re.match(r"batches' class mix departs from the training split's \(ham \d+% vs 87%, spam \d+% vs 13% of "
                        r"96 examples\): length bucketing without data.stratified_batches", found["label_mix"].detail)


def test_padding_figure_equals_the_share_in_the_inspected_batches(tmp_path):
    data = TextClassificationDataModule(data_path=str(skewed(tmp_path / "skewed.csv")), bucketing=True, batch_size=32)

    class Recorder(SanityChecks):
        def _check_batches(self, trainer, pl_module, batches):
            self.seen = list(batches)
            return super()._check_batches(trainer, pl_module, batches)

    checks = Recorder(num_batches=3)
    trainer([checks]).fit(BagModel(data.vocab_size, data.num_classes), datamodule=data)
    tokens = [b["tokens"] for b in checks.seen]
    share = sum(int((t == 0).sum()) for t in tokens) / sum(t.numel() for t in tokens)
    padding = next(f for f in checks.findings if f.check == "padding")
    assert padding.value == pytest.approx(share) and padding.detail == f"{share:.0%} padding"


def test_label_mix_on_plain_numbers():
    assert label_mix({0: 186, 1: 6}, [870, 130], ["ham", "spam"]).value == ["ham 97% vs 87%", "spam 3% vs 13%"]
    assert label_mix({0: 170, 1: 22}, [870, 130]).status == "ok"  # 11% vs 13%: within chance


# ---------------------------------------------------------------- 3. model selection and the validation size (T35)
def test_min_delta_auto_is_one_and_a_half_validation_examples():
    assert example_delta("val/acc", 340) == pytest.approx(1.5 / 340)
    assert example_delta("val/f1", 340) == pytest.approx(1.5 / 340)
    assert example_delta("val/loss", 340) == 0.0


def test_a_one_example_gain_is_not_an_improvement_but_two_are(tmp_path, notices):
    data = TextClassificationDataModule(data_path=str(skewed(tmp_path / "skewed.csv")))
    stopping = EarlyStopping(monitor="val/acc", mode="max", min_delta="auto", patience=5)
    trainer([stopping]).fit(BagModel(data.vocab_size, data.num_classes), datamodule=data)
    n = sum(data.class_counts("val"))
    assert n == 70 and stopping.val_examples == 70
    assert float(stopping.min_delta) == pytest.approx(1.5 / 70)
    best = float(stopping.best_score)
    stopping._evaluate_stopping_criteria(torch.tensor(best + 1 / n))
    assert float(stopping.best_score) == pytest.approx(best)  # one example more: no new best
    stopping._evaluate_stopping_criteria(torch.tensor(best + 2 / n))
    assert float(stopping.best_score) == pytest.approx(best + 2 / n)  # two: a new best
    (line,) = notices(r"^EarlyStopping: the validation split is small")
    assert line == ("EarlyStopping: the validation split is small for choosing epochs by val/acc: 70 validation examples "
                    "(< 400): one example is 1.4 points of accuracy, and at 90% accuracy its standard error is 3.6 "
                    "points, more than epochs usually differ by; class 'spam' has 9 validation examples (< 50): its "
                    "share of the errors is measured on a handful. Raise data.val_fraction, or give a larger val_path (on "
                    "4,000 MR sentences 0.2 instead of 0.1 chose epochs that tested 1.8 points higher; selecting on "
                    "val/loss instead tested 1.0 lower).")


def test_validation_size_problems_in_words():
    assert validation_size_problems({"a": 600, "b": 400}, 400, 50) == []
    assert len(validation_size_problems({"a": 300, "b": 40}, 400, 50)) == 2
    with pytest.raises(ValueError, match=r"min_delta must be a number >= 0 or `auto`"):
        EarlyStopping(min_delta="one")


# ---------------------------------------------------------------- 4. diagnoses that read levels (T54)
def give_away(path: Path, count: int = 400) -> Path:
    """MR sentences that end with a word naming their label: a model fits them perfectly."""
    examples = random.Random(0).sample(read_bundled("mr"), count)
    return write_csv(path, [(f"{e.text} zz{e.label}", e.label) for e in examples])


def test_a_saturating_run_is_called_saturated_not_underfitting(tmp_path, notices):
    data = TextClassificationDataModule(data_path=str(give_away(tmp_path / "easy.csv")), batch_size=16)
    diagnosis = LossDiagnosis()
    torch.manual_seed(0)
    trainer([diagnosis], epochs=6).fit(BagModel(data.vocab_size, data.num_classes, lr=0.1), datamodule=data)
    assert diagnosis.train[-1] < 0.05 * LN2  # the training loss is near zero
    assert diagnosis.case == "saturated"
    (line,) = notices(r"^LossDiagnosis: saturated: ")
    assert re.search(r"the training loss is near zero: the model fits its training data \(train loss \S+ = \d+\.\d% of "
                     r"ln C; validation loss \S+\).*Action: more epochs only memorise it", line)
    assert notices(r"^LossDiagnosis: final verdict: saturated\. more epochs only memorise it", level=logging.INFO)


def test_a_near_zero_loss_still_reads_a_rising_validation_loss_as_overfitting():
    found = diagnose([0.02, 0.01, 0.005], [0.3, 0.4, 0.5], LN2)
    assert found.case == "overfitting" and found.detail.startswith("train loss 0.005 = 0.7% of ln C")
    assert diagnose([0.02, 0.012, 0.008], [0.1, 0.1, 0.1], LN2).case == "saturated"  # not "underfitting"


def test_the_final_verdict_agrees_with_early_stopping(tmp_path, notices):
    data = TextClassificationDataModule(limit=600)
    diagnosis = LossDiagnosis(window=2)
    # a min_delta no epoch can reach: early stopping ends the run while the losses still fall
    stopping = EarlyStopping(monitor="val/acc", mode="max", min_delta=0.5, patience=2)
    torch.manual_seed(0)
    trainer([diagnosis, stopping], epochs=10).fit(BagModel(data.vocab_size, data.num_classes, lr=0.01), datamodule=data)
    assert stopping.stopped_epoch == 2
    (line,) = notices(r"^LossDiagnosis: final verdict: ", level=logging.INFO)
    assert "early stopping ended the run at epoch 2: val/acc did not improve for 2 validations" in line
    assert "keep training" not in line
    assert final_action("learning", "val/acc", 2, 2, "keep training").startswith(
        "early stopping ended the run at epoch 2: val/acc did not improve for 2 validations, although the losses still fell")


# ---------------------------------------------------------------- 1 and 6: the LR sweep's budget and its one line (T01)
def test_a_slow_sweep_is_replanned_within_max_time_and_says_what_it_chose(tmp_path, notices):
    data = TextClassificationDataModule(data_path=str(documents(tmp_path / "docs.csv")), batch_size=8)
    finder = LRFinder(min_lr=1e-5, max_lr=1.0, num_steps=100, max_time=1e-3, check="always")
    torch.manual_seed(0)
    trainer([finder], limit_val_batches=0).fit(BagModel(data.vocab_size, data.num_classes), datamodule=data)
    assert finder.steps_run <= 20 and finder.lrs[-1] == pytest.approx(1.0)  # the re-planned sweep still reaches max_lr
    (line,) = notices(r"^LRFinder: a sweep step takes", level=logging.INFO)
    assert re.match(r"LRFinder: a sweep step takes \S+ s, so 100 steps would take \S+ min \(max_time 0.001 s\): "
                    r"sweeping over 20 steps instead\.$", line)
    (outcome,) = notices(r"^LRFinder: (lr|kept)", level=logging.INFO)
    # the self-check shares the budget: its three runs are cut to the floor of 10 steps each
    assert re.match(r"LRFinder: (lr \S+ applied \(robust reading of \d+ steps, (confident|not confident: .*); self-checked "
                    r"over 30 steps \(10 per LR\), validation loss .*; (kept the reading|moved from the reading \S+)\)|kept lr .*); "
                    r"curve: .*lr_finder.png\.$", outcome)
    assert finder.check_steps_run in (0, 30)
    with pytest.raises(ValueError, match=r"max_time must be > 0 seconds or null \(no budget\), got 0"):
        LRFinder(max_time=0)


# ---------------------------------------------------------------- 1. the epoch estimate
def test_the_epoch_estimate_is_said_when_an_epoch_is_long(tmp_path, notices):
    data = TextClassificationDataModule(data_path=str(documents(tmp_path / "docs.csv")), batch_size=8)
    estimate = EpochEstimate(steps=3, min_seconds=0)
    trainer([estimate], limit_val_batches=0).fit(BagModel(data.vocab_size, data.num_classes), datamodule=data)
    batches = len(data.train_dataloader())
    (line,) = notices(r"^EpochEstimate: ", level=logging.INFO)
    assert re.match(rf"EpochEstimate: an epoch of {batches} batches will take about \d+\.\d min \(\S+ s per step, timed "
                    r"over 3 steps\)\. Shorter: data.max_length, model.downsample 4", line)
    assert estimate.estimate > 0
    quiet = EpochEstimate(steps=3, min_seconds=3600)
    trainer([quiet], limit_val_batches=0).fit(BagModel(data.vocab_size, data.num_classes), datamodule=data)
    assert len(notices(r"^EpochEstimate: ", level=logging.INFO)) == 1  # an hour-long epoch it is not
    assert epoch_seconds([0.5, 0.4, 9.0, 0.5], 100) == 50.0 and epoch_seconds([], 10) is None


# ---------------------------------------------------------------- 5. data checks that report everything at once
def dirty(path: Path) -> Path:
    rows = [(s, "pos" if i % 2 else "neg") for i, s in enumerate(mr_sentences()[:60])]
    for line in (3, 10, 17, 24, 31, 40):  # file lines: the header is line 1, row i is line i + 2
        rows[line - 2] = ("  ", rows[line - 2][1])
    rows[50 - 2] = (rows[50 - 2][0], "postive")  # a typo: a label seen once
    rows[55 - 2] = (rows[55 - 2][0], "")
    return write_csv(path, rows)


def test_every_empty_row_is_named_in_one_message(tmp_path):
    path = dirty(tmp_path / "dirty.csv")
    with pytest.raises(ValueError) as error:
        TextClassificationDataModule(data_path=str(path)).setup("fit")
    assert str(error.value) == (f"{path}: 7 rows with an empty value: 'text' empty at lines 3, 10, 17, 24, 31, 40; "
                                "'label' empty at line 55. Fill them in, remove them, or set --data.empty_rows drop to "
                                "leave them out.")


def test_dropped_empty_rows_are_counted_and_a_rare_label_is_named_with_its_line(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = dirty(tmp_path / "dirty.csv")
    with pytest.raises(ValueError) as error:
        TextClassificationDataModule(data_path=str(path), empty_rows="drop").setup("fit")
    assert str(error.value) == (f"{path}: 1 label seen fewer than 3 times: 'postive' (line 50). So rare a label (a "
                                "typo?) cannot be both trained on and validated. Fix it, set --data.rare_labels drop to "
                                "leave those rows out, or --data.rare_labels keep.")
    messages = [r.getMessage() for r in caplog.records]
    assert f"{path}: left out 7 rows with an empty value (data.empty_rows: drop): 'text' empty at lines 3, 10, 17, 24, " \
           "31, 40; 'label' empty at line 55." in messages
    data = TextClassificationDataModule(data_path=str(path), empty_rows="drop", rare_labels="drop")
    data.setup("fit")
    assert data.labels == ["neg", "pos"] and sum(data.class_counts("train") + data.class_counts("val")
                                                 + data.class_counts("test")) == 60 - 7 - 1
    assert f"{path}: 1 label seen fewer than 3 times: 'postive' (line 50): 1 rows left out (data.rare_labels: drop)." \
        in [r.getMessage() for r in caplog.records]
    kept = TextClassificationDataModule(data_path=str(path), empty_rows="drop", rare_labels="keep")
    assert kept.labels == ["neg", "pos", "postive"]
    assert (f"{path}: 1 label seen fewer than 3 times: 'postive' (line 50): kept (data.rare_labels: keep); they cannot "
            "be both trained on and validated.") in [r.getMessage() for r in caplog.records]


def test_long_texts_tells_the_model_to_pool_and_travels_in_checkpoints(tmp_path):
    docs = TextClassificationDataModule(data_path=str(documents(tmp_path / "docs.csv")))
    assert docs.long_texts is True and docs.state_dict()["long_texts"] is True
    mr = TextClassificationDataModule(limit=300)
    assert mr.long_texts is False
    mr.load_state_dict(docs.state_dict())  # predict from a checkpoint: no training data needed to know it
    assert mr.long_texts is True


def test_empty_rows_drop_applies_to_every_file_it_names(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    rows = [(s, "pos" if i % 2 else "neg") for i, s in enumerate(mr_sentences()[:80])]
    train = write_csv(tmp_path / "train.csv", rows[:60])
    val = write_csv(tmp_path / "val.csv", rows[60:70] + [("", "pos")])
    with pytest.raises(ValueError, match=r"val.csv: 1 row with an empty value: 'text' empty at line 12\. .*empty_rows drop"):
        TextClassificationDataModule(data_path=str(train), val_path=str(val)).setup("fit")
    data = TextClassificationDataModule(data_path=str(train), val_path=str(val), empty_rows="drop")
    data.setup("fit")
    assert len(data.datasets["val"]) == 10
    assert f"{val}: left out 1 row with an empty value (data.empty_rows: drop): 'text' empty at line 12." in caplog.messages
