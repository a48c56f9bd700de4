"""NaNGuard (T55): an injected NaN/Inf or finite loss blow-up stops training, is named, and never reaches last.ckpt."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.precision import MixedPrecision

from callbacks.nan_guard import LossBlowUpError, NaNGuard, NonFiniteError
from callbacks.wandb_io import read_offline_run
from datamodules import TextClassificationDataModule


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Runs without a logger write their files into the working directory: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


BAD_STEP = 5
BLOW_UP = 1e34  # a finite loss far above ln C, what a far too high LR reaches without overflowing


def injected(model_class, where, blow_up=BLOW_UP):
    """The tiny model on MR, with a NaN/Inf (or a finite blow-up: the loss times ``blow_up``) injected at
    optimizer step ``BAD_STEP``; ``returned`` records each loss as ``training_step`` returns it."""

    class Injected(model_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.returned: list[float] = []

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            if where == "loss" and self.global_step == BAD_STEP:
                loss = loss * float("nan")
            if where == "blow-up" and self.global_step == BAD_STEP:
                loss = loss * blow_up
            self.returned.append(float(loss.detach()))
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


def fit(model_class, where, tmp_path, *, guard=True, logger=False, model_kwargs=None, blow_up=BLOW_UP, returned=None,
        **trainer_kwargs):
    """Fit the injected tiny model on MR; ``guard``: True (a default NaNGuard), False or a NaNGuard;
    ``returned``: a list that receives the losses ``training_step`` returned."""
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    model = injected(model_class, where, blow_up)(data.vocab_size, data.num_classes, **(model_kwargs or {}))
    model.returned = [] if returned is None else returned
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True, every_n_train_steps=2,
                                 save_top_k=1, monitor="train/loss")
    guard = NaNGuard() if guard is True else guard
    callbacks = [guard, checkpoint] if guard else [checkpoint]
    trainer = Trainer(max_epochs=2, callbacks=callbacks, logger=logger, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=1, **trainer_kwargs)
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
    guard = trainer.callbacks[0]
    assert guard.finding is None
    assert guard.max_loss == pytest.approx(100 * math.log(2))  # the default bound was on, C read from the data


def test_finite_loss_blow_up_stops_like_a_nan_and_reaches_wandb(offline_wandb, tiny_model_class):
    guard = NaNGuard()
    logger = WandbLogger(project="nan-guard-test", save_dir=str(offline_wandb))
    try:
        with pytest.raises(LossBlowUpError) as error:
            fit(tiny_model_class, "blow-up", offline_wandb, guard=guard, logger=logger)
    finally:
        logger.experiment.finish(exit_code=1)
    assert isinstance(error.value, NonFiniteError)  # whoever catches NaN/Inf catches this too
    message = str(error.value)
    value = re.search(r"finite loss blow-up in `loss` \((\S+) > 69.3 = max_loss_factor 100 x ln 2\) "
                      rf"at step {BAD_STEP} \(epoch 0\)\.", message)
    assert value is not None, message
    assert 1e33 < float(value.group(1)) < 1e34 and math.isfinite(float(value.group(1)))  # ~0.69 x 1e34: finite
    assert "lower the learning rate" in message and "clip gradients" in message

    folder = offline_wandb / "checkpoints"
    assert str(folder / "last.ckpt") in message  # the last good checkpoint is named ...
    last, state = weights(folder / "last.ckpt")
    assert all_finite(state) and last["global_step"] == 4  # ... and kept: nothing saved after the blow-up
    diagnostic, state = weights(folder / f"nonfinite-step={BAD_STEP}.ckpt")
    assert diagnostic["global_step"] == BAD_STEP and all_finite(state)  # caught before the huge update

    assert guard.finding["problem"] == "finite blow-up" and guard.finding["step"] == BAD_STEP
    assert json.loads(json.dumps(guard.state_dict())) == guard.state_dict()  # plain values only
    run = read_offline_run(next((offline_wandb / "wandb").glob("offline-run-*")))
    assert run.summary["nan_guard/kind"] == "loss" and run.summary["nan_guard/problem"] == "finite blow-up"
    assert run.summary["nan_guard/step"] == BAD_STEP
    assert run.summary["nan_guard/max_loss"] == pytest.approx(100 * math.log(2))
    assert run.summary["nan_guard/checkpoint"] == str(folder / f"nonfinite-step={BAD_STEP}.ckpt")
    (alert,) = run.alerts
    assert alert["level"] == "ERROR" and alert["title"] == "Loss blow-up" and "step 5" in alert["text"]


def test_far_too_high_lr_is_stopped_at_its_first_blown_up_step(tmp_path, tiny_model_class):
    # Adam's steps are bounded by the LR: at 1e17 the loss jumps to a finite ~1e34 and stays there
    adam = {"optimizer": "adam", "lr": 1e17}
    trainer = fit(tiny_model_class, None, tmp_path / "nan-only", guard=NaNGuard(max_loss_factor=None),
                  model_kwargs=adam)
    model = trainer.lightning_module
    # the NaN/Inf check alone lets the run finish, exit code 0 (and the checkpoint guard no longer mistakes
    # 1e17 weights for Inf: their 2-norm overflows, their max-abs does not)
    assert trainer.global_step == 16
    assert all(math.isfinite(v) for v in model.returned) and min(model.returned[1:]) > 1e33
    with pytest.raises(LossBlowUpError, match=r"finite loss blow-up in `loss` \(\S+e\+33 > 69.3 = max_loss_factor "
                                              r"100 x ln 2\) at step 1 \(epoch 0\)\. No checkpoint saved yet\."):
        fit(tiny_model_class, None, tmp_path, model_kwargs=adam)


def test_the_bound_applies_to_the_returned_loss_under_amp_and_accumulation(tmp_path, tiny_model_class):
    # with fp16 AMP the loss NaNGuard sees is scaled by 65536 (0.69 -> 45000) and divided by accumulate_grad_batches
    def amp_run(where, folder, returned=None):
        return fit(tiny_model_class, where, folder, blow_up=1e6, returned=returned, accumulate_grad_batches=2,
                   plugins=[MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))])

    trainer = amp_run(None, tmp_path / "clean")
    assert trainer.global_step == 8 and trainer.callbacks[0].finding is None  # never tripped by the loss scale
    returned = []
    with pytest.raises(LossBlowUpError) as error:
        amp_run("blow-up", tmp_path, returned)
    value = float(re.search(r"`loss` \((\S+) > 69.3", str(error.value)).group(1))
    returned = max(returned)  # the worse of the two accumulated batches of step 5
    assert value == pytest.approx(returned, rel=1e-2) and f"at step {BAD_STEP}" in str(error.value)


def test_unknown_number_of_classes_bounds_nothing_and_says_so(tmp_path, tiny_model_class, notices):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=100, batch_size=32)
    data.setup("fit")
    for guard in (NaNGuard(), NaNGuard(num_classes=3)):  # no data module, no hparams: C only from the argument
        trainer = Trainer(max_steps=2, callbacks=[guard], logger=False, enable_progress_bar=False,
                          enable_model_summary=False, enable_checkpointing=False)
        trainer.fit(tiny_model_class(data.vocab_size, data.num_classes), train_dataloaders=data.train_dataloader(),
                    val_dataloaders=data.val_dataloader())
    assert len(notices(r"NaNGuard: the number of classes C is unknown .* pass num_classes to NaNGuard")) == 1
    assert guard.max_loss == pytest.approx(100 * math.log(3))


def test_state_dict_and_bad_argument():
    guard = NaNGuard()
    assert guard.state_dict() == {"finding": None}
    guard.load_state_dict({})
    assert guard.finding is None
    with pytest.raises(ValueError) as error:
        NaNGuard(check_every_n_steps=0)
    assert str(error.value) == "check_every_n_steps must be an integer >= 1, got 0."


@pytest.mark.parametrize(
    ("factor", "got"), [(1, "1"), (0.5, "0.5"), (-100, "-100"), (math.nan, "nan"), (math.inf, "inf"), (True, "True")]
)
def test_bad_max_loss_factor(factor, got):
    with pytest.raises(ValueError) as error:
        NaNGuard(max_loss_factor=factor)
    assert str(error.value) == (
        "max_loss_factor must be a finite number > 1 (the loss bound in units of ln C, the loss at chance; "
        "100 stops above 100 x ln C) or None to stop on NaN/Inf only, got " + got + ".")


def test_bad_num_classes():
    with pytest.raises(ValueError) as error:
        NaNGuard(num_classes=1)
    assert str(error.value) == "num_classes must be >= 2 or None (read from the model or data), got 1."


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
