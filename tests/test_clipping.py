"""AutoClip (T12): clip at a percentile of the observed gradient-norm history; logged, resumable."""

from __future__ import annotations

import glob

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from callbacks.clipping import AutoClip, percentile_threshold
from callbacks.grad_norm import GradNormMonitor
from callbacks.wandb_io import read_offline_run
from datamodules import TextClassificationDataModule
from tests.helpers_callbacks import RNGState


def fit(model_class, callbacks, *, epochs=2, ckpt_path=None, logger=False, clip=None, seed=0):
    torch.manual_seed(seed)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    model = model_class(data.vocab_size, data.num_classes, lr=0.5)
    trainer = Trainer(max_epochs=epochs, gradient_clip_val=clip, callbacks=list(callbacks), logger=logger,
                      log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
                      num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model


def test_percentile_matches_numpy():
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    for p in (10, 50, 90, 100):
        assert percentile_threshold(values, p) == pytest.approx(np.percentile(values, p))


def test_clips_each_step_at_the_percentile_of_the_history_so_far(tiny_model_class):
    clip = AutoClip(percentile=50)
    trainer, model = fit(tiny_model_class, [clip])
    # the model's own hook runs after the callbacks': it sees the gradient as AutoClip left it
    history = clip.history
    assert len(history) == trainer.global_step == len(model.preclip_norms) == clip.steps
    expected_clipped = 0
    for step, after in enumerate(model.preclip_norms):
        threshold = float(np.percentile(history[: step + 1], 50))
        assert after == pytest.approx(min(history[step], threshold), rel=1e-4)
        expected_clipped += history[step] > threshold
    assert clip.clipped == expected_clipped and 0 < expected_clipped < len(history)
    assert clip.threshold == pytest.approx(np.percentile(history, 50))


def test_history_size_keeps_the_most_recent_norms(tiny_model_class):
    clip = AutoClip(percentile=90, history_size=5)
    trainer, _ = fit(tiny_model_class, [clip], epochs=1)
    assert len(clip.history) == 5 and trainer.global_step > 5


def test_norms_and_thresholds_reach_wandb(offline_wandb, tiny_model_class):
    logger = WandbLogger(project="autoclip-test", save_dir=str(offline_wandb))
    clip = AutoClip(percentile=25)
    fit(tiny_model_class, [clip], logger=logger)
    logger.experiment.finish()
    run = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    assert run.metric("grad/norm") == pytest.approx(clip.history, rel=1e-5)
    thresholds = [float(np.percentile(clip.history[: i + 1], 25)) for i in range(len(clip.history))]
    assert run.metric("grad/clip_threshold") == pytest.approx(thresholds, rel=1e-5)
    assert run.summary["grad/clip_rate_total"] == pytest.approx(clip.clipped / clip.steps)


def test_resume_continues_the_history_as_if_uninterrupted(tmp_path, tiny_model_class):
    uninterrupted = AutoClip(percentile=30)
    _, full_model = fit(tiny_model_class, [uninterrupted, RNGState()], epochs=3)
    first = AutoClip(percentile=30)
    fit(tiny_model_class, [first, RNGState(), ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)],
        epochs=2)
    resumed = AutoClip(percentile=30)
    _, model = fit(tiny_model_class, [resumed, RNGState(), ModelCheckpoint(dirpath=tmp_path / "b", save_top_k=0)],
                   epochs=3, ckpt_path=str(tmp_path / "last.ckpt"))
    assert len(first.history) < len(resumed.history)
    assert resumed.history == pytest.approx(uninterrupted.history, rel=1e-6)
    assert (resumed.steps, resumed.clipped) == (uninterrupted.steps, uninterrupted.clipped)
    for a, b in zip(model.parameters(), full_model.parameters()):
        torch.testing.assert_close(a, b)


def test_state_dict_is_plain_and_loads_with_defaults():
    clip = AutoClip()
    clip.history, clip.threshold, clip.steps, clip.clipped = [1.0, 2.0], 1.1, 2, 1
    assert clip.state_dict() == {"steps": 2, "clipped": 1, "history": [1.0, 2.0], "threshold": 1.1}
    fresh = AutoClip()
    fresh.load_state_dict({})
    assert (fresh.history, fresh.threshold, fresh.steps) == ([], None, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"percentile": 0}, "percentile must be in (0, 100] (the paper uses 10), got 0."),
        ({"percentile": 150}, "percentile must be in (0, 100] (the paper uses 10), got 150."),
        ({"history_size": 0}, "history_size must be an integer >= 1 or None (the whole run), got 0."),
        ({"norm_type": 0}, "norm_type must be > 0 (2.0 for the Euclidean norm, inf for max), got 0."),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        AutoClip(**kwargs)
    assert str(error.value) == message


def test_refuses_a_fixed_threshold_or_a_second_monitor(tiny_model_class):
    with pytest.raises(ValueError, match=r"AutoClip clips the gradients itself: set trainer.gradient_clip_val to null \(it is 5.0\)"):
        fit(tiny_model_class, [AutoClip()], clip=5.0, epochs=1)
    with pytest.raises(ValueError, match="AutoClip already logs grad/norm and grad/clip_rate; remove GradNormMonitor"):
        fit(tiny_model_class, [AutoClip(), GradNormMonitor()], epochs=1)
