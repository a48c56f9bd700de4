"""T60-T63 and hard examples: averaged probabilities and their scores, the manifest, cycle-end snapshots, the EMA's
agreement with checkpoints and early stopping, the classical blend fitted without test data, the hard-example table,
and oversampling of a previous run's hardest training examples."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks import CyclicLR, EarlyStopping, EMAWeights, HardExamples, SnapshotEnsemble
from callbacks.blend import ClassicalBlend, blend, blend_for, classical_model, classical_probabilities, fit_blend_weight, load_blend
from callbacks.ensemble import (
    average_probabilities,
    read_manifest,
    reliability,
    resolve_members,
    same_labels,
    scores,
    write_manifest,
)
from callbacks.hard_examples import example_losses, hardest
from callbacks.schedules import CyclicSchedule
from callbacks.weight_averaging import ema_decay
from datamodules import ImageClassificationDataModule, SequenceClassificationDataModule, TextClassificationDataModule
from datamodules.oversample import oversampled_indices
from tests.helpers_callbacks import Recorder, TinyLSTM, fit


# ----------------------------------------------------------------------------- averaging and scores (pure)
def test_average_is_the_weighted_mean_of_probabilities():
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    b = np.array([[0.5, 0.5], [0.6, 0.4]])
    assert np.allclose(average_probabilities([a, b]), [[0.7, 0.3], [0.4, 0.6]])
    weighted = average_probabilities([a, b], [3, 1])
    assert np.allclose(weighted, 0.75 * a + 0.25 * b)
    assert np.allclose(weighted.sum(1), 1)


@pytest.mark.parametrize("members, weights, message", [
    ([], None, "an ensemble needs at least one member."),
    ([np.ones((2, 2)) / 2, np.ones((3, 2)) / 2], None, "members predicted arrays of different shapes"),
    ([np.ones((2, 2)) / 2] * 2, [1.0], "need one non-negative weight per member (2), not all 0; got [1.0]."),
    ([np.ones((2, 2)) / 2] * 2, [0, 0], "need one non-negative weight per member (2), not all 0; got [0.0, 0.0]."),
])
def test_average_refuses_bad_members(members, weights, message):
    with pytest.raises(ValueError) as error:
        average_probabilities(members, weights)
    assert str(error.value).startswith(message)


def test_scores_and_calibration_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = [0, 1, 1, 0]  # right, wrong (0.8 confident), right, right
    result = scores(probs, labels, bins=10)
    assert result["acc"] == pytest.approx(0.75)
    assert result["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.7, 0.6])))
    # bins (10 equal-width): 0.9 -> right; 0.8 -> wrong; 0.7 -> right; 0.6 -> right; |acc - conf| weighted by share
    assert result["ece"] == pytest.approx((0.1 + 0.8 + 0.3 + 0.4) / 4, abs=1e-6)
    bins = reliability(probs, labels, bins=10)
    assert bins["accuracy"] == [1.0, 1.0, 0.0, 1.0] and sum(bins["share"]) == pytest.approx(1)


def test_an_ensemble_of_confident_disagreeing_members_is_better_calibrated():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    members = []
    for _ in range(5):  # each member: 70% right, always 95% sure
        right = rng.random(400) < 0.7
        predicted = np.where(right, labels, 1 - labels)
        members.append(np.where(predicted[:, None] == np.arange(2)[None, :], 0.95, 0.05))
    averaged = average_probabilities(members)
    assert scores(averaged, labels)["ece"] < min(scores(m, labels)["ece"] for m in members)
    assert scores(averaged, labels)["nll"] < min(scores(m, labels)["nll"] for m in members)


# ----------------------------------------------------------------------------- the manifest
def test_manifest_round_trip_with_paths_relative_to_it(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "runs" / name / "checkpoints").mkdir(parents=True)
        (tmp_path / "runs" / name / "checkpoints" / "best.ckpt").write_bytes(b"x")
    path = write_manifest(tmp_path / "runs" / "ens" / "ensemble.yaml", "seed",
                          [{"checkpoint": tmp_path / "runs" / "a" / "checkpoints" / "best.ckpt", "seed": 1},
                           {"checkpoint": tmp_path / "runs" / "b" / "checkpoints" / "best.ckpt", "weight": 2.0}])
    data = yaml.safe_load(path.read_text())
    assert data["kind"] == "seed" and data["members"][0]["checkpoint"] == "../a/checkpoints/best.ckpt"
    moved = tmp_path / "elsewhere"
    (tmp_path / "runs").rename(moved)  # the whole runs folder moves: the manifest still finds its members
    members = read_manifest(moved / "ens" / "ensemble.yaml")
    assert [m.checkpoint for m in members] == [(moved / n / "checkpoints" / "best.ckpt").resolve() for n in "ab"]
    assert [m.weight for m in members] == [1.0, 2.0]
    assert resolve_members(str(moved / "ens" / "ensemble.yaml")) == members


def test_manifest_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="--ensemble .*nope.yaml: no such file"):
        read_manifest(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: 1\n")
    with pytest.raises(ValueError, match="is not an ensemble manifest: it needs a non-empty `members:` list"):
        read_manifest(tmp_path / "bad.yaml")
    (tmp_path / "m.yaml").write_text("members:\n- {checkpoint: gone1.ckpt}\n- {checkpoint: gone2.ckpt}\n")
    with pytest.raises(FileNotFoundError) as error:
        read_manifest(tmp_path / "m.yaml")
    assert "2 member checkpoint(s) missing" in str(error.value) and "gone2.ckpt" in str(error.value)
    (tmp_path / "w.yaml").write_text("members:\n- {checkpoint: a.ckpt, weight: null}\n")
    with pytest.raises(ValueError, match="member 0 has weight None; a weight is a number >= 0."):
        read_manifest(tmp_path / "w.yaml")
    (tmp_path / "z.yaml").write_text("members:\n- {checkpoint: a.ckpt, weight: 0}\n- {checkpoint: b.ckpt, weight: 0}\n")
    with pytest.raises(ValueError, match="every member has weight 0"):
        read_manifest(tmp_path / "z.yaml")
    (tmp_path / "one.ckpt").write_bytes(b"x")
    with pytest.raises(ValueError, match="at least two checkpoints.*one checkpoint is --ckpt_path"):
        resolve_members([str(tmp_path / "one.ckpt")])
    with pytest.raises(ValueError, match="members disagree on the labels: a has \\['neg', 'pos'\\], b has \\['pos', 'neg'\\]"):
        same_labels([["neg", "pos"], ["pos", "neg"]], ["a", "b"])


# ----------------------------------------------------------------------------- T60 snapshots
@pytest.mark.parametrize("schedule, steps, expected", [
    (CyclicSchedule(policy="cosine_restarts", t0=10), [9, 10, 19, 20, 35], [0, 1, 1, 2, 3]),
    (CyclicSchedule(policy="cosine_restarts", t0=10, t_mult=2), [9, 10, 29, 30, 70], [0, 1, 1, 2, 3]),
    (CyclicSchedule(policy="triangular", step_size=5), [9, 10, 20], [0, 1, 2]),
    (CyclicSchedule(policy="one_cycle", total_steps=50), [49, 50], [0, 1]),
])
def test_completed_cycles_follow_the_schedules_own_boundaries(schedule, steps, expected):
    assert [schedule.completed_cycles(s) for s in steps] == expected


class WeightsAt(Callback):
    """The model's weights after every optimizer step, by global step."""

    def __init__(self):
        self.weights = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights[trainer.global_step] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def test_snapshots_are_the_weights_at_each_cycle_end(tmp_path):
    recorder = WeightsAt()
    snapshots = SnapshotEnsemble()
    trainer, _ = fit([CyclicLR(policy="cosine_restarts", max_lr=0.02, t_0=1, t_mult=1), recorder, snapshots], epochs=3,
                     default_root_dir=tmp_path, limit=200)
    per_epoch = trainer.num_training_batches
    assert [s["step"] for s in snapshots.snapshots] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    assert [s["cycle"] for s in snapshots.snapshots] == [1, 2, 3]
    members = read_manifest(tmp_path / "ensemble.yaml")
    assert [m.checkpoint.name for m in members] == ["snapshot-cycle1.ckpt", "snapshot-cycle2.ckpt", "snapshot-cycle3.ckpt"]
    for member, snap in zip(members, snapshots.snapshots):
        saved = torch.load(member.checkpoint, weights_only=True)["state_dict"]
        assert all(torch.equal(saved[k], recorder.weights[snap["step"]][k]) for k in saved)
    resumed = SnapshotEnsemble(keep_last=2)
    resumed.load_state_dict(snapshots.state_dict())
    assert resumed.snapshots == snapshots.snapshots and [s["cycle"] for s in resumed.manifest] == [2, 3]


