"""EarlyStopping (T35): Lightning's, plus the best weights restored however fitting ends."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from callbacks.early_stopping import EarlyStopping
from tests.helpers_callbacks import RNGState, fit


class Snapshots(Callback):
    """The monitored value and a copy of the weights at every epoch end (the moment EarlyStopping checks)."""

    def __init__(self):
        self.values, self.weights = [], []

    def on_train_epoch_end(self, trainer, pl_module):
        self.values.append(float(trainer.callback_metrics["val/loss"]))
        self.weights.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def best_epoch(values):
    return min(range(len(values)), key=values.__getitem__)  # first of equal minima, like Lightning's strict "<"


def assert_weights(model, expected):
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_restores_the_best_weights_when_max_epochs_ends_the_run():
    stop, snapshots = EarlyStopping(monitor="val/loss", patience=100), Snapshots()
    _, model = fit([snapshots, stop], epochs=6, lr=0.05)  # a high LR: validation loss is not monotonic
    best = best_epoch(snapshots.values)
    assert best < 5, "the test needs a run whose last epoch is not its best"
    assert stop.best_epoch == best and stop.restored
    assert_weights(model, snapshots.weights[best])


def test_restores_the_best_weights_after_stopping_early():
    stop, snapshots = EarlyStopping(monitor="val/loss", patience=1), Snapshots()
    trainer, model = fit([snapshots, stop], epochs=30, lr=0.05)
    assert trainer.current_epoch < 30 and stop.stopped_epoch == len(snapshots.values) - 1
    assert_weights(model, snapshots.weights[best_epoch(snapshots.values)])


def test_keeps_the_last_weights_when_told_to():
    stop, snapshots = EarlyStopping(monitor="val/loss", patience=100, restore_best_weights=False), Snapshots()
    _, model = fit([snapshots, stop], epochs=4, lr=0.05)
    assert stop.best_weights is None and not stop.restored
    assert_weights(model, snapshots.weights[-1])


class Interrupt(Callback):
    def __init__(self, epoch, exception):
        self.epoch, self.exception = epoch, exception

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise self.exception


class Keep(Callback):
    def on_fit_start(self, trainer, pl_module):
        self.trainer, self.model = trainer, pl_module


def test_sigterm_keeps_the_last_weights_for_the_resume():
    keep, stop, snapshots = Keep(), EarlyStopping(monitor="val/loss", patience=100), Snapshots()
    with pytest.raises(SIGTERMException):
        fit([keep, snapshots, stop, Interrupt(4, SIGTERMException(15))], epochs=10, lr=0.05)
    assert best_epoch(snapshots.values) != len(snapshots.weights) - 1
    assert not stop.restored
    assert_weights(keep.model, snapshots.weights[-1])


def test_ctrl_c_restores_the_best_weights_and_later_checkpoints_still_hold_the_last(tmp_path):
    keep, stop, snapshots = Keep(), EarlyStopping(monitor="val/loss", patience=100), Snapshots()
    with pytest.raises(SystemExit):  # Lightning turns KeyboardInterrupt into exit status 1
        fit([keep, snapshots, stop, Interrupt(4, KeyboardInterrupt())], epochs=10, lr=0.05)
    assert_weights(keep.model, snapshots.weights[best_epoch(snapshots.values)])
    keep.trainer.save_checkpoint(tmp_path / "after.ckpt")
    saved = torch.load(tmp_path / "after.ckpt", weights_only=True)["state_dict"]
    for name, value in snapshots.weights[-1].items():
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0)


def test_resume_keeps_the_best_weights_and_ends_like_the_uninterrupted_run(tmp_path):
    full, snapshots = EarlyStopping(monitor="val/loss", patience=100), Snapshots()
    _, full_model = fit([snapshots, full, RNGState()], epochs=5, lr=0.05)
    first = EarlyStopping(monitor="val/loss", patience=100)
    fit([first, RNGState(), ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)], epochs=3, lr=0.05)
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert set(saved[f"{first.state_key}/best_weights"]) == set(saved["state_dict"])
    resumed = EarlyStopping(monitor="val/loss", patience=100)
    _, model = fit([resumed, RNGState(), ModelCheckpoint(dirpath=tmp_path / "b", save_top_k=0)], epochs=5, lr=0.05,
                   ckpt_path=str(tmp_path / "last.ckpt"))
    assert (resumed.best_epoch, resumed.best_step) == (full.best_epoch, full.best_step)
    assert float(resumed.best_score) == pytest.approx(float(full.best_score))
    for key, value in full_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_a_checkpoint_of_the_best_step_holds_the_weights_once(tmp_path):
    stop = EarlyStopping(monitor="val/loss", patience=100)
    best = ModelCheckpoint(dirpath=tmp_path, monitor="val/loss", save_top_k=1, filename="best")
    snapshots = Snapshots()
    fit([snapshots, stop, best], epochs=4, lr=0.05)
    saved = torch.load(tmp_path / "best.ckpt", weights_only=True)
    kept, weights = saved[f"{stop.state_key}/best_weights"], saved["state_dict"]
    assert kept.keys() == weights.keys()
    for key in weights:  # one storage for both: the file holds the model once
        assert kept[key].untyped_storage().data_ptr() == weights[key].untyped_storage().data_ptr(), key
    assert_weights_equal(kept, snapshots.weights[best_epoch(snapshots.values)])


def assert_weights_equal(weights, expected):
    for key, value in weights.items():
        assert torch.equal(value, expected[key]), key


def test_state_dict_adds_plain_values_and_loads_old_checkpoints():
    stop = EarlyStopping(monitor="val/acc", mode="max")
    state = stop.state_dict()
    assert state["best_epoch"] is None and state["best_step"] is None and state["wait_count"] == 0
    old = {k: v for k, v in state.items() if k not in ("best_epoch", "best_step")}
    fresh = EarlyStopping(monitor="val/acc", mode="max")
    fresh.load_state_dict(old)
    assert fresh.best_epoch is None


def test_bad_mode_lists_the_choices():
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    with pytest.raises(MisconfigurationException, match="`mode` can be min, max, got up"):
        EarlyStopping(monitor="val/loss", mode="up")
