"""HalveOnPlateau (T04): the LR halves after `patience` validations without improvement, in real fits on MR."""

from __future__ import annotations

import warnings

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from callbacks.plateau import HalveOnPlateau, default_mode
from datamodules import TextClassificationDataModule


class LRPerEpoch(Callback):
    """The optimizer's LR while each epoch trains."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.lrs[trainer.current_epoch] = trainer.optimizers[0].param_groups[0]["lr"]


def scripted(model_class, values):
    """The tiny model, also logging ``val/scripted_loss`` = ``values[epoch]`` from validation."""

    class Scripted(model_class):
        def validation_step(self, batch, batch_idx):
            super().validation_step(batch, batch_idx)
            self.log("val/scripted_loss", float(values[self.current_epoch]))

    return Scripted


def fit(model_class, callbacks, *, epochs, lr=0.1, ckpt_path=None, logger=False, **trainer_args):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    model = model_class(data.vocab_size, data.num_classes, lr=lr)
    trainer = Trainer(max_epochs=epochs, callbacks=list(callbacks), logger=logger, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, **trainer_args)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer


VALUES = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8]


def test_halves_after_patience_validations_without_improvement(tiny_model_class):
    halve, lrs = HalveOnPlateau("val/scripted_loss", patience=1), LRPerEpoch()
    trainer = fit(scripted(tiny_model_class, VALUES), [halve, lrs], epochs=8)  # with the sanity check on
    # 0.9 at epochs 2, 3 did not improve on epoch 1: halved after epoch 3; same for 0.8 at epochs 5, 6
    assert lrs.lrs == {0: 0.1, 1: 0.1, 2: 0.1, 3: 0.1, 4: 0.05, 5: 0.05, 6: 0.05, 7: 0.025}
    assert halve.halvings == 2 and float(trainer.callback_metrics["lr/halvings"]) == 2.0
    assert halve.mode == "min"


def test_halvings_reach_wandb(offline_wandb, tiny_model_class):
    import glob

    from lightning.pytorch.loggers import WandbLogger

    from callbacks import read_offline_run

    logger = WandbLogger(project="plateau-test", save_dir=str(offline_wandb))
    fit(scripted(tiny_model_class, VALUES), [HalveOnPlateau("val/scripted_loss", patience=1)], epochs=8, logger=logger)
    logger.experiment.finish()
    run = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    assert run.metric("lr/halvings") == [0, 0, 0, 1, 1, 1, 2, 2]


def test_a_real_plateau_of_the_validation_loss(tiny_model_class):
    # with an LR of 1e-6 the loss moves by far less than the 1e-4 relative threshold: every check after the first halves
    halve, lrs = HalveOnPlateau(), LRPerEpoch()
    trainer = fit(tiny_model_class, [halve, lrs], epochs=4, lr=1e-6, num_sanity_val_steps=0)
    assert lrs.lrs == pytest.approx({0: 1e-6, 1: 1e-6, 2: 5e-7, 3: 2.5e-7}, rel=1e-12)
    assert halve.halvings == 3 and trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1.25e-7, rel=1e-12)


def test_validation_every_other_epoch_is_no_error(tiny_model_class):
    halve, lrs = HalveOnPlateau("val/scripted_loss", patience=0), LRPerEpoch()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="HalveOnPlateau")
        fit(scripted(tiny_model_class, VALUES), [halve, lrs], epochs=8, check_val_every_n_epoch=2,
            num_sanity_val_steps=0)
    # validations after epochs 1, 3, 5, 7 see 0.9, 0.9, 0.8, 0.8: halved after epoch 3 and after epoch 7
    assert lrs.lrs == {0: 0.1, 1: 0.1, 2: 0.1, 3: 0.1, 4: 0.05, 5: 0.05, 6: 0.05, 7: 0.05}
    assert halve.halvings == 2
    assert halve.schedulers[0].last_epoch == 4  # stepped once per validation


def test_a_missing_metric_warns_once_listing_the_logged_ones(tiny_model_class, notices):
    halve, lrs = HalveOnPlateau("val/acc"), LRPerEpoch()
    fit(tiny_model_class, [halve, lrs], epochs=3, num_sanity_val_steps=0)
    assert len(notices(r"HalveOnPlateau: the validation did not log `val/acc`.*Available metrics: .*val/loss")) == 1
    assert set(lrs.lrs.values()) == {0.1} and halve.halvings == 0


def test_resume_restores_the_scheduler_state(tmp_path, tiny_model_class):
    model_class = scripted(tiny_model_class, [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8])
    full, full_lrs = HalveOnPlateau("val/scripted_loss", patience=2), LRPerEpoch()
    fit(model_class, [full, full_lrs], epochs=8, num_sanity_val_steps=0)

    # stop after epoch 3, mid-plateau: 0.9 at epochs 2 and 3 are two bad validations
    first, path = HalveOnPlateau("val/scripted_loss", patience=2), tmp_path / "epoch-3.ckpt"
    fit(model_class, [first], epochs=4, num_sanity_val_steps=0).save_checkpoint(path)
    saved = torch.load(path, weights_only=False)["callbacks"][first.state_key]
    assert saved["schedulers"][0]["num_bad_epochs"] == 2 and saved["schedulers"][0]["best"] == pytest.approx(0.9)

    resumed, lrs = HalveOnPlateau("val/scripted_loss", patience=2), LRPerEpoch()
    fit(model_class, [resumed, lrs], epochs=8, num_sanity_val_steps=0, ckpt_path=str(path))
    assert lrs.lrs == {epoch: lr for epoch, lr in full_lrs.lrs.items() if epoch >= 4}
    assert lrs.lrs[5] == 0.05  # the third bad validation (epoch 4) halved; a fresh scheduler would have waited
    assert resumed.halvings == full.halvings == 1


def test_state_dict_is_plain_and_loads_with_defaults():
    halve = HalveOnPlateau()
    assert halve.state_dict() == {"schedulers": [], "halvings": 0}
    halve.load_state_dict({})
    assert halve.halvings == 0 and halve._loaded == []
    assert HalveOnPlateau("val/loss").state_key != HalveOnPlateau("val/acc").state_key


@pytest.mark.parametrize(("name", "mode"), [("val/loss", "min"), ("val_error", "min"), ("val/acc", "max"),
                                            ("val/f1", "max")])
def test_mode_follows_the_metric_name(name, mode):
    assert default_mode(name) == mode == HalveOnPlateau(name).mode
    assert HalveOnPlateau(name, mode="max").mode == "max"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"factor": 0.0}, r"factor must be in \(0, 1\)"),
        ({"factor": 1.0}, r"factor must be in \(0, 1\)"),
        ({"patience": -1}, "patience must be an integer >= 0"),
        ({"mode": "minimize"}, "min, max"),
        ({"threshold_mode": "relative"}, "rel, abs"),
        ({"cooldown": -1}, "cooldown must be"),
        ({"min_lr": -1e-3}, "min_lr must be >= 0"),
    ],
)
def test_bad_arguments_fail_early(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HalveOnPlateau(**kwargs)
