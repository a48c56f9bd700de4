"""ResumableCheckpoint: a resumed fit takes the same steps as one never stopped."""

from __future__ import annotations

import errno
import logging

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch import nn

from callbacks.resume import ResumableCheckpoint, finished_marker, rng_states, set_rng_states
from datamodules import TextClassificationDataModule
from torch.nn.utils.rnn import pack_padded_sequence

from tests.helpers_callbacks import TinyLSTM


class DropoutLSTM(TinyLSTM):
    """The tiny model with dropout: its steps draw from torch's global generator."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop = nn.Dropout(0.5)

    def forward(self, tokens, lengths):
        embedded = self.drop(self.embedding(tokens))
        _, (hidden, _) = self.rnn(pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False))
        return self.head(hidden[-1])


class Losses(Callback):
    def __init__(self, stop_at=None):
        self.losses, self.stop_at = {}, stop_at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.stop_at:
            raise RuntimeError("stopped here (stands in for kill -9: nothing saved at this point)")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


def fit(folder, callbacks, ckpt_path=None, seed=0, epochs=2):
    torch.manual_seed(seed)
    data = TextClassificationDataModule(limit=400, batch_size=32, bucket_size=2)
    model = DropoutLSTM(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    trainer = Trainer(max_epochs=epochs, callbacks=callbacks, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=folder, deterministic=True)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model


def weights_of(model):
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")  # the resume's own folder
def test_a_fit_resumed_mid_epoch_takes_the_same_steps_as_one_never_stopped(tmp_path):
    whole = Losses()
    reference = weights_of(fit(tmp_path / "a", [whole, ResumableCheckpoint(every_n_train_steps=3, dirpath=str(tmp_path / "a"))]))
    assert sorted(whole.losses) == list(range(1, 17))  # 252 training examples: 8 batches of 32 an epoch

    stopped = Losses(stop_at=11)  # mid-epoch 2; the last save was after step 9
    with pytest.raises(RuntimeError, match="stopped here"):
        fit(tmp_path / "b", [stopped, ResumableCheckpoint(every_n_train_steps=3, dirpath=str(tmp_path / "b"))])
    last = tmp_path / "b" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 9

    resumed = Losses()
    model = fit(tmp_path / "b", [resumed, ResumableCheckpoint(every_n_train_steps=3, dirpath=str(tmp_path / "b"))],
                ckpt_path=str(last), seed=123)  # another seed: the checkpoint's generators must win
    assert sorted(resumed.losses) == list(range(10, 17))
    assert resumed.losses == {step: whole.losses[step] for step in resumed.losses}
    for name, value in weights_of(model).items():
        torch.testing.assert_close(value, reference[name], rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_without_its_generator_states_the_resume_drops_out_differently(tmp_path):
    whole = Losses()
    fit(tmp_path / "a", [whole])
    with pytest.raises(RuntimeError):
        fit(tmp_path / "b", [Losses(stop_at=11), ResumableCheckpoint(every_n_train_steps=3, dirpath=str(tmp_path / "b"))])
    checkpoint = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)
    for state in checkpoint["callbacks"].values():
        state.pop("rng", None)
    torch.save(checkpoint, tmp_path / "b" / "no-rng.ckpt")
    resumed = Losses()
    fit(tmp_path / "b", [resumed, ResumableCheckpoint(dirpath=str(tmp_path / "b"))],
        ckpt_path=str(tmp_path / "b" / "no-rng.ckpt"), seed=123)
    assert any(resumed.losses[step] != whole.losses[step] for step in resumed.losses), "the control must differ"


class Saves(Callback):
    def __init__(self):
        self.steps = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.steps.append(trainer.global_step)


def test_saves_every_n_steps_and_at_every_epoch_end_and_marks_a_finished_fit(tmp_path):
    saves = Saves()
    fit(tmp_path, [saves, ResumableCheckpoint(every_n_train_steps=3, dirpath=str(tmp_path))])
    assert saves.steps == [3, 6, 8, 9, 12, 15, 16]  # every 3 steps and the epoch ends (8, 16)
    assert finished_marker(tmp_path / "last.ckpt").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.ckpt", "last.finished"]


def test_a_failed_write_keeps_the_previous_checkpoint_and_names_it(tmp_path, monkeypatch):
    class FullDisk(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 6:  # this step's save (hooks of checkpoints run last) fails half-way
                def save(filepath, weights_only=False):
                    with open(filepath, "wb") as file:
                        file.write(b"half a checkpoint")
                    raise OSError(errno.ENOSPC, "No space left on device", "/tmp/tmpXXXX")
                monkeypatch.setattr(trainer, "save_checkpoint", save)

    with pytest.raises(OSError, match="No space left on device") as error:
        fit(tmp_path, [FullDisk(), ResumableCheckpoint(every_n_train_steps=3, dirpath=str(tmp_path))])
    assert error.value.filename == str(tmp_path / "last.ckpt")
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 3, "the previous save is whole"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.ckpt"], "no partial file left"


def test_generator_states_survive_a_weights_only_round_trip(tmp_path):
    import random

    import numpy as np

    states = rng_states()
    torch.save({"rng": states}, tmp_path / "s.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_bad_argument():
    with pytest.raises(ValueError, match=r"every_n_train_steps must be >= 0 \(0: epoch ends only\), got -1\."):
        ResumableCheckpoint(every_n_train_steps=-1)


def test_ctrl_c_inside_a_training_step_keeps_the_checkpoint_that_resumes_exactly(tmp_path, notices):
    class Interrupted(DropoutLSTM):
        def training_step(self, batch, batch_idx):
            if self.trainer.global_step == 11:
                raise KeyboardInterrupt  # as Ctrl+C in the middle of the forward pass
            return super().training_step(batch, batch_idx)

    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32, bucket_size=2)
    model = Interrupted(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    trainer = Trainer(max_epochs=2, callbacks=[ResumableCheckpoint(every_n_train_steps=3, dirpath=str(tmp_path))],
                      logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    with pytest.raises(SystemExit):  # Lightning ends a Ctrl+C with status 1
        trainer.fit(model, datamodule=data)
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 9
    assert notices(r"Ctrl\+C in the middle of a training step: kept the checkpoint saved before it .*last\.ckpt",
                   level=logging.INFO)