def test_snapshot_needs_a_cyclic_schedule_and_holds_early_stopping(tmp_path, notices):
    with pytest.raises(RuntimeError, match="the run has no CyclicLR: add CyclicLR"):
        fit([SnapshotEnsemble()], default_root_dir=tmp_path, limit=100)
    stopping = EarlyStopping(monitor="val/loss", patience=1)
    fit([CyclicLR(policy="cosine_restarts", max_lr=0.02, t_0=3), SnapshotEnsemble(), stopping], epochs=1,
        default_root_dir=tmp_path, limit=100)
    assert stopping.patience == 3
    assert notices(r"early stopping's patience raised from 1 to 3 epochs \(one LR cycle\)")
    with pytest.raises(ValueError, match="skip_cycles and keep_last must be >= 0"):
        SnapshotEnsemble(keep_last=-1)


# ----------------------------------------------------------------------------- T62 EMA
class AverageAtValidation(Callback):
    """The weights the model holds when validation ends (after every other callback's on_validation_end)."""

    def __init__(self):
        self.weights = {}

    def on_validation_end(self, trainer, pl_module):
        self.weights[trainer.global_step] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def test_ema_is_what_validation_checkpoints_and_early_stopping_see(tmp_path):
    ema = EMAWeights(half_life_epochs=1.0)
    seen = AverageAtValidation()
    best = ModelCheckpoint(dirpath=tmp_path, monitor="val/loss", save_weights_only=True, filename="best")
    last = ModelCheckpoint(dirpath=tmp_path, filename="last")
    stopping = EarlyStopping(monitor="val/loss", patience=5, restore_best_weights=True)
    trainer, model = fit([ema, seen, best, last, stopping], epochs=4, default_root_dir=tmp_path, limit=300)
    per_epoch = trainer.num_training_batches
    assert ema.decay == pytest.approx(ema_decay(per_epoch)) and ema.decay ** per_epoch == pytest.approx(0.5)
    best_step = stopping.best_step
    saved = torch.load(best.best_model_path, weights_only=True)["state_dict"]
    for key, value in saved.items():
        assert torch.equal(value, seen.weights[best_step][key]), key  # the best checkpoint: the average validated
        assert torch.equal(model.state_dict()[key], value), key  # restore-best: the same weights
    full = torch.load(last.best_model_path or tmp_path / "last.ckpt", weights_only=True)
    assert "current_model_state" in full and "averaging_state" in full  # last.ckpt: raw + average, for resume
    differs = [k for k in full["state_dict"] if not torch.equal(full["state_dict"][k], full["current_model_state"][k])]
    assert differs, "the checkpoint's average equals its raw weights: nothing was averaged"


