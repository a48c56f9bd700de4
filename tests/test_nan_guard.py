"""NaNGuard (T55): an injected NaN/Inf stops training, is named, and never reaches last.ckpt."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from callbacks.nan_guard import NaNGuard, NonFiniteError
from callbacks.wandb_io import read_offline_run
from datamodules import TextClassificationDataModule


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Runs without a logger write their files into the working directory: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


BAD_STEP = 5


def injected(model_class, where):
    """The tiny model on MR, with a NaN/Inf injected at optimizer step ``BAD_STEP``."""

    class Injected(model_class):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            if where == "loss" and self.global_step == BAD_STEP:
                loss = loss * float("nan")
            if where == "gradient" and self.global_step == BAD_STEP:
                self.head.weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))
            return loss

        def optimizer_step(self, *args, **kwargs):
            step = self.global_step
            super().optimizer_step(*args, **kwargs)
            if where == "parameter" and step == BAD_STEP:
                with torch.no_grad():
                    self.head.bias[1] = float("inf")  # an overflow in the update

    return Injected


def fit(model_class, where, tmp_path, *, guard=True, logger=False):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    model = injected(model_class, where)(data.vocab_size, data.num_classes)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True, every_n_train_steps=2,
                                 save_top_k=1, monitor="train/loss")
    callbacks = [NaNGuard(), checkpoint] if guard else [checkpoint]
    trainer = Trainer(max_epochs=2, callbacks=callbacks, logger=logger, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1)
    trainer.fit(model, datamodule=data)
    return trainer


def weights(path):
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return checkpoint, checkpoint["state_dict"]


def all_finite(state_dict) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state_dict.values())


def test_control_without_the_guard_last_ckpt_gets_nan_weights(tmp_path, tiny_model_class):
    fit(tiny_model_class, "loss", tmp_path, guard=False)
    _, state = weights(tmp_path / "checkpoints" / "last.ckpt")
    assert not all_finite(state)  # what NaNGuard prevents


def test_nan_loss_stops_keeps_last_ckpt_and_reaches_wandb(offline_wandb, tiny_model_class):
    logger = WandbLogger(project="nan-guard-test", save_dir=str(offline_wandb))
    try:
        with pytest.raises(NonFiniteError) as error:
            fit(tiny_model_class, "loss", offline_wandb, logger=logger)
    finally:
        logger.experiment.finish(exit_code=1)
    message = str(error.value)
    assert f"non-finite loss in `loss` (nan) at step {BAD_STEP}" in message
    assert "lower the learning rate" in message and "clip gradients" in message

    folder = offline_wandb / "checkpoints"
    last, state = weights(folder / "last.ckpt")
    assert all_finite(state) and last["global_step"] == 4  # saved every 2 steps, never after the NaN
    diagnostic, state = weights(folder / f"nonfinite-step={BAD_STEP}.ckpt")
    assert diagnostic["global_step"] == BAD_STEP and all_finite(state)  # caught before the update
    assert str(folder / "last.ckpt") in message

    run = read_offline_run(next((offline_wandb / "wandb").glob("offline-run-*")))
    assert run.summary["nan_guard/kind"] == "loss" and run.summary["nan_guard/tensor"] == "loss"
    assert run.summary["nan_guard/step"] == BAD_STEP
    assert run.summary["nan_guard/checkpoint"] == str(folder / f"nonfinite-step={BAD_STEP}.ckpt")
    (alert,) = run.alerts
    assert alert["level"] == "ERROR" and alert["title"] == "NaN/Inf in loss" and "step 5" in alert["text"]


def test_nan_gradient_is_named_and_never_applied(tmp_path, tiny_model_class):
    expected = rf"non-finite gradient in `head.weight` \(32 of 32 values NaN\) at step {BAD_STEP}"
    with pytest.raises(NonFiniteError, match=expected):
        fit(tiny_model_class, "gradient", tmp_path)
    _, state = weights(tmp_path / "checkpoints" / f"nonfinite-step={BAD_STEP}.ckpt")
    assert all_finite(state)  # the step with the NaN gradient was not taken
    last, state = weights(tmp_path / "checkpoints" / "last.ckpt")
    assert all_finite(state) and last["global_step"] == 4


def test_inf_parameter_after_the_update_is_named(tmp_path, tiny_model_class):
    with pytest.raises(NonFiniteError, match=r"non-finite parameter in `head.bias` \(1 of 2 values Inf\) at step 6"):
        fit(tiny_model_class, "parameter", tmp_path)
    _, state = weights(tmp_path / "checkpoints" / "nonfinite-step=6.ckpt")
    assert math.isinf(float(state["head.bias"][1]))  # the diagnostic checkpoint shows the damage ...
    last, state = weights(tmp_path / "checkpoints" / "last.ckpt")
    assert all_finite(state) and last["global_step"] == 4  # ... the last good one does not


def test_clean_training_is_untouched(tmp_path, tiny_model_class):
    trainer = fit(tiny_model_class, None, tmp_path)
    assert trainer.global_step == 16 and not list((tmp_path / "checkpoints").glob("nonfinite-*"))
    assert trainer.callbacks[0].finding is None


def test_state_dict_and_bad_argument():
    guard = NaNGuard()
    assert guard.state_dict() == {"finding": None}
    guard.load_state_dict({})
    assert guard.finding is None
    with pytest.raises(ValueError) as error:
        NaNGuard(check_every_n_steps=0)
    assert str(error.value) == "check_every_n_steps must be an integer >= 1, got 0."


def test_checkpoint_guard_when_steps_go_unchecked(tmp_path, tiny_model_class):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    model = injected(tiny_model_class, "loss")(data.vocab_size, data.num_classes)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=2, save_top_k=0)
    trainer = Trainer(max_epochs=2, callbacks=[NaNGuard(check_every_n_steps=1000), checkpoint], logger=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    # step 0 is checked, steps 1-999 are not: the NaN of step 5 reaches the weights, and the save at step 6 stops
    with pytest.raises(NonFiniteError, match=r"non-finite parameter in `embedding.weight` .* at step 6"):
        trainer.fit(model, datamodule=data)
    last, state = weights(tmp_path / "last.ckpt")
    assert all_finite(state) and last["global_step"] == 4
    _, state = weights(tmp_path / "nonfinite-step=6.ckpt")
    assert not all_finite(state)
