"""GradNormMonitor (T10): the pre-clip global norm and the clip rate, checked in the W&B run."""

from __future__ import annotations

import glob
import statistics

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from callbacks import GradNormMonitor, read_offline_run
from datamodules import TextClassificationDataModule


def fit(model_class, *, clip, epochs=2, logger=False, ckpt_path=None, callbacks=(), monitor=None, seed=0,
        algorithm="norm"):
    torch.manual_seed(seed)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    model = model_class(data.vocab_size, data.num_classes)
    monitor = monitor or GradNormMonitor()
    trainer = Trainer(
        max_epochs=epochs,
        gradient_clip_val=clip,
        gradient_clip_algorithm=algorithm,
        callbacks=[monitor, *callbacks],
        logger=logger,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(callbacks),
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model, monitor


def test_logs_the_preclip_norm_and_clip_rate_to_wandb(offline_wandb, tiny_model_class):
    logger = WandbLogger(project="grad-norm-test", save_dir=str(offline_wandb))
    trainer, model, monitor = fit(tiny_model_class, clip=None, logger=logger)
    # a threshold at the median of the norms this very run saw: about half the steps clip
    norms = model.preclip_norms
    logger.experiment.finish()
    run = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    assert run.exit_code == 0
    assert run.metric("grad/norm") == pytest.approx(norms, rel=1e-5)
    assert run.metric("grad/clip_rate") == [0.0, 0.0]  # no clipping configured
    assert run.summary["grad/clip_rate_total"] == 0.0
    assert monitor.steps == len(norms) == trainer.global_step


def test_clip_rate_counts_steps_above_the_threshold(tiny_model_class):
    _, reference, _ = fit(tiny_model_class, clip=None)
    threshold = statistics.median(reference.preclip_norms)
    trainer, model, monitor = fit(tiny_model_class, clip=threshold)
    # the callback sees the norm *before* clipping: the model's own record agrees with it
    expected = sum(norm > threshold for norm in model.preclip_norms)
    assert 0 < expected < len(model.preclip_norms)
    assert monitor.clipped == expected
    epoch_rates = trainer.callback_metrics["grad/clip_rate"]
    assert 0.0 < float(epoch_rates) < 1.0


def test_every_step_clipped_with_a_tiny_threshold(tiny_model_class):
    trainer, model, monitor = fit(tiny_model_class, clip=1e-8, epochs=1)
    assert monitor.clipped == monitor.steps == trainer.global_step > 0
    assert float(trainer.callback_metrics["grad/clip_rate"]) == 1.0


def test_value_clipping_counts_steps_with_any_gradient_above_the_value(tiny_model_class):
    """gradient_clip_algorithm="value" clips each entry: a step counts as clipped when its largest
    gradient entry exceeds the value, whatever the global norm."""

    _, reference, _ = fit(tiny_model_class, clip=None, epochs=1)
    threshold = statistics.median(reference.preclip_max_abs)
    assert min(reference.preclip_max_abs) < threshold < max(reference.preclip_max_abs)
    trainer, model, monitor = fit(tiny_model_class, clip=threshold, epochs=1, algorithm="value")
    # the model's own record of the steps' largest entries, before clipping
    clipped = [value > threshold for value in model.preclip_max_abs]
    assert 0 < sum(clipped) < len(clipped) == monitor.steps == trainer.global_step
    assert monitor.clipped == sum(clipped)
    # the epoch's rate is the share of its steps that clipped (the last batch is smaller: not weighted by size)
    rate = sum(clipped) / len(clipped)
    assert float(trainer.callback_metrics["grad/clip_rate"]) == pytest.approx(rate, rel=1e-6)
    # the value rule, not the norm rule: the global norm (never below the largest entry) exceeds the
    # threshold on more steps
    assert sum(norm > threshold for norm in model.preclip_norms) > sum(clipped)


def test_resume_continues_the_counts(tmp_path, tiny_model_class):
    _, _, uninterrupted = fit(tiny_model_class, clip=0.05, epochs=2)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    fit(tiny_model_class, clip=0.05, epochs=1, callbacks=[checkpoint])
    _, _, resumed = fit(tiny_model_class, clip=0.05, epochs=2, ckpt_path=str(tmp_path / "last.ckpt"),
                        callbacks=[ModelCheckpoint(dirpath=tmp_path / "b")])
    assert resumed.steps == uninterrupted.steps
    assert resumed.clipped == uninterrupted.clipped


def test_state_dict_is_plain_and_loads_with_defaults():
    monitor = GradNormMonitor()
    monitor.steps, monitor.clipped = 10, 3
    assert monitor.state_dict() == {"steps": 10, "clipped": 3}
    fresh = GradNormMonitor()
    fresh.load_state_dict({})
    assert (fresh.steps, fresh.clipped) == (0, 0)


@pytest.mark.parametrize("norm_type", [0, -2.0])
def test_bad_norm_type(norm_type):
    with pytest.raises(ValueError, match="norm_type must be > 0"):
        GradNormMonitor(norm_type=norm_type)