class NaNAt(Callback):
    """Turn one weight into NaN after the optimizer step ``step``."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


def test_ema_leaves_a_nan_step_out_of_the_average(tmp_path):
    ema = EMAWeights(half_life_epochs=1.0)
    # the NaN appears in step 3's weights: NaNAt must run first in on_train_batch_end, so it is listed first
    trainer, _ = fit([NaNAt(3), ema], epochs=5, default_root_dir=tmp_path, limit=100, max_steps=5,
                     limit_val_batches=0)
    assert trainer.global_step == 5 and ema.skipped == 3  # steps 3, 4 and 5 left weights with a NaN
    assert all(torch.isfinite(p).all() for p in ema._average_model.module.parameters())


def test_ema_leaves_the_cyclic_schedule_to_the_raw_weights_optimizer(tmp_path):
    recorder = Recorder()
    cyclic = CyclicLR(policy="triangular", max_lr=0.02, base_lr=0.002, step_size_epochs=1)
    trainer, _ = fit([cyclic, EMAWeights(), recorder], epochs=2, default_root_dir=tmp_path, limit=200)
    assert len(recorder.lrs) == trainer.global_step
    for step, lrs in recorder.lrs.items():
        assert lrs[0] == pytest.approx(cyclic.schedule.lr(step))


def test_ema_validate_after_fit_keeps_the_average_and_an_unstarted_average_keeps_the_trained_weights(tmp_path):
    ema = EMAWeights()
    trainer, model = fit([ema], epochs=2, default_root_dir=tmp_path, limit=200)
    after_fit = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.validate(model, datamodule=trainer.datamodule, verbose=False)
    assert all(torch.equal(after_fit[k], v) for k, v in model.state_dict().items())
    raw = WeightsAt()
    late = EMAWeights(update_starting_at_epoch=5)  # never reached in 2 epochs: nothing averaged, nothing swapped
    trainer, model = fit([raw, late], epochs=2, default_root_dir=tmp_path, limit=200)
    assert int(late._average_model.n_averaged) == 0
    assert all(torch.equal(raw.weights[trainer.global_step][k], v) for k, v in model.state_dict().items())


def test_halve_on_plateau_stands_aside_when_cyclic_lr_sets_the_lr(tmp_path, notices):
    from callbacks import HalveOnPlateau

    plateau = HalveOnPlateau(monitor="val/loss", patience=0)
    fit([CyclicLR(policy="cosine_restarts", max_lr=0.02, t_0=1, t_mult=1), plateau], epochs=2,
        default_root_dir=tmp_path, limit=200)
    assert notices("HalveOnPlateau does nothing in this run: CyclicLR sets the LR every step")
    assert plateau.halvings == 0 and plateau.schedulers == []


def test_ema_refuses_bad_arguments():
    with pytest.raises(ValueError, match="half_life_epochs must be > 0, got 0"):
        EMAWeights(half_life_epochs=0)
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\) or null, got 1.0"):
        EMAWeights(decay=1.0)


# ----------------------------------------------------------------------------- T63 blend
def test_blend_weight_minimises_validation_loss_and_ties_keep_the_network():
    labels = [0, 1, 0, 1]
    network = np.array([[0.6, 0.4], [0.4, 0.6], [0.4, 0.6], [0.6, 0.4]])  # half right
    classical = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])  # all right
    weight, losses = fit_blend_weight(network, classical, labels)
    assert weight == 1.0 and losses[-1] == min(losses)
    assert fit_blend_weight(network, network, labels)[0] == 0.0
    assert np.allclose(blend(network, classical, 0.25), 0.75 * network + 0.25 * classical)


def test_classical_models_fit_texts_series_and_images():
    texts = ["good fun", "great film", "bad dull", "awful plot"] * 10
    model = classical_model(texts, [1, 1, 0, 0] * 10)
    probs = classical_probabilities(model, ["good great", "dull awful"], 2)
    assert probs[0, 1] > 0.5 > probs[1, 1]
    series = [np.full((5 + i % 3, 1), float(i % 2)) for i in range(40)]  # unequal lengths, class = level
    model = classical_model(series, [i % 2 for i in range(40)])
    assert (classical_probabilities(model, [np.ones((9, 1)), np.zeros((2, 1))], 2).argmax(1) == [1, 0]).all()
    images = np.stack([np.full((1, 4, 4), float(i % 2)) for i in range(40)])
    model = classical_model(images, [i % 2 for i in range(40)])
    assert (classical_probabilities(model, images[:2], 2).argmax(1) == [0, 1]).all()


class SplitsRead(TextClassificationDataModule):
    """MR, recording which splits the blend asks for example by example."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.asked = []

    def split_inputs(self, split):
        self.asked.append(split)
        return super().split_inputs(split)

    def ordered_loader(self, split):
        self.asked.append(split)
        return super().ordered_loader(split)

    def split_labels(self, split):
        self.asked.append(split)
        return super().split_labels(split)


def test_blend_is_fitted_without_the_test_split_and_stored_beside_the_checkpoint(tmp_path, notices):
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger

    torch.manual_seed(0)
    data = SplitsRead(limit=600, batch_size=32)
    model = TinyLSTM(data.vocab_size, data.num_classes)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/acc", mode="max", save_weights_only=True)
    blender = ClassicalBlend()
    logger = CSVLogger(tmp_path, name="run", version="one")  # the run folder: tmp_path/run/one
    trainer = Trainer(max_epochs=1, callbacks=[checkpoint, blender], logger=logger, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)
    assert "test" not in data.asked and {"train", "val"} <= set(data.asked)
    val = len(data.split_labels("val"))
    assert notices(f"ClassicalBlend: the weight is chosen on {val} validation examples, the split that also chose")
    stored = load_blend(tmp_path / "checkpoints")
    assert stored is not None and stored["weight"] == blender.stored["weight"]
    assert blend_for(checkpoint.best_model_path) is not None  # fitted for the best checkpoint's weights,
    assert blend_for(tmp_path / "checkpoints" / "last.ckpt") is None  # not for other weights in the folder
    summary = __import__("json").loads((tmp_path / "run" / "one" / "summary.json").read_text())
    assert summary["blend/weight"] == stored["weight"]
    assert summary["val/blend_nll"] <= min(summary["val/network_nll"], summary["val/classical_nll"]) + 1e-9
    data.asked.clear()
    trainer.test(model, datamodule=data, ckpt_path=checkpoint.best_model_path)
    summary = __import__("json").loads((tmp_path / "run" / "one" / "summary.json").read_text())
    assert {"test/blend_acc", "test/classical_acc", "test/network_acc"} <= set(summary)


# ----------------------------------------------------------------------------- hard examples
def test_hardest_rows_are_the_highest_losses_first():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    labels = [0, 0, 1, 1]
    rows = hardest(probs, labels, ["neg", "pos"], ["a", "b", "c", "d"], count=3)
    assert [r["input"] for r in rows] == ["b", "c", "d"]
    assert rows[0] == {"index": 1, "input": "b", "label": "neg", "predicted": "pos", "p_label": 0.2,
                       "p_predicted": 0.8, "loss": round(-math.log(0.2), 4)}
    assert np.allclose(example_losses(probs, labels), -np.log([0.9, 0.2, 0.4, 0.5]))


def test_hard_examples_table_and_training_losses_with_the_best_weights(tmp_path):
    hard = HardExamples(count=5)
    best = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/acc", mode="max", save_weights_only=True)
    trainer, model = fit([best, hard], epochs=2, default_root_dir=tmp_path, limit=300, logger=False)
    with (tmp_path / "hard_examples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    model.load_state_dict(torch.load(best.best_model_path, weights_only=True)["state_dict"])
    data = trainer.datamodule
    from callbacks.blend import network_probabilities

    probs = network_probabilities(model, data.ordered_loader("val"))
    losses = example_losses(probs, data.split_labels("val"))
    assert [int(r["index"]) for r in rows] == list(np.argsort(-losses, kind="stable")[:5])
    assert rows[0]["input"] == data.split_inputs("val")[int(rows[0]["index"])]
    with (tmp_path / "train_losses.csv").open() as handle:
        train = list(csv.DictReader(handle))
    assert len(train) == len(data.split_labels("train"))
    assert [int(r["label"]) for r in train] == data.split_labels("train")


# ----------------------------------------------------------------------------- oversampling
def _losses_file(path, labels, losses):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "label", "loss"])
        writer.writerows([i, label, loss] for i, (label, loss) in enumerate(zip(labels, losses)))
    return path


def test_oversampled_indices_repeat_the_hardest_share(tmp_path):
    path = _losses_file(tmp_path / "l.csv", [0, 1, 0, 1, 0], [0.1, 2.0, 0.3, 1.5, 0.2])
    indices, hard = oversampled_indices(str(path), [0, 1, 0, 1, 0], share=0.4, factor=3)
    assert hard == 2 and indices == [0, 1, 2, 3, 4, 1, 3, 1, 3]
    with pytest.raises(ValueError, match="lists 5 training examples, this training split has 4"):
        oversampled_indices(str(path), [0, 1, 0, 1], 0.4, 3)
    with pytest.raises(ValueError, match="example 1 has label 1 there but not in this training split"):
        oversampled_indices(str(path), [0, 0, 0, 1, 0], 0.4, 3)
    twice = _losses_file(tmp_path / "twice.csv", [0, 1, 0, 1, 0], [0.1, 2.0, 0.3, 1.5, 0.2])
    twice.write_text(twice.read_text().replace("\n4,0,0.2", "\n3,1,0.2"))
    with pytest.raises(ValueError, match="line 6: index 3 is outside the training split or listed twice"):
        oversampled_indices(str(twice), [0, 1, 0, 1, 0], 0.4, 3)
    with pytest.raises(FileNotFoundError, match="writes train_losses.csv into its run folder"):
        oversampled_indices(str(tmp_path / "none.csv"), [0], 0.1, 2)


@pytest.mark.parametrize("make", [
    lambda **kw: TextClassificationDataModule(limit=300, batch_size=16, **kw),
    lambda **kw: SequenceClassificationDataModule(dataset="ItalyPowerDemand", batch_size=16, **kw),
    lambda **kw: ImageClassificationDataModule(batch_size=64, **kw),
], ids=["text", "sequence", "image"])
def test_every_data_module_oversamples_its_training_split(tmp_path, make):
    plain = make()
    plain.setup("fit")
    labels = plain.split_labels("train")
    losses = np.linspace(0, 1, len(labels))
    path = _losses_file(tmp_path / "train_losses.csv", labels, losses)
    data = make(oversample=str(path), oversample_share=0.1, oversample_factor=3)
    data.setup("fit")
    hard = math.ceil(0.1 * len(labels))
    assert len(data.train_dataloader().dataset) == len(labels) + 2 * hard
    assert data.split_labels("train") == labels  # the split itself is unchanged
    assert len(data.val_dataloader().dataset) == len(plain.val_dataloader().dataset)
    with pytest.raises(ValueError, match="oversample_factor must be >= 2"):
        make(oversample=str(path), oversample_factor=1)
